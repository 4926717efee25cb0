"""Test helper: a real foreign DHCP server (dnsmasq, DHCP only) in a lab host."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path


def start_dnsmasq(
    host, workdir: Path, first: str = "10.66.0.50", last: str = "10.66.0.60", ping: bool = True
):
    """Start dnsmasq answering DHCP on the host's eth0; return once it is serving.
    With ``ping`` (dnsmasq's default) it ICMP-checks an address before offering it,
    which delays the OFFER by up to 3 s."""
    log = workdir / "dnsmasq.log"
    with open(log, "wb") as f:
        proc = host.popen(
            [
                "dnsmasq",
                "--keep-in-foreground",
                "--conf-file=/dev/null",
                "--port=0",  # no DNS
                "--interface=eth0",
                "--bind-interfaces",
                f"--dhcp-range={first},{last},255.255.255.0,2m",
                f"--dhcp-leasefile={workdir / 'dnsmasq.leases'}",
                "--pid-file",  # none
                "--user=root",
                "--log-facility=-",
                "--log-dhcp",
                *([] if ping else ["--no-ping"]),
            ],
            stdout=f,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 20
    while "DHCP, IP range" not in log.read_text():
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)
    return proc
