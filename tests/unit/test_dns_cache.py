"""Answer cache: TTLs, negative caching (RFC 2308), size bound; the wire hot index."""

from __future__ import annotations

from dnslib import QTYPE, RCODE, RR, SOA, A, DNSRecord

from netboot.dns.cache import MAX_TTL, Cache, WireIndex, cache_key, cache_ttl

SOA_RR = RR("example.test", QTYPE.SOA, ttl=300, rdata=SOA("ns.", "h.", (1, 2, 3, 4, 60)))


def reply(name: str = "www.example.test", ttls=(300,), rcode=RCODE.NOERROR, soa=False):
    r = DNSRecord.question(name).reply()
    r.header.rcode = rcode
    for ttl in ttls:
        r.add_answer(RR(name, QTYPE.A, ttl=ttl, rdata=A("192.0.2.1")))
    if soa:
        r.add_auth(SOA_RR)
    return r


def test_positive_answer_lives_for_its_smallest_ttl_capped():
    assert cache_ttl(reply(ttls=(300, 20))) == 20
    assert cache_ttl(reply(ttls=(10**9,))) == MAX_TTL


def test_negative_answers_use_min_of_soa_ttl_and_minimum():
    assert cache_ttl(reply(ttls=(), rcode=RCODE.NXDOMAIN, soa=True)) == 60  # NXDOMAIN
    assert cache_ttl(reply(ttls=(), soa=True)) == 60  # NODATA


def test_uncacheable_answers():
    assert cache_ttl(reply(ttls=(), rcode=RCODE.NXDOMAIN)) is None  # no SOA (RFC 2308 5)
    assert cache_ttl(reply(ttls=(), rcode=RCODE.SERVFAIL, soa=True)) is None
    assert cache_ttl(reply(ttls=(0,))) is None
    truncated = reply()
    truncated.header.tc = 1
    assert cache_ttl(truncated) is None


def test_entries_expire_and_ttls_age():
    cache = Cache(10)
    key = cache_key("WWW.example.test.", QTYPE.A, 1)
    assert key == ("www.example.test.", QTYPE.A, 1)
    cache.put(key, reply(ttls=(30,)), now=1000.0)
    entry = cache.get(key, now=1012.5)
    assert entry is not None
    answer, _, _ = entry.aged(1012.5)
    assert answer[0].ttl == 18
    assert cache.get(key, now=1030.0) is None
    assert len(cache) == 0


def test_size_bound_evicts_least_recently_used():
    cache = Cache(2)
    keys = [cache_key(f"h{i}.example.test", QTYPE.A, 1) for i in range(3)]
    cache.put(keys[0], reply(), 0)
    cache.put(keys[1], reply(), 0)
    assert cache.get(keys[0], 1) is not None  # keys[0] is now the most recent
    cache.put(keys[2], reply(), 2)
    assert len(cache) == 2 and cache.evictions == 1
    assert cache.get(keys[1], 3) is None and cache.get(keys[0], 3) is not None


def test_wire_index_splices_reages_each_second_and_expires():
    query = DNSRecord.question("www.example.test")
    query.header.id = 1
    wire_query = bytes(query.pack())
    answer = reply(ttls=(30,))
    answer.header.id = 1
    index = WireIndex(10)
    index.add(wire_query, answer.pack(), stored=100.0, expires=130.0, now=100.2)
    entry = index.entries[wire_query[2:]]
    assert entry[0] == 101.0  # valid until the age changes
    assert DNSRecord.parse(b"\x00\x01" + entry[1]).rr[0].ttl == 30
    tail = index.refresh(wire_query[2:], now=110.7)
    assert DNSRecord.parse(b"\x00\x01" + tail).rr[0].ttl == 20
    assert entry[0] == 111.0
    assert index.refresh(wire_query[2:], now=130.0) is None
    assert wire_query[2:] not in index.entries


def test_wire_index_is_bounded():
    index = WireIndex(2)
    for i in range(5):
        q = DNSRecord.question(f"h{i}.example.test").pack()
        index.add(q, reply(f"h{i}.example.test").pack(), 0.0, 60.0, 0.0)
    assert len(index) == 2
