"""Ask upstream resolvers: failover, timeouts, hold-down, TCP on truncation.

- Upstreams come from the configuration (default: the host's resolv.conf, never
  ourselves); per-domain conditional forwarders pick their own list by longest suffix.
- Each query goes to the first healthy upstream; on timeout, ICMP refusal or a
  SERVFAIL/REFUSED answer it moves to the next. An upstream that timed out or refused is
  held down (1 s, doubling to 30 s) so later queries skip it; when every upstream of a
  list is held down the query fails at once, and the client gets SERVFAIL immediately.
- Anti-spoofing (RFC 5452): every query uses a fresh UDP socket on a kernel-chosen random
  port, connected to the upstream (the kernel drops datagrams from anyone else), and a
  random 16-bit ID; an answer is accepted only if its ID, QR bit and question (name
  case-insensitively, type, class) match. Anything else is ignored and counted.
- A truncated (TC) answer is asked again over TCP. An upstream that answers FORMERR to
  our EDNS0 query is asked again without EDNS (RFC 6891 7).
"""

from __future__ import annotations

import errno
import random
import socket
import struct
from collections import Counter
from collections.abc import Sequence
from typing import Any

from twisted.internet import defer
from twisted.internet.protocol import ClientFactory, Protocol
from twisted.logger import Logger

from netboot.dns.settings import Upstream
from netboot.dns.wire import RCODE_MASK, TC, build_query, question_matches

log = Logger(namespace="netboot.dns")

HOLDDOWN_MIN = 1.0
HOLDDOWN_MAX = 30.0
FORMERR = 1
_RETRY_NEXT = (2, 4, 5)  # SERVFAIL, NOTIMP, REFUSED: try the next upstream
_rng = random.SystemRandom()


class UpstreamFailure(Exception):
    """No upstream gave a usable answer (or all are held down)."""


class _AttemptFailed(Exception):
    def __init__(self, reason: str, mark_down: bool, definite: bool = True) -> None:
        super().__init__(reason)
        self.mark_down = mark_down
        self.definite = definite  # False for a timeout: maybe just one lost datagram


class UpstreamHealth:
    """Which upstreams to try now. Pure: the caller passes ``now``.

    A definite failure (port unreachable, no route, connection refused) holds the
    upstream down at once; timeouts only from the second in a row, so one lost datagram
    does not take the only upstream away. Hold-downs double while failures go on.
    Failures of queries sent before the last hold-down began do not count again: a
    hundred queries in flight that time out together are one outage, not a hundred."""

    def __init__(self) -> None:
        self._down_until: dict[Upstream, float] = {}
        self._changed: dict[Upstream, float] = {}
        self._failures: Counter[Upstream] = Counter()

    def usable(self, upstreams: Sequence[Upstream], now: float) -> list[Upstream]:
        return [u for u in upstreams if now >= self._down_until.get(u, 0.0)]

    def failed(
        self, upstream: Upstream, now: float, definite: bool = True, sent: float | None = None
    ) -> float:
        """Record a failure of a query sent at ``sent`` (default: now); return the
        hold-down it started (0: none)."""
        if sent is not None and sent < self._changed.get(upstream, float("-inf")):
            return 0.0  # already accounted for by the hold-down that began since
        self._failures[upstream] += 1
        strikes = self._failures[upstream] - (0 if definite else 1)
        if strikes < 1:
            return 0.0
        holddown = min(HOLDDOWN_MAX, HOLDDOWN_MIN * 2 ** (strikes - 1))
        self._down_until[upstream] = now + holddown
        self._changed[upstream] = now
        return holddown

    def succeeded(self, upstream: Upstream) -> None:
        self._failures.pop(upstream, None)
        self._down_until.pop(upstream, None)


def choose_upstreams(
    qname: str,
    default: Sequence[Upstream],
    conditional: Sequence[tuple[str, Sequence[Upstream]]],
) -> Sequence[Upstream]:
    """The conditional forwarders of the longest domain ``qname`` is in, else the default."""
    name = qname.lower().rstrip(".")
    best: tuple[str, Sequence[Upstream]] | None = None
    for domain, upstreams in conditional:
        if (name == domain or name.endswith("." + domain)) and (
            best is None or len(domain) > len(best[0])
        ):
            best = (domain, upstreams)
    return best[1] if best else default


