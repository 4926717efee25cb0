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

import struct
from collections import Counter
from collections.abc import Callable
from typing import Any

from dnslib import EDNS0, QTYPE, RCODE, RR, DNSHeader, DNSRecord
from twisted.internet import defer
from twisted.logger import Logger

from netboot.dns.acl import RecursionAcl
from netboot.dns.cache import Cache, CachedAnswer, WireIndex, answer_from
from netboot.dns.forwarder import Forwarder, UpstreamFailure
from netboot.dns.live import LiveZones
from netboot.dns.wire import (
    CLASSIC_UDP_SIZE,
    EDNS_UDP_SIZE,
    HEADER_LEN,
    OPT_RECORD,
    QR,
    RA,
    RD,
    TYPE_OPT,
    WireError,
    error_reply,
    layout,
    plain_query,
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
        self._inflight: dict[bytes, defer.Deferred] = {}
        self._drops_logged_at = 0.0
        self._drops_unlogged = 0

    # -- entry point -------------------------------------------------------------

    def handle(self, data: bytes, client: str, tcp: bool) -> bytes | None | defer.Deferred:
        """The reply bytes for ``data`` from ``client``, None to drop, or a Deferred."""
        q = plain_query(data)
        if q is not None and q.edns_version == 0:
            # The common case, on bytes: a plain query for a name outside our zones.
            name = _name_text(data, q.qend)
            if (
                name is not None
                and apex_for(name, self.zones.apexes) is None
                and self.acl.allows(client)
            ):
                limit = _limit(tcp, q.edns, q.udp_size)
                return self._recurse(data, q.qend, q.key, name, q.edns, limit, tcp)
        return self._handle_parsed(data, client, tcp)

    def _handle_parsed(self, data: bytes, client: str, tcp: bool) -> bytes | None | defer.Deferred:
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
        if edns and (opts[0].ttl >> 16) & 0xFF != 0:
            self.stats["badvers"] += 1
            return self._reply(query, BADVERS, [], [], [], aa=False, ra=False, edns=True)
        limit = _limit(tcp, edns, opts[0].rclass if edns else 0)

        q = query.questions[0]
        qname = str(q.qname)
        if apex_for(fqdn(qname), self.zones.apexes) is not None:
            return self._authoritative(query, qname, q.qtype, client, edns, limit)
        if not self.acl.allows(client):
            self.stats["refused"] += 1
            return self._reply(
                query, RCODE.REFUSED, [], [], [], aa=False, ra=False, edns=edns, limit=limit
            )
        # A query the byte path declined (extra records, compression, odd labels): give
        # it a plain equivalent -- its ID and flags, its question uncompressed.
        question = bytes(DNSRecord(q=q).pack())[HEADER_LEN:]
        plain = data[:4] + bytes(8) + question
        key = question[:-4].lower() + question[-4:]
        return self._recurse(plain, len(plain), key, fqdn(qname), edns, limit, tcp)

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

    def _recurse(
        self, query: bytes, qend: int, key: bytes, name: str, edns: bool, limit: int, tcp: bool
    ) -> bytes | defer.Deferred:
        """From the cache, else from upstream. ``query`` is plain (one question, ending
        at ``qend``); ``key`` is its cache key; ``name`` its lowercase text."""
        now = self.clock()
        entry = self.cache.get(key, now)
        if entry is not None:
            self.stats["cache_hits"] += 1
            return self._render(entry, query, qend, edns, limit, tcp, now)
        self.stats["cache_misses"] += 1
        shared = self._inflight.get(key)
        if shared is None:
            question = query[HEADER_LEN:qend]
            shared = self._inflight[key] = self.forwarder.resolve(name, question)
            self.stats["forwarded"] += 1
            shared.addBoth(self._settle, key)
        else:
            self.stats["coalesced"] += 1  # the same question is already on its way
        mine: defer.Deferred = defer.Deferred()

        def answer(result: Any) -> Any:
            try:
                if isinstance(result, CachedAnswer):
                    mine.callback(self._render(result, query, qend, edns, limit, tcp, self.clock()))
                else:
                    self.stats["servfail"] += 1
                    log.info("SERVFAIL for {name}: {reason}", name=name, reason=str(result))
                    mine.callback(_servfail(query, qend, edns))
            except Exception:  # a bug costs this client its answer, never the others
                log.failure("building the reply for {name}", name=name)
                if not mine.called:
                    mine.callback(None)
            return result

        shared.addCallback(answer)
        return mine

    def _settle(self, result: Any, key: bytes) -> Any:
        """The upstream's reply -> a CachedAnswer (cached when allowed), or the failure
        as a plain value, so every waiter builds its own reply."""
        self._inflight.pop(key, None)
        if not isinstance(result, bytes):
            return getattr(result, "value", result)
        now = self.clock()
        entry = _answer(result, now)
        if entry is None:
            self.stats["upstream_unusable"] += 1
            return UpstreamFailure("the upstream's answer could not be decoded")
        self.cache.put(key, entry)
        return entry

    def _render(
        self,
        entry: CachedAnswer,
        query: bytes,
        qend: int,
        edns: bool,
        limit: int,
        tcp: bool,
        now: float,
    ) -> bytes:
        reply = entry.render(query, qend, edns, limit, now)
        if not tcp and entry.expires > now:
            self.index.add(query, reply, entry.stored, entry.expires, now)
        if reply[2] & 0x02:
            self.stats["truncated"] += 1
        return reply

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


def _limit(tcp: bool, edns: bool, udp_size: int) -> int:
    """The largest reply the client takes: 64 KiB on TCP; 512 on UDP, or its EDNS0 size
    capped at ours (RFC 6891 6.2.5)."""
    if tcp:
        return TCP_LIMIT
    return min(max(CLASSIC_UDP_SIZE, udp_size), EDNS_UDP_SIZE) if edns else CLASSIC_UDP_SIZE


_NAME_CHARS = bytes(c for c in range(33, 127) if c != ord("."))


def _name_text(msg: bytes, qend: int) -> str | None:
    """The question name as lowercase text with a trailing dot, or None when a label
    holds a dot, a space or a byte that is not printable ASCII (the dnslib path then)."""
    labels = []
    offset = HEADER_LEN
    while msg[offset]:
        label = msg[offset + 1 : offset + 1 + msg[offset]]
        if label.translate(None, _NAME_CHARS):
            return None
        labels.append(label)
        offset += 1 + msg[offset]
    return b".".join(labels).decode("ascii").lower() + "." if labels else "."


def _answer(reply: bytes, now: float) -> CachedAnswer | None:
    """An upstream reply as a CachedAnswer; a reply the byte path cannot take as it is
    (OPT not last, compressed question) is re-packed by dnslib first."""
    try:
        entry = answer_from(reply, layout(reply), now)
        if entry is not None:
            return entry
    except WireError:
        pass
    try:
        parsed = DNSRecord.parse(reply)
        parsed.ar = [r for r in parsed.ar if r.rtype != TYPE_OPT]
        repacked = bytes(parsed.pack())
        return answer_from(repacked, layout(repacked), now)
    except Exception:  # noqa: BLE001 (garbage from upstream: the caller answers SERVFAIL)
        return None


def _servfail(query: bytes, qend: int, edns: bool) -> bytes:
    flags = QR | RA | (int.from_bytes(query[2:4], "big") & RD) | RCODE.SERVFAIL
    header = query[:2] + struct.pack(">HHHHH", flags, 1, 0, 0, 1 if edns else 0)
    return header + query[HEADER_LEN:qend] + (OPT_RECORD if edns else b"")
