"""One query in, one reply out: the decision shared by the UDP and TCP adapters.

Order of decisions for a decoded query:
1. Not a query we serve: QR set -> drop; opcode != QUERY -> NOTIMP; not exactly one
   question, or several OPT records -> FORMERR; EDNS version != 0 -> BADVERS
   (RFC 6891 6.1.3); zone transfers -> REFUSED.
2. A name in our zones -> the authoritative answer (AA), for any client.
3. A client outside the recursion ACL -> REFUSED (we are not an open resolver).
4. The cache -> the cached answer with aged TTLs.
5. The forwarder (identical questions in flight share one upstream query) -> cache it,
   answer; no usable upstream -> SERVFAIL.

Replies larger than the client's UDP payload size (512, or its EDNS0 size up to 1232)
are truncated with TC=1 so the client retries over TCP. Undecodable input gets FORMERR
when its header is readable, else it is dropped; either way it is counted and logged
(rate-limited), and the server keeps answering.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from dnslib import EDNS0, QTYPE, RCODE, RR, DNSHeader, DNSRecord
from twisted.internet import defer
from twisted.logger import Logger

from netboot.dns.acl import RecursionAcl
from netboot.dns.cache import Cache, CachedAnswer, WireIndex, cache_key
from netboot.dns.forwarder import Forwarder
from netboot.dns.live import LiveZones
from netboot.dns.wire import (
    CLASSIC_UDP_SIZE,
    EDNS_UDP_SIZE,
    TYPE_OPT,
    error_reply,
    truncate,
)
from netboot.dns.zone import apex_for, fqdn

log = Logger(namespace="netboot.dns")

TCP_LIMIT = 65535
BADVERS = 16
_NO_TRANSFER = (QTYPE.AXFR, QTYPE.IXFR)


class Resolver:
    def __init__(
        self,
        zones: LiveZones,
        acl: RecursionAcl,
        cache: Cache,
        index: WireIndex,
        forwarder: Forwarder,
        clock: Callable[[], float],
    ) -> None:
        self.zones = zones
        self.acl = acl
        self.cache = cache
        self.index = index
        self.forwarder = forwarder
        self.clock = clock
        self.stats: Counter[str] = Counter()
        self._inflight: dict[tuple, defer.Deferred] = {}
        self._drops_logged_at = 0.0
        self._drops_unlogged = 0

    # -- entry point -------------------------------------------------------------

    def handle(self, data: bytes, client: str, tcp: bool) -> bytes | None | defer.Deferred:
        """The reply bytes for ``data`` from ``client``, None to drop, or a Deferred."""
        try:
            query = DNSRecord.parse(data)
        except Exception as exc:  # dnslib raises DNSError, and others on odd garbage
            reply = error_reply(data, RCODE.FORMERR)
            self._malformed(client, str(exc), answered=reply is not None)
            return reply
        header = query.header
        if header.qr:
            self.stats["dropped_response"] += 1
            return None
        if header.opcode != 0:
            self.stats["notimp"] += 1
            return error_reply(data, RCODE.NOTIMP)
        opts = [r for r in query.ar if r.rtype == TYPE_OPT]
        if len(query.questions) != 1 or len(opts) > 1:
            self._malformed(client, "not one question / several OPT", answered=True)
            return error_reply(data, RCODE.FORMERR)
        edns = bool(opts)
        limit = TCP_LIMIT if tcp else CLASSIC_UDP_SIZE
        if edns:
            if (opts[0].ttl >> 16) & 0xFF != 0:
                self.stats["badvers"] += 1
                return self._reply(query, BADVERS, [], [], [], aa=False, ra=False, edns=True)
            if not tcp:
                limit = min(max(CLASSIC_UDP_SIZE, opts[0].rclass), EDNS_UDP_SIZE)

        q = query.questions[0]
        qname = str(q.qname)
        if apex_for(fqdn(qname), self.zones.apexes) is not None:
            return self._authoritative(query, qname, q.qtype, client, edns, limit)
        if not self.acl.allows(client):
            self.stats["refused"] += 1
            return self._reply(
                query, RCODE.REFUSED, [], [], [], aa=False, ra=False, edns=edns, limit=limit
            )
        key = cache_key(q.qname, q.qtype, q.qclass)
        now = self.clock()
        entry = self.cache.get(key, now)
        if entry is not None:
            self.stats["cache_hits"] += 1
            return self._from_cache(query, data, entry, now, edns, limit, tcp)
        self.stats["cache_misses"] += 1
        return self._forward(query, data, key, qname, q.qtype, q.qclass, edns, limit, tcp)

    # -- the three sources of answers -----------------------------------------------

    def _authoritative(
        self, query: DNSRecord, qname: str, qtype: int, client: str, edns: bool, limit: int
    ) -> bytes:
        ra = self.acl.allows(client)
        if qtype in _NO_TRANSFER:
            self.stats["refused_transfer"] += 1
            return self._reply(query, RCODE.REFUSED, [], [], [], aa=False, ra=ra, edns=edns)
        answer = self.zones.current().answer(qname, qtype)
        assert answer is not None  # apex_for said the name is ours
        self.stats["authoritative"] += 1
        return self._reply(
            query, answer.rcode, answer.answer, answer.authority, [],
            aa=True, ra=ra, edns=edns, limit=limit,
        )  # fmt: skip

    def _from_cache(
        self,
        query: DNSRecord,
        data: bytes,
        entry: CachedAnswer,
        now: float,
        edns: bool,
        limit: int,
        tcp: bool,
    ) -> bytes:
        answer, authority, additional = entry.aged(now)
        reply = self._reply(
            query, entry.rcode, answer, authority, additional,
            aa=False, ra=True, edns=edns, limit=limit,
        )  # fmt: skip
        if not tcp:
            self.index.add(data, reply, entry.stored, entry.expires, now)
        return reply

    def _forward(
        self,
        query: DNSRecord,
        data: bytes,
        key: tuple,
        qname: str,
        qtype: int,
        qclass: int,
        edns: bool,
        limit: int,
        tcp: bool,
    ) -> defer.Deferred:
        shared = self._inflight.get(key)
        if shared is None:
            shared = self._inflight[key] = self.forwarder.resolve(qname, qtype, qclass)
            self.stats["forwarded"] += 1

            def settle(result: Any) -> Any:
                self._inflight.pop(key, None)
                if isinstance(result, DNSRecord):
                    self.cache.put(key, result, self.clock())
                    return result
                # Every waiter turns a failure into its own SERVFAIL: pass it on as a
                # value so the chain never ends in an unhandled Failure.
                return getattr(result, "value", result)

            shared.addBoth(settle)
        else:
            self.stats["coalesced"] += 1
        mine: defer.Deferred = defer.Deferred()

        def answer(result: Any) -> None:
            if isinstance(result, DNSRecord):
                now = self.clock()
                entry = self.cache.get(key, now)
                if entry is not None:
                    mine.callback(self._from_cache(query, data, entry, now, edns, limit, tcp))
                    return
                mine.callback(
                    self._reply(
                        query,
                        result.header.rcode,
                        list(result.rr),
                        list(result.auth),
                        [r for r in result.ar if r.rtype != TYPE_OPT],
                        aa=False,
                        ra=True,
                        edns=edns,
                        limit=limit,
                    )  # fmt: skip
                )
                return
            self.stats["servfail"] += 1
            log.info(
                "SERVFAIL for {qname}: {reason}",
                qname=qname,
                reason=str(result),
            )
            mine.callback(
                self._reply(query, RCODE.SERVFAIL, [], [], [], aa=False, ra=True, edns=edns)
            )

        def answer_safely(result: Any) -> Any:
            try:
                answer(result)
            except Exception:  # a bug costs this client its answer, never the others
                log.failure("building the reply for {qname}", qname=qname)
                if not mine.called:
                    mine.callback(None)
            return result

        shared.addCallback(answer_safely)
        return mine

    # -- building replies --------------------------------------------------------

    def _reply(
        self,
        query: DNSRecord,
        rcode: int,
        answer: list[RR],
        authority: list[RR],
        additional: list[RR],
        *,
        aa: bool,
        ra: bool,
        edns: bool,
        limit: int = CLASSIC_UDP_SIZE,
    ) -> bytes:
        header = DNSHeader(
            id=query.header.id, qr=1, aa=int(aa), rd=query.header.rd, ra=int(ra), rcode=rcode & 0xF
        )
        reply = DNSRecord(header, q=query.questions[0], rr=answer, auth=authority, ar=additional)
        if edns:
            reply.add_ar(EDNS0(udp_len=EDNS_UDP_SIZE, ext_rcode=rcode >> 4))
        wire = bytes(reply.pack())
        if len(wire) > limit:
            self.stats["truncated"] += 1
            wire = truncate(wire)
        return wire

    def _malformed(self, client: str, reason: str, answered: bool) -> None:
        self.stats["malformed"] += 1
        self._drops_unlogged += 1
        now = self.clock()
        if now - self._drops_logged_at >= 1.0:  # at most one line a second under a flood
            log.info(
                "malformed DNS from {client} ({action}): {reason} [{count} since last line]",
                client=client,
                action="FORMERR" if answered else "dropped",
                reason=reason,
                count=self._drops_unlogged,
            )
            self._drops_logged_at = now
            self._drops_unlogged = 0