def _upstream_fault(exc: OSError) -> bool:
    """Does this socket error say the upstream (or the way to it) is down, rather than
    that we ran out of descriptors or buffers ourselves?"""
    return exc.errno not in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)


def new_query_id() -> int:
    return _rng.getrandbits(16)


class Forwarder:
    def __init__(
        self,
        reactor: Any,
        upstreams: Sequence[Upstream],
        conditional: Sequence[tuple[str, Sequence[Upstream]]] = (),
        timeout: float = 2.0,
        max_inflight: int = 512,
        hold_down: bool = True,
    ) -> None:
        self.reactor = reactor
        self.upstreams = tuple(upstreams)
        self.conditional = tuple((d.lower().rstrip("."), tuple(u)) for d, u in conditional)
        self.timeout = timeout
        self.health = UpstreamHealth()
        self.stats: Counter[str] = Counter()
        self.max_inflight = max_inflight
        # Off for a worker's only upstream (the main process): never worth holding down.
        self.hold_down = hold_down
        self.inflight = 0

    def resolve(self, qname: str, question: bytes) -> defer.Deferred:
        """The upstream's reply (bytes) to ``question`` (name + type + class as on the
        wire; ``qname`` is its text, for conditional forwarders), or UpstreamFailure.

        At most ``max_inflight`` questions are out at once (each holds a socket): past
        that a query fails at once, without holding any upstream down."""
        if self.inflight >= self.max_inflight:
            self.stats["inflight_full"] += 1
            return defer.fail(UpstreamFailure("too many upstream queries in flight"))
        self.inflight += 1
        done = self._resolve(qname, question)

        def release(result: Any) -> Any:
            self.inflight -= 1
            return result

        return done.addBoth(release)

    @defer.inlineCallbacks
    def _resolve(self, qname: str, question: bytes):
        group = choose_upstreams(qname, self.upstreams, self.conditional)
        candidates = self.health.usable(group, self.reactor.seconds())
        if not candidates:
            self.stats["all_down"] += 1
            raise UpstreamFailure(
                "no upstream configured" if not group else "every upstream is held down"
            )
        last = "no answer"
        for upstream in candidates:
            sent = self.reactor.seconds()
            try:
                reply = yield self._ask(upstream, question)
            except _AttemptFailed as exc:
                last = f"{upstream}: {exc}"
                self.stats["upstream_failures"] += 1
                if exc.mark_down and self.hold_down:
                    now = self.reactor.seconds()
                    holddown = self.health.failed(upstream, now, exc.definite, sent)
                    if holddown == 0:
                        continue
                    log.warn(
                        "upstream {upstream} failed ({reason}); held down {holddown:.0f}s",
                        upstream=str(upstream),
                        reason=str(exc),
                        holddown=holddown,
                    )
                continue
            self.health.succeeded(upstream)
            return reply
        raise UpstreamFailure(last)

    @defer.inlineCallbacks
    def _ask(self, upstream: Upstream, question: bytes):
        edns = True
        while True:
            query_id = new_query_id()
            reply = yield self._udp(
                upstream, build_query(query_id, question, edns), query_id, question
            )
            if reply[2] & (TC >> 8):
                self.stats["tcp_retries"] += 1
                query_id = new_query_id()
                wire = build_query(query_id, question, edns)
                reply = yield self._tcp(upstream, wire, query_id, question)
            rcode = reply[3] & RCODE_MASK
            if rcode == FORMERR and edns:
                edns = False  # an old server that does not know EDNS0: ask plainly
                continue
            if rcode in _RETRY_NEXT:
                raise _AttemptFailed(f"answered rcode {rcode}", mark_down=False)
            return reply

    def _udp(self, upstream: Upstream, wire: bytes, query_id: int, question: bytes):
        done: defer.Deferred = defer.Deferred()
        try:
            exchange = _UDPExchange(self.reactor, upstream, done, query_id, question, self.stats)
        except OSError as exc:  # no route, unreachable network: this upstream is down
            return defer.fail(_AttemptFailed(f"connect: {exc.strerror}", _upstream_fault(exc)))
        try:
            exchange.send(wire)
        except OSError as exc:
            exchange.close()
            return defer.fail(_AttemptFailed(f"send: {exc.strerror}", _upstream_fault(exc)))
        return self._bounded(done, exchange.close)

    def _tcp(self, upstream: Upstream, wire: bytes, query_id: int, question: bytes):
        done: defer.Deferred = defer.Deferred()
        proto = _TCPExchange(done, wire, query_id, question, self.stats)
        factory = ClientFactory.forProtocol(lambda: proto)
        factory.noisy = False  # no "Starting factory" line per query
        factory.clientConnectionFailed = lambda _c, reason: (
            done.called or done.errback(_AttemptFailed(f"tcp: {reason.value}", mark_down=True))
        )
        connector = self.reactor.connectTCP(
            str(upstream.ip), upstream.port, factory, timeout=self.timeout
        )
        return self._bounded(done, connector.disconnect)

    def _bounded(self, done: defer.Deferred, cleanup) -> defer.Deferred:
        def expire() -> None:
            if not done.called:
                reason = f"no answer in {self.timeout:g}s"
                done.errback(_AttemptFailed(reason, mark_down=True, definite=False))

        timer = self.reactor.callLater(self.timeout, expire)

        def finish(result):
            if timer.active():
                timer.cancel()
            cleanup()
            return result

        return done.addBoth(finish)


