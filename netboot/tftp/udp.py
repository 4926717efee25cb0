"""Socket-level helpers for the TFTP adapter: path MTU lookup and batched DATA sends.

* `path_mtu(host)`: the MTU of the route to a client (IP_MTU on a connected probe
  socket, Linux ip(7)), so blksize can be clamped to what fits in one unfragmented
  datagram on that interface: blksize <= MTU - IP header - 8 (UDP) - 4 (TFTP).
* `DataSender`: puts a window of DATA packets on the wire with as few system calls as
  the kernel allows. Each packet is gathered from its 4-octet header and a zero-copy
  payload slice (sendmsg(2) with two iovecs, no concatenation). With UDP generic
  segmentation offload (UDP_SEGMENT, Linux 4.18+) a whole window of equal-sized blocks
  goes out in one sendmsg: the kernel cuts it into one datagram per block (only the last
  may be shorter, exactly the TFTP rule). Without GSO, or when a send with it fails, it
  falls back to one sendmsg per packet.
A full socket buffer (EAGAIN/ENOBUFS) drops the rest of the window; the session's
retransmission timer recovers it, as it would recover a loss on the wire.
"""

from __future__ import annotations

import errno
import socket
import struct
from collections.abc import Sequence
from typing import Any

from netboot.tftp.codec import Data, Opcode

__all__ = ["DataSender", "path_mtu", "max_blksize_for_mtu"]

IP_MTU = getattr(socket, "IP_MTU", 14)  # linux/in.h
IPV6_MTU = getattr(socket, "IPV6_MTU", 24)  # linux/in6.h
SOL_UDP = getattr(socket, "SOL_UDP", 17)
UDP_SEGMENT = 103  # linux/udp.h; not exported by the socket module
GSO_MAX_SEGMENTS = 64  # UDP_MAX_SEGMENTS is 64 on older kernels, 128 on newer
GSO_MAX_BYTES = 0xFFFF - 8 - 40  # one UDP datagram before segmentation, with headroom

_HEADER = struct.Struct("!HH")
_DROP_ERRNOS = {errno.EAGAIN, errno.EWOULDBLOCK, errno.ENOBUFS}
_NO_GSO_ERRNOS = {errno.EINVAL, errno.EIO, errno.ENOPROTOOPT, errno.EMSGSIZE, errno.EOPNOTSUPP}


def path_mtu(host: str) -> int | None:
    """MTU of the route to `host` (IPv4 or IPv6), or None if the kernel cannot say."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.connect((host, 9))  # connect() on UDP sends nothing; it picks a route
            if family == socket.AF_INET6:
                return probe.getsockopt(socket.IPPROTO_IPV6, IPV6_MTU)
            return probe.getsockopt(socket.IPPROTO_IP, IP_MTU)
    except OSError:
        return None


def max_blksize_for_mtu(mtu: int, ipv6: bool = False) -> int:
    """Largest blksize whose DATA datagram fits `mtu` unfragmented (RFC 2348 floor 8)."""
    return max(8, mtu - (40 if ipv6 else 20) - 8 - 4)


class DataSender:
    """Send DATA windows on one transfer socket; counts system calls and drops."""

    def __init__(self, sock: socket.socket, *, use_gso: bool = True) -> None:
        self._sock = sock
        self.use_gso = use_gso
        self.syscalls = 0
        self.dropped = 0

    def send(self, packets: Sequence[Data], peer: tuple[Any, ...]) -> None:
        """Send DATA packets in order. Raises OSError only for unexpected socket errors."""
        if len(packets) == 1:  # lock-step (RFC 1350): the common case
            self._send_one(packets[0], peer)
            return
        start = 0
        while start < len(packets):
            if self.use_gso and len(packets) - start > 1:
                sent = self._send_gso(packets, start, peer)
                if sent:
                    start += sent
                    continue
                if sent is None:
                    return  # socket buffer full: leave the rest to the retransmit timer
            if not self._send_one(packets[start], peer):
                return
            start += 1

    def _send_one(self, packet: Data, peer: tuple[Any, ...]) -> bool:
        self.syscalls += 1
        try:
            self._sock.sendmsg(
                [_HEADER.pack(Opcode.DATA, packet.block), packet.payload], (), 0, peer
            )
        except OSError as exc:
            if exc.errno in _DROP_ERRNOS:
                self.dropped += 1
                return False
            raise
        return True

    def _send_gso(self, packets: Sequence[Data], start: int, peer: tuple[Any, ...]) -> int | None:
        """Send up to one GSO batch from `start`: count sent, 0 if GSO is unusable, None if
        the socket buffer is full."""
        size = len(packets[start].payload)
        segment = 4 + size
        limit = min(GSO_MAX_SEGMENTS, GSO_MAX_BYTES // segment)
        buffers: list[Any] = []
        end = start
        while end < len(packets) and end - start < limit:
            payload = packets[end].payload
            buffers.append(_HEADER.pack(Opcode.DATA, packets[end].block))
            buffers.append(payload)
            end += 1
            if len(payload) != size:
                break  # a shorter block can only be the last segment of a batch
        if end - start < 2:
            return 0
        cmsg = [(SOL_UDP, UDP_SEGMENT, struct.pack("=H", segment))]
        self.syscalls += 1
        try:
            self._sock.sendmsg(buffers, cmsg, 0, peer)
        except OSError as exc:
            if exc.errno in _DROP_ERRNOS:
                self.dropped += 1
                return None
            if exc.errno in _NO_GSO_ERRNOS:
                self.use_gso = False  # this kernel/route cannot segment: per packet from now
                return 0
            raise
        return end - start
