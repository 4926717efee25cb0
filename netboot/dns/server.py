"""Twisted adapters for DNS over UDP and TCP around one shared ``Resolver``.

UDP hot path: a query whose exact bytes (after the ID) were answered from the cache
before, from a client already known to be inside the recursion ACL, is answered by
splicing its ID onto the stored reply -- no parse, no pack -- and written with the
socket's ``sendto`` directly (Twisted's ``write`` re-validates the address on every
call). Everything else goes to ``Resolver.handle``.

TCP (RFC 1035 4.2.2, RFC 7766): 2-byte length-prefixed messages, several per connection,
replies possibly out of order, idle connections closed after ``TCP_IDLE`` seconds, at
most ``max_tcp_clients`` connections at once.

``SO_REUSEPORT`` lets several processes (``dns.workers``) share the port; the kernel
spreads clients over them.
"""

from __future__ import annotations

import errno
import socket
import struct
from collections.abc import Callable
from typing import Any

from twisted.internet import defer
from twisted.internet.protocol import DatagramProtocol, Factory, Protocol
from twisted.logger import Logger

from netboot.dns.resolver import Resolver

log = Logger(namespace="netboot.dns")

TCP_IDLE = 10.0
_SEND_DROPPED = (errno.EAGAIN, errno.EWOULDBLOCK, errno.ENOBUFS, errno.ECONNREFUSED, errno.EPERM)


class DNSDatagramProtocol(DatagramProtocol):
    def __init__(self, resolver: Resolver, clock: Callable[[], float]) -> None:
        self.resolver = resolver
        self.stats = resolver.stats
        self._hot = resolver.index.entries
        self._refresh = resolver.index.refresh
        self._allowed = resolver.acl.allowed
        self._clock = clock
        self._sendto: Callable[[bytes, Any], int] | None = None

    def startProtocol(self) -> None:  # noqa: N802 (twisted API name)
        self._sendto = self.transport.socket.sendto

    def datagramReceived(self, data: bytes, addr: tuple[str, int]) -> None:  # noqa: N802
        entry = self._hot.get(data[2:])
        if entry is not None and addr[0] in self._allowed:
            tail = entry[1] if entry[0] > self._clock() else self._refresh(data[2:], self._clock())
            if tail is not None:
                self._send(data[:2] + tail, addr)
                return
        try:
            result = self.resolver.handle(data, addr[0], tcp=False)
        except Exception:
            self.stats["errors"] += 1
            log.failure("error answering DNS from {client}", client=addr[0])
            return
        if isinstance(result, defer.Deferred):
            result.addCallback(self._send_later, addr)
            result.addErrback(self._failed, addr)
        elif result is not None:
            self._send(result, addr)

    def _send_later(self, reply: bytes | None, addr: tuple[str, int]) -> None:
        if reply is not None and self.transport is not None:
            self._send(reply, addr)

    def _failed(self, failure: Any, addr: tuple[str, int]) -> None:
        self.stats["errors"] += 1
        log.failure("error answering DNS from {client}", failure, client=addr[0])

    def _send(self, reply: bytes, addr: tuple[str, int]) -> None:
        try:
            self._sendto(reply, addr)
        except OSError as exc:
            if exc.errno not in _SEND_DROPPED:
                raise
            self.stats["send_dropped"] += 1


class DNSStreamProtocol(Protocol):
    def __init__(self, factory: DNSStreamFactory) -> None:
        self.factory = factory
        self.buf = b""
        self._idle: Any = None

    def connectionMade(self) -> None:  # noqa: N802
        self.factory.open += 1
        if self.factory.open > self.factory.max_clients:
            self.factory.resolver.stats["tcp_rejected"] += 1
            self.transport.loseConnection()
            return
        self._touch()

    def _touch(self) -> None:
        if self._idle is not None and self._idle.active():
            self._idle.reset(TCP_IDLE)
        else:
            self._idle = self.factory.reactor.callLater(TCP_IDLE, self.transport.loseConnection)

    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        self._touch()
        self.buf += data
        while len(self.buf) >= 2:
            length = struct.unpack(">H", self.buf[:2])[0]
            if len(self.buf) < 2 + length:
                return
            message, self.buf = self.buf[2 : 2 + length], self.buf[2 + length :]
            peer = self.transport.getPeer().host
            try:
                result = self.factory.resolver.handle(message, peer, tcp=True)
            except Exception:
                self.factory.resolver.stats["errors"] += 1
                log.failure("error answering DNS/TCP from {client}", client=peer)
                self.transport.loseConnection()
                return
            if isinstance(result, defer.Deferred):
                result.addCallback(self._write)
                result.addErrback(lambda f, p=peer: log.failure("DNS/TCP {c}", f, c=p))
            elif result is None:
                self.transport.loseConnection()  # undecodable: the stream cannot be trusted
                return
            else:
                self._write(result)

    def _write(self, reply: bytes | None) -> None:
        if reply is not None and self.transport is not None and self.transport.connected:
            self.transport.write(struct.pack(">H", len(reply)) + reply)

    def connectionLost(self, reason: Any = None) -> None:  # noqa: N802
        self.factory.open -= 1
        if self._idle is not None and self._idle.active():
            self._idle.cancel()


class DNSStreamFactory(Factory):
    def __init__(self, resolver: Resolver, reactor: Any, max_clients: int = 128) -> None:
        self.resolver = resolver
        self.reactor = reactor
        self.max_clients = max_clients
        self.open = 0

    def buildProtocol(self, addr: Any) -> DNSStreamProtocol:  # noqa: N802
        return DNSStreamProtocol(self)


def _socket(kind: int, bind: str, port: int, reuse_port: bool) -> socket.socket:
    sock = socket.socket(socket.AF_INET, kind)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.setblocking(False)
        sock.bind((bind, port))
        if kind == socket.SOCK_STREAM:
            sock.listen(128)
    except BaseException:
        sock.close()
        raise
    return sock


def listen_dns(
    reactor: Any, resolver: Resolver, bind: str, port: int, reuse_port: bool = False
) -> list[Any]:
    """Bind UDP and TCP on bind:port; return both listening ports (for stopListening)."""
    udp_sock = _socket(socket.SOCK_DGRAM, bind, port, reuse_port)
    tcp_sock = _socket(socket.SOCK_STREAM, bind, port, reuse_port)
    try:
        udp = reactor.adoptDatagramPort(
            udp_sock.fileno(), socket.AF_INET, DNSDatagramProtocol(resolver, reactor.seconds)
        )
        tcp = reactor.adoptStreamPort(
            tcp_sock.fileno(), socket.AF_INET, DNSStreamFactory(resolver, reactor)
        )
    finally:
        # The reactor holds its own duplicates of the descriptors.
        udp_sock.close()
        tcp_sock.close()
    # A larger receive buffer absorbs bursts (dnsperf, boot storms) instead of dropping.
    udp.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    log.info("dns listening on {bind}:{port} (udp, tcp)", bind=bind, port=port)
    return [udp, tcp]
