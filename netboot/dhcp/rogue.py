"""Rogue-DHCP detection: broadcast a DISCOVER on a served interface and see who offers.

Runs at start and every ``rogue_probe_seconds`` per interface, in a child process
(``python -m netboot.dhcp.rogue IFACE``): scapy is slow to import and blocking, and in
the server process it would hold the GIL away from the DHCP hot path for seconds. Our
own server cannot hear the probe: a frame sent on an AF_PACKET socket is not delivered
to local UDP sockets. Every offer from a server id that is not ours becomes an alarm: a log line,
the ``rogue_servers_seen`` counter and a row in ``dhcp_alarms``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from twisted.internet import threads
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from netboot.store.leases import Alarm

__all__ = ["RogueDetector", "RogueOffer", "probe_in_child", "probe_interface"]

log = Logger(namespace="netboot.dhcp.rogue")


@dataclass(frozen=True, slots=True)
class RogueOffer:
    server_id: str
    server_mac: str
    yiaddr: str


def probe_interface(interface: str, timeout: float = 2.0) -> list[RogueOffer]:
    """Send one DISCOVER from a random locally administered MAC; collect the OFFERs."""
    from scapy.all import BOOTP, DHCP, IP, UDP, Ether, sendp, sniff  # noqa: PLC0415

    mac = bytes([0x02, *os.urandom(5)])
    xid = int.from_bytes(os.urandom(4), "big")
    discover = (
        Ether(src=mac.hex(":"), dst="ff:ff:ff:ff:ff:ff")
        / IP(src="0.0.0.0", dst="255.255.255.255")
        / UDP(sport=68, dport=67)
        / BOOTP(chaddr=mac + bytes(10), xid=xid, flags=0x8000)
        / DHCP(options=[("message-type", "discover"), ("param_req_list", [1, 3, 6]), "end"])
    )

    def is_offer(frame: Any) -> bool:
        return BOOTP in frame and frame[BOOTP].op == 2 and frame[BOOTP].xid == xid

    frames = sniff(
        iface=interface,
        timeout=timeout,
        lfilter=is_offer,
        started_callback=lambda: sendp(discover, iface=interface, verbose=False),
        store=True,
    )
    offers = []
    for frame in frames:
        server_id = ""
        if DHCP in frame:
            for opt in frame[DHCP].options:
                if isinstance(opt, tuple) and opt[0] == "server_id":
                    server_id = str(opt[1])
        offers.append(RogueOffer(server_id or frame[IP].src, frame[Ether].src, frame[BOOTP].yiaddr))
    return offers


def probe_in_child(interface: str, timeout: float = 2.0) -> list[RogueOffer]:
    """probe_interface() in a child process; blocks the calling (pool) thread only."""
    result = subprocess.run(
        [sys.executable, "-m", "netboot.dhcp.rogue", interface, str(timeout)],
        capture_output=True,
        text=True,
        timeout=timeout + 30,
    )
    if result.returncode != 0:
        raise RuntimeError(f"probe exited {result.returncode}: {result.stderr.strip()[-300:]}")
    return [RogueOffer(**o) for o in json.loads(result.stdout)]


class RogueDetector:
    """Probe every served interface now and periodically; raise alarms."""

    def __init__(
        self,
        reactor: Any,
        interfaces: Iterable[str],
        our_ids: Iterable[str],
        interval: float,
        on_alarm: Callable[[Alarm], None],
        clock: Callable[[], float],
        probe: Callable[[str], list[RogueOffer]] = probe_in_child,
    ) -> None:
        self.reactor = reactor
        self.interfaces = list(interfaces)
        self.our_ids = set(our_ids)
        self.on_alarm = on_alarm
        self.clock = clock
        self.probe = probe
        self.interval = interval
        self.probes = 0
        self._loop = LoopingCall(self.run_once)
        self._loop.clock = reactor
        self._running: Any = None

    def start(self) -> None:
        self._running = self._loop.start(self.interval, now=True)
        self._running.addErrback(lambda f: log.failure("rogue probe loop failed", f))

    def stop(self) -> None:
        if self._loop.running:
            self._loop.stop()

    def run_once(self):
        return threads.deferToThreadPool(
            self.reactor, self.reactor.getThreadPool(), self._probe_all
        ).addCallback(self._report)

    def _probe_all(self) -> list[tuple[str, RogueOffer | None, str | None]]:
        results: list[tuple[str, RogueOffer | None, str | None]] = []
        for interface in self.interfaces:
            try:
                for offer in self.probe(interface):
                    results.append((interface, offer, None))
            except Exception as exc:  # e.g. no permission for raw sockets
                results.append((interface, None, repr(exc)))
        return results

    def _report(self, results) -> None:
        self.probes += 1
        for interface, offer, error in results:
            if error is not None:
                log.warn(
                    "rogue-DHCP probe on {iface} failed: {error}", iface=interface, error=error
                )
                continue
            if offer.server_id in self.our_ids:
                continue
            message = (
                f"another DHCP server {offer.server_id} ({offer.server_mac}) offered "
                f"{offer.yiaddr} on {interface}"
            )
            log.error("ROGUE DHCP: {message}", message=message)
            self.on_alarm(
                Alarm(
                    self.clock(),
                    interface,
                    "rogue-dhcp",
                    offer.server_id,
                    offer.server_mac,
                    message,
                )
            )


if __name__ == "__main__":
    offers = probe_interface(sys.argv[1], float(sys.argv[2]) if len(sys.argv) > 2 else 2.0)
    print(json.dumps([{"server_id": o.server_id, "server_mac": o.server_mac, "yiaddr": o.yiaddr}
                      for o in offers]))  # fmt: skip
