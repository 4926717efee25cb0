"""Sockets for the DHCP controller: one UDP socket per (interface, port), bound with
SO_BINDTODEVICE so netboot hears and answers DHCP only on interfaces the operator named.
"""

from __future__ import annotations

import contextlib
import socket
from typing import TYPE_CHECKING, Any

from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger

from netboot.dhcp.replies import SERVER_PORT

if TYPE_CHECKING:
    from netboot.dhcp.server import DHCPServer

__all__ = ["DHCPProtocol", "bound_dhcp_socket", "listen_dhcp"]

log = Logger(namespace="netboot.dhcp")


class DHCPProtocol(DatagramProtocol):
    """One listening socket (interface, port) feeding the shared controller."""

    def __init__(self, server: DHCPServer, interface: str, pxe_port: bool = False) -> None:
        self.server = server
        self.interface = interface
        self.pxe_port = pxe_port
        self._send = _Sender(self)

    def datagramReceived(self, data: bytes, addr: tuple[str, int]) -> None:  # noqa: N802
        self.server.handle(data, addr, self.interface, self._send, self.pxe_port)


class _Sender:
    """send(data, dest) bound to one protocol's transport; knows its interface."""

    __slots__ = ("interface", "proto")

    def __init__(self, proto: DHCPProtocol) -> None:
        self.proto = proto
        self.interface = proto.interface

    def __call__(self, data: bytes, dest: tuple[str, int]) -> None:
        transport = self.proto.transport
        if transport is None:
            return
        try:
            # Straight to the port's socket: udp.Port.write re-validates the dotted
            # address on every call, which shows in profiles at thousands of packets/s;
            # ours come from inet_ntoa or constants.
            transport.socket.sendto(data, dest)
        except BlockingIOError:
            self.proto.server.stats["send_dropped_full"] += 1
        except OSError as exc:
            self.proto.server.stats["send_errors"] += 1
            log.info("send to {dest} failed: {error}", dest=dest, error=str(exc))


def bound_dhcp_socket(interface: str, port: int = SERVER_PORT) -> socket.socket:
    """A UDP socket on 0.0.0.0:port that only sees ``interface`` (SO_BINDTODEVICE)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, interface.encode() + b"\0")
        for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, opt, 4 << 20)  # ride out commit pauses
        sock.bind(("0.0.0.0", port))
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise OSError(
            exc.errno, f"cannot serve DHCP on interface {interface!r}: {exc.strerror}"
        ) from None
    return sock


def listen_dhcp(reactor: Any, protocol: DHCPProtocol, port: int = SERVER_PORT):
    sock = bound_dhcp_socket(protocol.interface, port)
    try:
        return reactor.adoptDatagramPort(sock.fileno(), socket.AF_INET, protocol)
    finally:
        # adoptDatagramPort dup()s the descriptor.
        sock.close()
