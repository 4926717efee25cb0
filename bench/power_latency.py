"""How long a power action takes, per driver, against the lab endpoints (not a test).

Starts the same private, unprivileged libvirtd, virtualbmc and sushy-tools emulator as
tests/integration/test_power_libvirt.py (all on loopback), then times ROUNDS rounds of
on -> query -> off -> query for each driver and prints median and max seconds per
action. The virsh driver is timed twice: on the daemon's unix socket and over qemu+ssh
(dropbear on 127.0.0.1, as in the test; that half runs in a child process in the ssh
server's private mount namespace, so the host's ~root/.ssh is never touched). Run as
root from the checkout:

    .venv/bin/python bench/power_latency.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from netboot.power.ipmi import IPMIDriver  # noqa: E402
from netboot.power.redfish import RedfishDriver  # noqa: E402
from netboot.power.virsh import VirshDriver  # noqa: E402
from tests.integration.power_lab import (  # noqa: E402
    LibvirtDaemon,
    SshServer,
    SushyEmulator,
    ThreadedReactor,
    VirtualBMC,
)

USER, PASSWORD = "admin", "p4ssw0rd"


ACTIONS = ("on", "query", "off", "query")


def time_rounds(rx: ThreadedReactor, driver, params, rounds: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {"on": [], "query": [], "off": []}
    for _ in range(rounds):
        for action in ACTIONS:
            start = time.monotonic()
            rx.call(getattr(driver, action), params, timeout=120)
            times[action].append(time.monotonic() - start)
    return times


def inner_ssh(uri: str, rounds: int) -> int:
    """Child mode (inside the ssh server's mount namespace): time virsh over qemu+ssh."""
    rx = ThreadedReactor()
    try:
        params = {"power_address": uri, "power_id": "bench-ssh"}
        print(json.dumps(time_rounds(rx, VirshDriver(rx.reactor, 30), params, rounds)))
    finally:
        rx.close()
    return 0


def ssh_rounds(sshd: SshServer, libvirtd: LibvirtDaemon, rounds: int) -> dict[str, list[float]]:
    argv = [sys.executable, __file__, "--inner-ssh", sshd.libvirt_uri(libvirtd.socket)]
    result = subprocess.run(
        sshd.client_command([*argv, "--rounds", str(rounds)]),
        capture_output=True,
        text=True,
        timeout=60 + rounds * 60,
    )
    if result.returncode != 0:
        raise RuntimeError(f"qemu+ssh rounds failed: {result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def report(label: str, times: dict[str, list[float]]) -> None:
    for action, values in times.items():
        print(f"{label:<24}{action:<8}{statistics.median(values):>10.3f}{max(values):>9.3f}")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--inner-ssh", metavar="URI", help=argparse.SUPPRESS)
    args = parser.parse_args()
    rounds = max(1, min(args.rounds, 50))  # bounded
    if args.inner_ssh:
        return inner_ssh(args.inner_ssh, rounds)
    rx = ThreadedReactor()
    libvirtd = LibvirtDaemon()
    vbmc = sushy = sshd = None
    try:
        for name in ("bench-virsh", "bench-ipmi", "bench-redfish", "bench-ssh"):
            libvirtd.define(name)
        vbmc = VirtualBMC(libvirtd.uri, "bench-ipmi", USER, PASSWORD)
        sushy = SushyEmulator(libvirtd.uri, USER, PASSWORD, Path(tempfile.mkdtemp()))
        conn = libvirtd.connect()
        redfish_id = conn.lookupByName("bench-redfish").UUIDString()
        conn.close()
        cases = [
            (
                "virsh",
                VirshDriver(rx.reactor, 30),
                {"power_address": libvirtd.uri, "power_id": "bench-virsh"},
            ),
            (
                "ipmi (virtualbmc)",
                IPMIDriver(rx.reactor, 30),
                {"power_address": vbmc.address, "power_user": USER, "power_pass": PASSWORD},
            ),
            (
                "redfish (sushy-tools)",
                RedfishDriver(rx.reactor, 30),
                {
                    "power_address": sushy.url,
                    "power_user": USER,
                    "power_pass": PASSWORD,
                    "node_id": redfish_id,
                },
            ),
        ]
        print(f"{'driver':<24}{'action':<8}{'median s':>10}{'max s':>9}   ({rounds} rounds)")
        for label, driver, params in cases:
            report(label, time_rounds(rx, driver, params, rounds))
        sshd = SshServer()
        report("virsh (qemu+ssh)", ssh_rounds(sshd, libvirtd, rounds))
    finally:
        for endpoint in (sshd, sushy, vbmc):
            if endpoint is not None:
                endpoint.close()
        libvirtd.close()
        rx.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
