"""The forwarder's answer cache: TTL-honouring, negative caching (RFC 2308), bounded.

Answers are kept as wire bytes, never as parsed objects:

- ``Cache``: question key (name lowercased + type + class, as on the wire) -> a
  ``CachedAnswer``: the upstream's records after its question, its OPT record removed,
  and where each TTL sits. It lives for the smallest TTL in it (positive answers) or
  for min(SOA TTL, SOA MINIMUM) (negative: NXDOMAIN and NODATA, RFC 2308 section 5).
  Negative answers without an SOA, truncated answers, other rcodes and TTL 0 are not
  kept. Least recently used entries go first when ``max_entries`` is reached.
  ``render`` makes the reply for one client by splicing: its ID and question (its own
  letter case), our flags, the records re-aged, our OPT if it used EDNS (~3 us).
- ``WireIndex``: the UDP hot path. Exact query bytes after the 2-byte ID -> the reply
  bytes after the ID, so a repeated query is answered by splicing the ID onto stored
  bytes without even decoding the query. Re-aged once per second, dropped on expiry.

Pure: every method takes ``now``; no clock, no sockets.
"""

from __future__ import annotations

import math
import struct
from collections import OrderedDict
from dataclasses import dataclass

from netboot.dns.wire import (
    HEADER_LEN,
    OPT_RECORD,
    QR,
    RA,
    RD,
    Layout,
    WireError,
    reaged,
    truncate,
    ttl_offsets,
)

NOERROR, NXDOMAIN = 0, 3
# RFC 2181 8 allows up to 2^31-1; RFC 2308 5 suggests capping negative TTLs at 1-3 h.
MAX_TTL = 86400
MAX_NEGATIVE_TTL = 3600


@dataclass(frozen=True, slots=True)
class CachedAnswer:
    rcode: int
    records: bytes  # answer + authority + additional sections, OPT removed
    counts: tuple[int, int, int]  # answer, authority, additional (OPT not counted)
    qlen: int  # length of the question the records' compression offsets assume
    ttls: tuple[tuple[int, int], ...]  # (offset in records, ttl as stored)
    stored: float
    expires: float

    def render(self, query: bytes, qend: int, edns: bool, limit: int, now: float) -> bytes:
        """The reply to ``query`` (plain, question ending at ``qend``) from this answer."""
        age = math.floor(now - self.stored) if now > self.stored else 0
        records = reaged(self.records, self.ttls, age) if age else self.records
        flags = QR | RA | (int.from_bytes(query[2:4], "big") & RD) | self.rcode
        an, ns, ar = self.counts
        header = query[:2] + struct.pack(">HHHHH", flags, 1, an, ns, ar + edns)
        reply = header + query[HEADER_LEN:qend] + records + (OPT_RECORD if edns else b"")
        return truncate(reply) if len(reply) > limit else reply


def cache_ttl(lay: Layout) -> int | None:
    """How long a reply with this layout may be cached, or None when it must not be."""
    if lay.tc:
        return None
    if lay.rcode == NOERROR and lay.counts[0]:
        ttl = min(min(t for _, t in lay.ttls), MAX_TTL)
    elif lay.rcode in (NOERROR, NXDOMAIN):
        # RFC 2308 5: the negative TTL is min(SOA TTL, SOA MINIMUM); no SOA -> no caching.
        if lay.soa_negative_ttl is None:
            return None
        ttl = min(lay.soa_negative_ttl, MAX_NEGATIVE_TTL)
    else:
        return None
    return ttl if ttl > 0 else None


def answer_from(reply: bytes, lay: Layout, now: float) -> CachedAnswer | None:
    """The reply's records as a CachedAnswer (expiring at once if uncacheable), or None
    when its OPT record is not last (removing it would break compression offsets)."""
    end = len(reply)
    counts = lay.counts
    if lay.opt is not None:
        if lay.opt[1] != end:
            return None
        end = lay.opt[0]
        counts = (counts[0], counts[1], counts[2] - 1)
    ttl = cache_ttl(lay)
    return CachedAnswer(
        rcode=lay.rcode,
        records=reply[lay.qend : end],
        counts=counts,
        qlen=lay.qend - HEADER_LEN,
        ttls=tuple((offset - lay.qend, t) for offset, t in lay.ttls),
        stored=now,
        expires=now + (ttl or 0),
    )


class Cache:
    def __init__(self, max_entries: int) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.max_entries = max_entries
        self._entries: OrderedDict[bytes, CachedAnswer] = OrderedDict()
        self.hits = 0
        self.misses = 0
        self.evictions = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: bytes, now: float) -> CachedAnswer | None:
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

    def put(self, key: bytes, entry: CachedAnswer) -> bool:
        """Keep ``entry`` unless it is already expired (uncacheable). True if kept."""
        if entry.expires <= entry.stored:
            return False
        self._entries[key] = entry
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
            self.evictions += 1
        return True


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
        query, reply = bytes(query), bytes(reply)
        try:
            offsets = [(off - 2, ttl) for off, ttl in ttl_offsets(reply)]
        except WireError:
            return
        built_age = max(0, math.floor(now - stored))
        valid_until = min(expires, stored + built_age + 1)
        entries = self.entries
        if len(entries) >= self.max_entries and query[2:] not in entries:
            del entries[next(iter(entries))]  # oldest insertion first
        tail = reply[2:]
        entries[query[2:]] = [valid_until, tail, tail, offsets, stored, built_age, expires]

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
