"""How long a power action takes, per driver, against the lab endpoints (not a test).

Starts the same private, unprivileged libvirtd, virtualbmc and sushy-tools emulator as
tests/integration/test_power_libvirt.py (all on loopback), then times ROUNDS rounds of
on -> query -> off -> query for each driver and prints median and max seconds per
action. Run as root from the checkout:

    .venv/bin/python bench/power_latency.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
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
    SushyEmulator,
    ThreadedReactor,
    VirtualBMC,
)

USER, PASSWORD = "admin", "p4ssw0rd"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    rounds = max(1, min(parser.parse_args().rounds, 50))  # bounded
    rx = ThreadedReactor()
    libvirtd = LibvirtDaemon()
    vbmc = sushy = None
    try:
        for name in ("bench-virsh", "bench-ipmi", "bench-redfish"):
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
            times: dict[str, list[float]] = {"on": [], "query": [], "off": []}
            for _ in range(rounds):
                for action in ("on", "query", "off", "query"):
                    start = time.monotonic()
                    rx.call(getattr(driver, action), params, timeout=120)
                    times[action].append(time.monotonic() - start)
            for action, values in times.items():
                print(
                    f"{label:<24}{action:<8}{statistics.median(values):>10.3f}{max(values):>9.3f}"
                )
    finally:
        for endpoint in (sushy, vbmc):
            if endpoint is not None:
                endpoint.close()
        libvirtd.close()
        rx.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
