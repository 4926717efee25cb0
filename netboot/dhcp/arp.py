"""ARP for the DHCP server: neighbour entries for unicast replies, and conflict probes.

Neighbours: a client without an address that clears the broadcast flag wants its
OFFER/ACK unicast to yiaddr (RFC 2131 §4.1); the kernel cannot ARP for an address the
client does not answer for yet, so we install yiaddr -> chaddr ourselves: one
RTM_NEWNEIGH datagram on a non-blocking rtnetlink socket, which the kernel applies
inside the send call. (pyroute2's synchronous IPRoute ran a request/reply conversation
on its own event loop on the reactor thread for each entry; nothing needs to wait here.
pyroute2 stays the test oracle for the framing.)

ArpProber: after an address is offered for the first time, an RFC 5227 §2.1.1 probe
(who-has ip, sender 0.0.0.0) goes out without delaying the OFFER; a reply within the
window means someone already uses the address, and the controller quarantines it (the
client's REQUEST for it is then NAKed and the client starts over). Probes are plain
frames on an AF_PACKET socket registered with the reactor, never blocking calls.
"""

from __future__ import annotations

import os
import socket
import struct
import time
from collections.abc import Callable
from typing import Any

from twisted.logger import Logger

__all__ = ["ArpProber", "Neighbours"]

log = Logger(namespace="netboot.dhcp.arp")

ETH_P_ARP = 0x0806
_NUD_REACHABLE = 0x02
_ARP = struct.Struct("!HHBBH6s4s6s4s")  # RFC 826 for Ethernet/IPv4
_BROADCAST_MAC = b"\xff" * 6


# rtnetlink framing (linux/netlink.h, linux/neighbour.h, linux/rtnetlink.h).
_RTM_NEWNEIGH = 28
_NLM_F_REQUEST, _NLM_F_ACK, _NLM_F_REPLACE, _NLM_F_CREATE = 0x1, 0x4, 0x100, 0x400
_NLMSG_ERROR = 2
_NDA_DST, _NDA_LLADDR = 1, 2
_NLMSGHDR = struct.Struct("=IHHII")  # len, type, flags, seq, pid
_NDMSG = struct.Struct("=BxxxiHBB")  # family, pad, ifindex, state, flags, type
_RTA = struct.Struct("=HH")  # len, type


def neigh_request(seq: int, ifindex: int, ip: str, mac: str) -> bytes:
    """RTM_NEWNEIGH (create or replace) ip -> mac on ifindex, state REACHABLE, ACK asked."""
    body = _NDMSG.pack(socket.AF_INET, ifindex, _NUD_REACHABLE, 0, 0)
    body += _RTA.pack(8, _NDA_DST) + socket.inet_aton(ip)
    body += _RTA.pack(10, _NDA_LLADDR) + bytes.fromhex(mac.replace(":", "")) + b"\0\0"
    flags = _NLM_F_REQUEST | _NLM_F_ACK | _NLM_F_CREATE | _NLM_F_REPLACE
    return _NLMSGHDR.pack(_NLMSGHDR.size + len(body), _RTM_NEWNEIGH, flags, seq, 0) + body


def netlink_errors(data: bytes) -> list[tuple[int, int]]:
    """(seq, errno) of each failed request in a batch of rtnetlink replies (0 = ok)."""
    out, pos = [], 0
    while pos + _NLMSGHDR.size <= len(data):
        length, kind, _, seq, _ = _NLMSGHDR.unpack_from(data, pos)
        if length < _NLMSGHDR.size:
            break
        if kind == _NLMSG_ERROR and pos + _NLMSGHDR.size + 4 <= len(data):
            error = -struct.unpack_from("=i", data, pos + _NLMSGHDR.size)[0]
            if error:
                out.append((seq, error))
        pos += (length + 3) & ~3
    return out


class Neighbours:
    """Install ARP entries (ip -> mac) on served interfaces, never blocking the reactor."""

    def __init__(self) -> None:
        self._sock: socket.socket | None = None
        self._index: dict[str, int] = {}
        self._seq = 0
        self._asked: dict[int, str] = {}  # seq -> "ip -> mac", until its ACK is read

    def add(self, interface: str, ip: str, mac: str) -> bool:
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
                self._sock.setblocking(False)
            self._drain()
            index = self._index.get(interface)
            if index is None:
                index = self._index[interface] = socket.if_nametoindex(interface)
            self._seq = self._seq % 0x7FFFFFFF + 1
            # The kernel handles the request inside send(): the entry exists when it returns.
            self._sock.send(neigh_request(self._seq, index, ip, mac))
            if len(self._asked) < 1024:
                self._asked[self._seq] = f"{ip} -> {mac}"
            self._drain()
            return True
        except OSError as exc:  # no such interface, no permission: fall back to broadcast
            log.info("cannot add neighbour {ip} -> {mac}: {error}", ip=ip, mac=mac, error=exc)
            return False

    def _drain(self) -> None:
        """Read the kernel's answers so far (non-blocking) and log refused entries."""
        while self._sock is not None:
            try:
                data = self._sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                return
            for seq, error in netlink_errors(data):
                log.info(
                    "kernel refused neighbour {entry}: {error}",
                    entry=self._asked.get(seq, f"#{seq}"),
                    error=os.strerror(error),
                )
            self._asked.clear()

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


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
