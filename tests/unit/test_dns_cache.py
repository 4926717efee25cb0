"""Answer cache on wire bytes: TTLs, negative caching (RFC 2308), size bound, rendering
for each client, and the UDP hot index."""

from __future__ import annotations

from dnslib import EDNS0, QTYPE, RCODE, RR, SOA, A, DNSRecord

from netboot.dns.cache import MAX_TTL, Cache, WireIndex, answer_from, cache_ttl
from netboot.dns.wire import layout, plain_query

SOA_RR = RR("example.test", QTYPE.SOA, ttl=300, rdata=SOA("ns.", "h.", (1, 2, 3, 4, 60)))


def reply(name="www.example.test", ttls=(300,), rcode=RCODE.NOERROR, soa=False, edns=True) -> bytes:
    r = DNSRecord.question(name).reply()
    r.header.rcode = rcode
    for ttl in ttls:
        r.add_answer(RR(name, QTYPE.A, ttl=ttl, rdata=A("192.0.2.1")))
    if soa:
        r.add_auth(SOA_RR)
    if edns:
        r.add_ar(EDNS0(udp_len=4096))
    return bytes(r.pack())


def entry(wire: bytes, now: float = 1000.0):
    return answer_from(wire, layout(wire), now)


def test_positive_answer_lives_for_its_smallest_ttl_capped():
    assert cache_ttl(layout(reply(ttls=(300, 20)))) == 20
    assert cache_ttl(layout(reply(ttls=(10**9,)))) == MAX_TTL


def test_negative_answers_use_min_of_soa_ttl_and_minimum():
    assert cache_ttl(layout(reply(ttls=(), rcode=RCODE.NXDOMAIN, soa=True))) == 60
    assert cache_ttl(layout(reply(ttls=(), soa=True))) == 60  # NODATA


def test_uncacheable_answers():
    assert cache_ttl(layout(reply(ttls=(), rcode=RCODE.NXDOMAIN))) is None  # no SOA
    assert cache_ttl(layout(reply(ttls=(), rcode=RCODE.SERVFAIL, soa=True))) is None
    assert cache_ttl(layout(reply(ttls=(0,)))) is None
    truncated = bytearray(reply())
    truncated[2] |= 0x02
    assert cache_ttl(layout(bytes(truncated))) is None
    assert Cache(5).put(b"k", entry(reply(ttls=(0,)))) is False


def test_render_uses_the_clients_id_case_and_edns_and_ages_ttls():
    cached = entry(reply(ttls=(30,)))
    assert cached is not None and cached.counts == (1, 0, 0)  # upstream OPT removed
    query = DNSRecord.question("WWW.Example.TEST")
    query.header.id = 4242
    wire = bytes(query.pack())
    q = plain_query(wire)
    plain = DNSRecord.parse(cached.render(wire, q.qend, False, 512, now=1012.5))
    assert plain.header.id == 4242 and plain.header.qr and plain.header.ra and plain.header.rd
    assert str(plain.q.qname) == "WWW.Example.TEST."
    assert plain.rr[0].ttl == 18 and plain.ar == []
    query.add_ar(EDNS0(udp_len=1232))
    wire = bytes(query.pack())
    q = plain_query(wire)
    with_edns = DNSRecord.parse(cached.render(wire, q.qend, True, 1232, now=1000.0))
    assert [r.rtype for r in with_edns.ar] == [QTYPE.OPT] and with_edns.ar[0].rclass == 1232


def test_render_truncates_to_the_clients_limit():
    big = entry(reply("big.example.test", ttls=[60] * 40))
    wire = bytes(DNSRecord.question("big.example.test").pack())
    out = DNSRecord.parse(big.render(wire, plain_query(wire).qend, False, 512, now=1000.0))
    assert out.header.tc and out.rr == []


def test_entries_expire():
    cache = Cache(10)
    cache.put(b"k", entry(reply(ttls=(30,)), now=1000.0))
    assert cache.get(b"k", now=1029.9) is not None
    assert cache.get(b"k", now=1030.0) is None
    assert len(cache) == 0


def test_size_bound_evicts_least_recently_used():
    cache = Cache(2)
    for key in (b"a", b"b"):
        cache.put(key, entry(reply()))
    assert cache.get(b"a", 1001) is not None  # "a" is now the most recent
    cache.put(b"c", entry(reply()))
    assert len(cache) == 2 and cache.evictions == 1
    assert cache.get(b"b", 1001) is None and cache.get(b"a", 1001) is not None


def test_wire_index_splices_reages_each_second_and_expires():
    query = DNSRecord.question("www.example.test")
    query.header.id = 1
    wire_query = bytes(query.pack())
    answer = DNSRecord.parse(reply(ttls=(30,), edns=False))
    answer.header.id = 1
    index = WireIndex(10)
    index.add(wire_query, answer.pack(), stored=100.0, expires=130.0, now=100.2)
    hot = index.entries[wire_query[2:]]
    assert hot[0] == 101.0  # valid until the age changes
    assert DNSRecord.parse(b"\x00\x01" + hot[1]).rr[0].ttl == 30
    tail = index.refresh(wire_query[2:], now=110.7)
    assert DNSRecord.parse(b"\x00\x01" + tail).rr[0].ttl == 20
    assert hot[0] == 111.0
    assert index.refresh(wire_query[2:], now=130.0) is None
    assert wire_query[2:] not in index.entries


def test_wire_index_is_bounded():
    index = WireIndex(2)
    for i in range(5):
        q = bytes(DNSRecord.question(f"h{i}.example.test").pack())
        index.add(q, reply(f"h{i}.example.test"), 0.0, 60.0, 0.0)
    assert len(index) == 2
