"""The forwarder's answer cache: TTL-honouring, negative caching (RFC 2308), bounded.

Two layers:

- ``Cache``: question (name lowercased, type, class) -> the upstream's answer sections,
  kept for the smallest TTL in them (positive) or for min(SOA TTL, SOA MINIMUM)
  (negative: NXDOMAIN and NODATA, RFC 2308 section 5). Negative answers without an SOA,
  truncated answers, SERVFAIL and TTL 0 are not cached. Least recently used entries go
  first when ``max_entries`` is reached.
- ``WireIndex``: the hot path. Exact query bytes after the 2-byte ID -> the reply bytes
  after the ID, so a repeated query is answered by splicing its ID onto stored bytes,
  without a parse. The stored reply is re-aged once per second by rewriting its TTL
  fields in place (``wire.reaged``), and dropped when the answer expires.

Pure: every method takes ``now``; no clock, no sockets.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

from dnslib import QTYPE, RCODE, RR, DNSRecord

from netboot.dns.wire import TYPE_OPT, WireError, reaged, ttl_offsets

CacheKey = tuple[str, int, int]

# RFC 2181 8 allows up to 2^31-1; RFC 2308 5 suggests capping negative TTLs at 1-3 h.
MAX_TTL = 86400
MAX_NEGATIVE_TTL = 3600


@dataclass(frozen=True, slots=True)
class CachedAnswer:
    rcode: int
    answer: tuple[RR, ...]
    authority: tuple[RR, ...]
    additional: tuple[RR, ...]
    stored: float
    expires: float

    def age(self, now: float) -> int:
        return max(0, math.floor(now - self.stored))

    def aged(self, now: float) -> tuple[list[RR], list[RR], list[RR]]:
        """Copies of the sections with TTLs lowered by the time spent in the cache."""
        age = self.age(now)
        return (
            [_aged_rr(rr, age) for rr in self.answer],
            [_aged_rr(rr, age) for rr in self.authority],
            [_aged_rr(rr, age) for rr in self.additional],
        )


def _aged_rr(rr: RR, age: int) -> RR:
    return RR(rr.rname, rr.rtype, rr.rclass, max(0, rr.ttl - age), rr.rdata)


def cache_key(qname: object, qtype: int, qclass: int) -> CacheKey:
    return (str(qname).lower().rstrip(".") + ".", qtype, qclass)


def cache_ttl(response: DNSRecord) -> int | None:
    """How long ``response`` may be cached, or None when it must not be."""
    if response.header.tc:
        return None
    rcode = response.header.rcode
    records = [*response.rr, *response.auth, *(r for r in response.ar if r.rtype != TYPE_OPT)]
    if rcode == RCODE.NOERROR and response.rr:
        ttl = min(min(r.ttl for r in records), MAX_TTL)
    elif rcode in (RCODE.NOERROR, RCODE.NXDOMAIN):
        # RFC 2308 5: the negative TTL is min(SOA TTL, SOA MINIMUM); no SOA -> no caching.
        soas = [r for r in response.auth if r.rtype == QTYPE.SOA]
        if not soas:
            return None
        ttl = min(soas[0].ttl, soas[0].rdata.times[-1], MAX_NEGATIVE_TTL)
    else:
        return None
    return ttl if ttl > 0 else None


class Cache:
    def __init__(self, max_entries: int) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.max_entries = max_entries
        self._entries: OrderedDict[CacheKey, CachedAnswer] = OrderedDict()
        self.hits = 0
        self.misses = 0
        self.evictions = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: CacheKey, now: float) -> CachedAnswer | None:
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            return None
        if now >= entry.expires:
            del self._entries[key]
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return entry

    def put(self, key: CacheKey, response: DNSRecord, now: float) -> CachedAnswer | None:
        """Store ``response`` if it may be cached; return the entry (or None)."""
        ttl = cache_ttl(response)
        if ttl is None:
            return None
        entry = CachedAnswer(
            rcode=response.header.rcode,
            answer=tuple(response.rr),
            authority=tuple(response.auth),
            additional=tuple(r for r in response.ar if r.rtype != TYPE_OPT),
            stored=now,
            expires=now + ttl,
        )
        self._entries[key] = entry
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
            self.evictions += 1
        return entry


class WireIndex:
    """Query bytes after the ID -> reply bytes after the ID, for cache hits on UDP.

    ``entries`` is read directly by the UDP adapter: a value is a list
    ``[valid_until, reply_tail, ...]``; while ``now < valid_until`` the reply is
    ``query[:2] + reply_tail``. Otherwise call ``refresh``.
    """

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self.entries: dict[bytes, list] = {}

    def __len__(self) -> int:
        return len(self.entries)

    def add(self, query: bytes, reply: bytes, stored: float, expires: float, now: float) -> None:
        try:
            offsets = [(off - 2, ttl) for off, ttl in ttl_offsets(reply)]
        except WireError:
            return
        query, reply = bytes(query), bytes(reply)
        built_age = max(0, math.floor(now - stored))
        valid_until = min(expires, stored + built_age + 1)
        entries = self.entries
        if len(entries) >= self.max_entries and query[2:] not in entries:
            del entries[next(iter(entries))]  # oldest insertion first
        entries[query[2:]] = [
            valid_until,
            reply[2:],
            reply[2:],
            offsets,
            stored,
            built_age,
            expires,
        ]

    def refresh(self, key: bytes, now: float) -> bytes | None:
        """The re-aged reply tail for ``key``, or None (and forget it) once expired."""
        entry = self.entries.get(key)
        if entry is None:
            return None
        _valid, _tail, template, offsets, stored, built_age, expires = entry
        if now >= expires:
            del self.entries[key]
            return None
        age = max(0, math.floor(now - stored))
        tail = reaged(template, offsets, age - built_age)
        entry[0] = min(expires, stored + age + 1)
        entry[1] = tail
        return tail
