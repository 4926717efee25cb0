"""Raw-wire helpers: header-only error replies, TTL offsets, re-aging, truncation."""

from __future__ import annotations

import struct

from dnslib import EDNS0, QTYPE, RR, TXT, A, DNSRecord
from hypothesis import given
from hypothesis import strategies as st

from netboot.dns.wire import WireError, error_reply, reaged, truncate, ttl_offsets


def _query(flags: int = 0x0100) -> bytes:
    return struct.pack(">HHHHHH", 0xBEEF, flags, 1, 0, 0, 0) + b"\x01a\x00\x00\x01\x00\x01"


def test_error_reply_keeps_id_opcode_and_rd_and_sets_qr_and_rcode():
    reply = error_reply(_query(), 1)
    assert reply is not None
    qid, flags, qd, an, ns, ar = struct.unpack(">HHHHHH", reply)
    assert qid == 0xBEEF and flags == 0x8101 and (qd, an, ns, ar) == (0, 0, 0, 0)


def test_error_reply_drops_responses_and_short_input():
    assert error_reply(_query(flags=0x8100), 1) is None  # never answer an answer
    assert error_reply(b"\x00" * 11, 1) is None


def _answer(ttls: list[int], edns: bool = True) -> bytes:
    reply = DNSRecord.question("x.example.test").reply()
    for ttl in ttls:
        reply.add_answer(RR("x.example.test", QTYPE.A, ttl=ttl, rdata=A("192.0.2.1")))
    if edns:
        reply.add_ar(EDNS0(udp_len=1232))
    return reply.pack()


def test_ttl_offsets_find_every_ttl_but_not_the_opt_pseudo_record():
    wire = _answer([300, 60])
    offsets = ttl_offsets(wire)
    assert [ttl for _, ttl in offsets] == [300, 60]
    for offset, ttl in offsets:
        assert struct.unpack_from(">I", wire, offset)[0] == ttl


def test_reaged_lowers_ttls_and_stops_at_zero():
    wire = _answer([300, 5])
    parsed = DNSRecord.parse(reaged(wire, ttl_offsets(wire), 10))
    assert [rr.ttl for rr in parsed.rr] == [290, 0]
    assert parsed.ar[0].rclass == 1232  # the OPT record is untouched


def test_truncate_keeps_question_and_opt_and_sets_tc():
    reply = DNSRecord.question("big.example.test", "TXT").reply()
    for i in range(20):
        reply.add_answer(RR("big.example.test", QTYPE.TXT, ttl=60, rdata=TXT("x" * 100 + str(i))))
    reply.add_ar(EDNS0(udp_len=1232))
    cut = DNSRecord.parse(truncate(reply.pack()))
    assert cut.header.tc and cut.header.id == reply.header.id
    assert cut.rr == [] and str(cut.q.qname) == "big.example.test."
    assert [r.rtype for r in cut.ar] == [QTYPE.OPT]


@given(st.binary(max_size=300))
def test_ttl_offsets_on_random_bytes_raise_only_wire_error(data: bytes):
    try:
        offsets = ttl_offsets(data)
    except WireError as exc:
        assert 0 <= exc.offset <= len(data) + 65535
        return
    assert all(offset >= 12 and offset + 4 <= len(data) for offset, _ in offsets)
