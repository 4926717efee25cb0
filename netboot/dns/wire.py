"""The few raw-wire operations dnslib does not give us (RFC 1035 section 4.1).

dnslib parses and builds messages everywhere else; these helpers exist for the hot path
and for input dnslib cannot parse:

- ``error_reply``: a header-only error answer (FORMERR, ...) built from the raw header
  of a query we could not decode, or ``None`` when the bytes must be dropped.
- ``ttl_offsets``: where every TTL sits in a packed message, so a cached answer can be
  re-aged by overwriting four bytes instead of a parse + pack.
- ``truncate``: the TC=1 reply (header + question, plus OPT when EDNS) for an answer that
  does not fit the client's UDP payload size (RFC 1035 4.2.1, RFC 6891 7).

Pure: bytes in, bytes out, no clock, no sockets.
"""

from __future__ import annotations

import struct

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
