"""The few raw-wire operations dnslib does not give us (RFC 1035 section 4.1).

dnslib parses and builds messages everywhere else; these helpers exist for the hot path
and for input dnslib cannot parse:

- ``error_reply``: a header-only error answer (FORMERR, ...) built from the raw header
  of a query we could not decode, or ``None`` when the bytes must be dropped.
- ``ttl_offsets``: where every TTL sits in a packed message, so a cached answer can be
  re-aged by overwriting four bytes instead of a parse + pack.
- ``truncate``: the TC=1 reply (header + question, plus OPT when EDNS) for an answer that
  does not fit the client's UDP payload size (RFC 1035 4.2.1, RFC 6891 7).

- ``plain_query`` / ``layout`` / ``question_matches`` / ``build_query``: the forwarding
  path (cache misses and cache hits) works on bytes, because dnslib's parse and pack
  cost about 100 microseconds each -- more than everything else on that path together.

Pure: bytes in, bytes out, no clock, no sockets.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

HEADER_LEN = 12
QR = 0x8000
OPCODE_MASK = 0x7800
AA = 0x0400
TC = 0x0200
RD = 0x0100
RA = 0x0080
RCODE_MASK = 0x000F
TYPE_OPT = 41

# RFC 1035 2.3.4 / RFC 6891 6.2.3: the classic limit, and the size we offer and accept
# as our own EDNS0 UDP payload (the DNS flag day 2020 value, no IP fragmentation).
CLASSIC_UDP_SIZE = 512
EDNS_UDP_SIZE = 1232


class WireError(ValueError):
    """The bytes are not a well-formed DNS message; ``offset`` is where it went wrong."""

    def __init__(self, reason: str, offset: int) -> None:
        super().__init__(f"{reason} [offset={offset}]")
        self.offset = offset


def error_reply(query: bytes, rcode: int) -> bytes | None:
    """A header-only reply carrying ``rcode`` for ``query``, or None to drop it.

    Dropped: anything shorter than a header, and anything with QR set (never answer a
    response: that is how reflection loops between servers start).
    """
    if len(query) < HEADER_LEN:
        return None
    flags = int.from_bytes(query[2:4], "big")
    if flags & QR:
        return None
    out = QR | (flags & (OPCODE_MASK | RD)) | (rcode & RCODE_MASK)
    return query[:2] + out.to_bytes(2, "big") + bytes(8)


def _skip_name(msg: bytes, offset: int) -> int:
    """Offset just past the (possibly compressed) name starting at ``offset``."""
    end = len(msg)
    while True:
        if offset >= end:
            raise WireError("name runs past the end", offset)
        length = msg[offset]
        if length == 0:
            return offset + 1
        if length & 0xC0 == 0xC0:
            if offset + 2 > end:
                raise WireError("truncated compression pointer", offset)
            return offset + 2
        if length & 0xC0:
            raise WireError("reserved label type", offset)
        offset += 1 + length


def _plain_name_end(msg: bytes, offset: int) -> int:
    """Like _skip_name, for a name that must not be compressed (a question's)."""
    while True:
        if offset >= len(msg):
            raise WireError("name runs past the end", offset)
        length = msg[offset]
        if length == 0:
            return offset + 1
        if length & 0xC0:
            raise WireError("compressed question name", offset)
        offset += 1 + length


def ttl_offsets(msg: bytes) -> list[tuple[int, int]]:
    """(offset, ttl) of every resource record's TTL field, OPT pseudo-records excluded
    (their TTL field carries the extended rcode and flags, RFC 6891 6.1.3)."""
    if len(msg) < HEADER_LEN:
        raise WireError("shorter than a header", 0)
    qdcount, ancount, nscount, arcount = struct.unpack_from(">HHHH", msg, 4)
    offset = HEADER_LEN
    for _ in range(qdcount):
        offset = _skip_name(msg, offset) + 4
    found: list[tuple[int, int]] = []
    for _ in range(ancount + nscount + arcount):
        offset = _skip_name(msg, offset)
        if offset + 10 > len(msg):
            raise WireError("truncated resource record", offset)
        rtype, _rclass, ttl, rdlength = struct.unpack_from(">HHIH", msg, offset)
        if rtype != TYPE_OPT:
            found.append((offset + 4, ttl))
        offset += 10 + rdlength
        if offset > len(msg):
            raise WireError("rdata runs past the end", offset)
    if offset > len(msg):
        raise WireError("message runs past the end", offset)
    return found


def truncate(msg: bytes) -> bytes:
    """The TC=1 form of the packed reply ``msg``: header, question section and any OPT
    record kept (the client needs our EDNS size to pick TCP), answers dropped."""
    qdcount, _an, _ns, arcount = struct.unpack_from(">HHHH", msg, 4)
    offset = HEADER_LEN
    for _ in range(qdcount):
        offset = _skip_name(msg, offset) + 4
    question = msg[HEADER_LEN:offset]
    opt = _find_opt(msg) if arcount else b""
    flags = int.from_bytes(msg[2:4], "big") | TC
    header = msg[:2] + struct.pack(">HHHHH", flags, qdcount, 0, 0, 1 if opt else 0)
    return header + question + opt


def _find_opt(msg: bytes) -> bytes:
    qdcount, ancount, nscount, arcount = struct.unpack_from(">HHHH", msg, 4)
    offset = HEADER_LEN
    for _ in range(qdcount):
        offset = _skip_name(msg, offset) + 4
    for index in range(ancount + nscount + arcount):
        start = offset
        offset = _skip_name(msg, offset)
        rtype, _rclass, _ttl, rdlength = struct.unpack_from(">HHIH", msg, offset)
        offset += 10 + rdlength
        if index >= ancount + nscount and rtype == TYPE_OPT:
            return msg[start:offset]
    return b""


def reaged(template: bytes, offsets: list[tuple[int, int]], elapsed: int) -> bytes:
    """``template`` with every TTL at ``offsets`` lowered by ``elapsed`` seconds (not below
    zero): how a cache hands out the remaining TTL (RFC 1035 section 7.2)."""
    buf = bytearray(template)
    for offset, ttl in offsets:
        struct.pack_into(">I", buf, offset, ttl - elapsed if ttl > elapsed else 0)
    return bytes(buf)


# -- the forwarding path, without dnslib ---------------------------------------------

TYPE_SOA = 6
# Our OPT record: root owner, type 41, our UDP payload size, no extended rcode/flags/options.
OPT_RECORD = b"\x00" + struct.pack(">HHIH", TYPE_OPT, EDNS_UDP_SIZE, 0, 0)


@dataclass(frozen=True, slots=True)
class Query:
    """What the forwarding path needs from a plain query (one question, at most an OPT)."""

    qend: int  # offset just past the question
    key: bytes  # question name lowercased + type + class: the cache key
    qtype: int
    rd: bool
    edns: bool
    edns_version: int
    udp_size: int


def plain_query(msg: bytes) -> Query | None:
    """Decode a plain query, or None for anything else (the dnslib path decides those)."""
    if len(msg) < HEADER_LEN + 5:
        return None
    flags, qdcount, ancount, nscount, arcount = struct.unpack_from(">HHHHH", msg, 2)
    if flags & (QR | OPCODE_MASK) or qdcount != 1 or ancount or nscount or arcount > 1:
        return None
    offset = HEADER_LEN
    end = len(msg)
    while True:
        if offset >= end:
            return None
        length = msg[offset]
        if length == 0:
            break
        if length & 0xC0:
            return None  # a compressed or odd question: let dnslib judge it
        offset += 1 + length
    qend = offset + 5
    if qend > end:
        return None
    qtype = (msg[offset + 1] << 8) | msg[offset + 2]
    edns, version, size = False, 0, CLASSIC_UDP_SIZE
    if arcount:
        # RFC 6891 6.1.2: root owner, type OPT; nothing may follow it.
        if qend + 11 > end or msg[qend] != 0:
            return None
        rtype, size, ttl, rdlength = struct.unpack_from(">HHIH", msg, qend + 1)
        if rtype != TYPE_OPT or qend + 11 + rdlength != end:
            return None
        edns, version = True, (ttl >> 16) & 0xFF
    elif qend != end:
        return None
    key = msg[HEADER_LEN : qend - 4].lower() + msg[qend - 4 : qend]
    return Query(qend, key, qtype, bool(flags & RD), edns, version, size)


@dataclass(frozen=True, slots=True)
class Layout:
    """Where things are in a packed reply with one plain question."""

    rcode: int
    tc: bool
    counts: tuple[int, int, int]  # answer, authority, additional (OPT included)
    qend: int
    ttls: list[tuple[int, int]]  # (offset, ttl) of every non-OPT record
    opt: tuple[int, int] | None  # (start, end) of the OPT record
    soa_negative_ttl: int | None  # min(TTL, MINIMUM) of the first authority SOA


def layout(msg: bytes) -> Layout:
    if len(msg) < HEADER_LEN:
        raise WireError("shorter than a header", 0)
    flags, qdcount, ancount, nscount, arcount = struct.unpack_from(">HHHHH", msg, 2)
    if qdcount != 1:
        raise WireError("not one question", 4)
    qend = _plain_name_end(msg, HEADER_LEN) + 4
    if qend > len(msg):
        raise WireError("truncated question", HEADER_LEN)
    offset = qend
    ttls: list[tuple[int, int]] = []
    opt = None
    soa = None
    for index in range(ancount + nscount + arcount):
        start = offset
        offset = _skip_name(msg, offset)
        if offset + 10 > len(msg):
            raise WireError("truncated resource record", offset)
        rtype, _rclass, ttl, rdlength = struct.unpack_from(">HHIH", msg, offset)
        rdata = offset + 10
        offset = rdata + rdlength
        if offset > len(msg):
            raise WireError("rdata runs past the end", rdata)
        if rtype == TYPE_OPT:
            if opt is not None or index < ancount + nscount:
                raise WireError("misplaced or repeated OPT", start)
            opt = (start, offset)
            continue
        ttls.append((rdata - 6, ttl))
        if rtype == TYPE_SOA and soa is None and ancount <= index < ancount + nscount:
            if rdlength < 22:
                raise WireError("short SOA", rdata)
            soa = min(ttl, struct.unpack_from(">I", msg, offset - 4)[0])
    return Layout(
        rcode=flags & RCODE_MASK,
        tc=bool(flags & TC),
        counts=(ancount, nscount, arcount),
        qend=qend,
        ttls=ttls,
        opt=opt,
        soa_negative_ttl=soa,
    )


def question_matches(reply: bytes, query_id: int, question: bytes) -> bool:
    """Is ``reply`` the answer to our query (RFC 5452 9.1): same ID, QR set, the same
    single question (name compared case-insensitively)? A truncated or error reply with
    no question is accepted too (some servers send the bare header)."""
    if len(reply) < HEADER_LEN:
        return False
    rid, flags, qdcount = struct.unpack_from(">HHH", reply, 0)
    if rid != query_id or not flags & QR or flags & OPCODE_MASK:
        return False
    if qdcount == 0:
        # Some servers send a bare header when truncating or refusing (FORMERR to EDNS
        # from an old server): usable to pick TCP or retry, never cached.
        return bool(flags & TC or flags & RCODE_MASK)
    end = HEADER_LEN + len(question)
    return (
        qdcount == 1
        and len(reply) >= end
        and reply[HEADER_LEN : end - 4].lower() == question[:-4].lower()
        and reply[end - 4 : end] == question[-4:]
    )


def build_query(query_id: int, question: bytes, edns: bool) -> bytes:
    """A recursive query (RD=1) for ``question`` (name + type + class, as on the wire)."""
    header = struct.pack(">HHHHHH", query_id, RD, 1, 0, 0, 1 if edns else 0)
    return header + question + (OPT_RECORD if edns else b"")
