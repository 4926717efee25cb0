"""ARP for the DHCP server: neighbour entries for unicast replies, and conflict probes.

Neighbours: a client without an address that clears the broadcast flag wants its
OFFER/ACK unicast to yiaddr (RFC 2131 §4.1); the kernel cannot ARP for an address the
client does not answer for yet, so we install yiaddr -> chaddr ourselves (pyroute2).

ArpProber: after an address is offered for the first time, an RFC 5227 §2.1.1 probe
(who-has ip, sender 0.0.0.0) goes out without delaying the OFFER; a reply within the
window means someone already uses the address, and the controller quarantines it (the
client's REQUEST for it is then NAKed and the client starts over). Probes are plain
frames on an AF_PACKET socket registered with the reactor, never blocking calls.
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Callable
from typing import Any

from pyroute2 import IPRoute
from twisted.logger import Logger

__all__ = ["ArpProber", "Neighbours"]

log = Logger(namespace="netboot.dhcp.arp")

ETH_P_ARP = 0x0806
_NUD_REACHABLE = 0x02
_ARP = struct.Struct("!HHBBH6s4s6s4s")  # RFC 826 for Ethernet/IPv4
_BROADCAST_MAC = b"\xff" * 6


class Neighbours:
    """Install ARP entries (ip -> mac) on served interfaces with pyroute2."""

    def __init__(self) -> None:
        self._ipr: IPRoute | None = None
        self._index: dict[str, int] = {}

    def add(self, interface: str, ip: str, mac: str) -> bool:
        try:
            if self._ipr is None:
                self._ipr = IPRoute()
            index = self._index.get(interface)
            if index is None:
                index = self._index[interface] = self._ipr.link_lookup(ifname=interface)[0]
            self._ipr.neigh("replace", dst=ip, lladdr=mac, ifindex=index, state=_NUD_REACHABLE)
            return True
        except Exception as exc:  # no such interface, no permission: fall back to broadcast
            log.info("cannot add neighbour {ip} -> {mac}: {error}", ip=ip, mac=mac, error=exc)
            return False

    def close(self) -> None:
        if self._ipr is not None:
            self._ipr.close()
            self._ipr = None


class _ArpSocket:
    """IReadDescriptor for one interface's raw ARP socket."""

    def __init__(self, prober: ArpProber, interface: str) -> None:
        self.prober = prober
        self.interface = interface
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP))
        self.sock.bind((interface, ETH_P_ARP))
        self.sock.setblocking(False)

    def fileno(self) -> int:
        return self.sock.fileno()

    def logPrefix(self) -> str:  # noqa: N802 (twisted API)
        return f"arp:{self.interface}"

    def doRead(self) -> None:  # noqa: N802 (twisted API)
        for _ in range(256):
            try:
                frame = self.sock.recv(128)
            except BlockingIOError:
                return
            except OSError:
                return
            self.prober.frame(self.interface, frame)

    def connectionLost(self, reason: object) -> None:  # noqa: N802 (twisted API)
        self.sock.close()

    def send_probe(self, ip: int) -> None:
        # The interface's MAC now, not at start: a bridge takes a new MAC when ports join,
        # and replies to a stale one would never reach us.
        mac = self.sock.getsockname()[4][:6]
        arp = _ARP.pack(1, 0x0800, 6, 4, 1, mac, bytes(4), bytes(6), ip.to_bytes(4, "big"))
        try:
            self.sock.send(_BROADCAST_MAC + mac + struct.pack("!H", ETH_P_ARP) + arp)
        except OSError as exc:
            log.info("ARP probe on {iface} failed: {error}", iface=self.interface, error=exc)


class ArpProber:
    """Send probes, match replies, report conflicts to ``on_conflict(iface, ip, mac)``."""

    def __init__(
        self,
        reactor: Any,
        interfaces: list[str],
        on_conflict: Callable[[str, int, str], None],
        window: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.reactor = reactor
        self.on_conflict = on_conflict
        self.window = window
        self.clock = clock
        self._sockets: dict[str, _ArpSocket] = {}
        self._pending: dict[int, tuple[str, str, float]] = {}  # ip -> (iface, client, until)
        for interface in interfaces:
            try:
                sock = _ArpSocket(self, interface)
            except OSError as exc:
                log.warn("no ARP conflict probes on {iface}: {error}", iface=interface, error=exc)
                continue
            self._sockets[interface] = sock
            reactor.addReader(sock)

    def probe(self, interface: str, ip: int, client_mac: str) -> None:
        sock = self._sockets.get(interface)
        if sock is None:
            return
        now = self.clock()
        if len(self._pending) > 4096:
            self._pending = {k: v for k, v in self._pending.items() if v[2] > now}
            if len(self._pending) > 4096:
                return  # a storm: skip probing rather than grow without bound
        self._pending[ip] = (interface, client_mac, now + self.window)
        sock.send_probe(ip)

    def frame(self, interface: str, frame: bytes) -> None:
        if len(frame) < 14 + _ARP.size or not self._pending:
            return
        (_, ptype, _, _, op, sha, spa, _, _) = _ARP.unpack_from(frame, 14)
        if ptype != 0x0800 or op != 2:
            return
        ip = int.from_bytes(spa, "big")
        pending = self._pending.get(ip)
        if pending is None:
            return
        iface, client_mac, until = pending
        sender = sha.hex(":")
        if iface != interface or self.clock() > until or sender == client_mac:
            return
        del self._pending[ip]
        self.on_conflict(interface, ip, sender)

    def close(self) -> None:
        for sock in self._sockets.values():
            self.reactor.removeReader(sock)
            sock.sock.close()
        self._sockets.clear()