class _UDPExchange:
    """One query on its own connected UDP socket, read by the reactor (IReadDescriptor).

    Not ``reactor.listenUDP``: that logs two lines per port, i.e. per forwarded query.
    ``connect`` binds a kernel-chosen random source port and makes the kernel drop
    datagrams from any other address or port.
    """

    def __init__(
        self,
        reactor: Any,
        upstream: Upstream,
        done: defer.Deferred,
        query_id: int,
        question: bytes,
        stats: Counter,
    ) -> None:
        self.reactor = reactor
        self.done = done
        self.query_id = query_id
        self.question = question
        self.stats = stats
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setblocking(False)
        self._reading = False
        try:
            self.sock.connect((str(upstream.ip), upstream.port))
        except OSError:
            self.sock.close()
            raise

    def send(self, wire: bytes) -> None:
        self.sock.send(wire)
        self.reactor.addReader(self)
        self._reading = True

    def fileno(self) -> int:
        return self.sock.fileno()

    def logPrefix(self) -> str:  # noqa: N802 (IReadDescriptor)
        return "dns-upstream"

    def doRead(self) -> None:  # noqa: N802 (IReadDescriptor)
        for _ in range(16):
            try:
                data = self.sock.recv(65535)
            except BlockingIOError:
                return
            except ConnectionRefusedError:  # ICMP port unreachable
                self._fail("port unreachable")
                return
            except OSError as exc:
                self._fail(exc.strerror or str(exc))
                return
            if self.done.called:
                return
            if not question_matches(data, self.query_id, self.question):
                self.stats["upstream_mismatched"] += 1  # a late, stray or spoofed datagram
                continue
            self.done.callback(data)
            return

    def _fail(self, reason: str) -> None:
        if not self.done.called:
            self.done.errback(_AttemptFailed(reason, mark_down=True))

    def connectionLost(self, reason: Any = None) -> None:  # noqa: N802 (IReadDescriptor)
        self.close()

    def close(self) -> None:
        if self._reading:
            self._reading = False
            self.reactor.removeReader(self)
        if self.sock.fileno() != -1:
            self.sock.close()


class _TCPExchange(Protocol):
    """One query over TCP with the 2-byte length prefix (RFC 1035 4.2.2)."""

    def __init__(
        self, done: defer.Deferred, wire: bytes, query_id: int, question: bytes, stats: Counter
    ) -> None:
        self.done = done
        self.wire = wire
        self.query_id = query_id
        self.question = question
        self.stats = stats
        self.buf = b""

    def connectionMade(self) -> None:  # noqa: N802
        self.transport.write(struct.pack(">H", len(self.wire)) + self.wire)

    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        self.buf += data
        while len(self.buf) >= 2 and not self.done.called:
            length = struct.unpack(">H", self.buf[:2])[0]
            if len(self.buf) < 2 + length:
                return
            message, self.buf = self.buf[2 : 2 + length], self.buf[2 + length :]
            if question_matches(message, self.query_id, self.question):
                self.done.callback(message)
                self.transport.loseConnection()
            else:
                self.stats["upstream_mismatched"] += 1

    def connectionLost(self, reason: Any = None) -> None:  # noqa: N802
        if not self.done.called:
            self.done.errback(_AttemptFailed("tcp connection closed early", mark_down=True))
