"""The resolver's decisions, with a fake store, a fake forwarder and a fake clock."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

import pytest
from dnslib import EDNS0, QTYPE, RCODE, RR, SOA, TXT, A, DNSRecord
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet import defer, task

from netboot.dns.acl import RecursionAcl
from netboot.dns.cache import Cache, WireIndex
from netboot.dns.forwarder import UpstreamFailure
from netboot.dns.live import LiveZones
from netboot.dns.resolver import Resolver
from netboot.dns.zone import ZoneSettings
from netboot.store.dns import DNSHost

INSIDE, OUTSIDE = "10.66.0.50", "192.0.2.9"


class FakeStore:
    def __init__(self) -> None:
        self.hosts: list[DNSHost] = []
        self.generation = 0

    def dns_generation(self) -> int:
        return self.generation

    def dns_hosts(self, now: float):
        return list(self.hosts), None


class FakeForwarder:
    def __init__(self) -> None:
        self.asked: list[tuple[str, bytes]] = []
        self.pending: list[defer.Deferred] = []

    def resolve(self, qname: str, question: bytes) -> defer.Deferred:
        self.asked.append((qname, question))
        d: defer.Deferred = defer.Deferred()
        self.pending.append(d)
        return d


@pytest.fixture
def env():
    clock = task.Clock()
    clock.advance(1000)
    store = FakeStore()
    forwarder = FakeForwarder()
    settings_ = ZoneSettings(
        "maas.lan", IPv4Address("10.66.0.1"), (IPv4Network("10.66.0.0/24"),), 30
    )
    resolver = Resolver(
        zones=LiveZones(store, settings_, clock.seconds),
        acl=RecursionAcl([IPv4Network("10.66.0.0/24")]),
        cache=Cache(100),
        index=WireIndex(100),
        forwarder=forwarder,  # type: ignore[arg-type]
        clock=clock.seconds,
    )
    return resolver, store, forwarder, clock


def ask(resolver, name: str, qtype: str = "A", client: str = INSIDE, edns: int | None = None,
        tcp: bool = False):  # fmt: skip
    q = DNSRecord.question(name, qtype)
    if edns is not None:
        q.add_ar(EDNS0(udp_len=edns))
    return resolver.handle(bytes(q.pack()), client, tcp=tcp)


def parsed(result) -> DNSRecord:
    if isinstance(result, defer.Deferred):
        out = []
        result.addCallback(out.append)
        assert out, "the reply is still pending"
        result = out[0]
    return DNSRecord.parse(result)


def upstream_reply(name: str, ttl: int = 300, rcode: int = RCODE.NOERROR) -> bytes:
    r = DNSRecord.question(name).reply()
    r.header.rcode = rcode
    if rcode == RCODE.NOERROR:
        r.add_answer(RR(name, QTYPE.A, ttl=ttl, rdata=A("198.51.100.1")))
    else:
        r.add_auth(RR("example.test", QTYPE.SOA, ttl=300, rdata=SOA("ns.", "h.", (1, 2, 3, 4, 60))))
    return bytes(r.pack())


def test_new_enlistment_answers_on_the_next_query(env):
    resolver, store, _, _ = env
    assert parsed(ask(resolver, "n1.maas.lan")).header.rcode == RCODE.NXDOMAIN
    store.hosts.append(DNSHost("n1", IPv4Address("10.66.0.100"), "node"))
    store.generation += 1  # what a store write does
    reply = parsed(ask(resolver, "n1.maas.lan"))
    assert reply.header.aa and [str(r.rdata) for r in reply.rr] == ["10.66.0.100"]
    store.hosts.clear()
    store.generation += 1
    assert parsed(ask(resolver, "n1.maas.lan")).header.rcode == RCODE.NXDOMAIN


def test_zone_is_not_rebuilt_while_the_store_is_unchanged(env):
    resolver, *_ = env
    for _ in range(5):
        ask(resolver, "ns.maas.lan")
    assert resolver.zones.rebuilds == 1


def test_outside_client_gets_our_zone_but_no_recursion(env):
    resolver, _, forwarder, _ = env
    refused = parsed(ask(resolver, "www.example.test", client=OUTSIDE))
    assert refused.header.rcode == RCODE.REFUSED and not refused.header.ra
    assert forwarder.asked == []
    ours = parsed(ask(resolver, "ns.maas.lan", client=OUTSIDE))
    assert ours.header.rcode == RCODE.NOERROR and ours.header.aa and not ours.header.ra


def test_miss_is_forwarded_once_then_answered_from_cache_with_aged_ttl(env):
    resolver, _, forwarder, clock = env
    first = ask(resolver, "www.example.test")
    second = ask(resolver, "WWW.example.test")  # same question in flight: no second query
    assert forwarder.asked == [
        ("www.example.test.", b"\x03www\x07example\x04test\x00\x00\x01\x00\x01")
    ]
    forwarder.pending[0].callback(upstream_reply("www.example.test"))
    assert parsed(first).rr[0].ttl == 300
    assert str(parsed(second).q.qname) == "WWW.example.test."  # the client's own spelling
    clock.advance(100)
    third = parsed(ask(resolver, "www.example.test"))
    assert third.rr[0].ttl == 200 and third.header.ra and not third.header.aa
    assert len(forwarder.asked) == 1
    clock.advance(200)
    ask(resolver, "www.example.test")
    assert len(forwarder.asked) == 2  # expired


def test_negative_answer_is_cached(env):
    resolver, _, forwarder, _ = env
    d = ask(resolver, "nx.example.test")
    forwarder.pending[0].callback(upstream_reply("nx.example.test", rcode=RCODE.NXDOMAIN))
    assert parsed(d).header.rcode == RCODE.NXDOMAIN
    assert parsed(ask(resolver, "nx.example.test")).header.rcode == RCODE.NXDOMAIN
    assert len(forwarder.asked) == 1


def test_upstream_failure_is_servfail_for_every_waiter(env):
    resolver, _, forwarder, _ = env
    a, b = ask(resolver, "x.example.test"), ask(resolver, "x.example.test", edns=1232)
    forwarder.pending[0].errback(UpstreamFailure("every upstream is held down"))
    assert parsed(a).header.rcode == RCODE.SERVFAIL
    assert parsed(b).header.rcode == RCODE.SERVFAIL
    assert resolver.stats["servfail"] == 2


def test_large_answer_is_truncated_on_udp_but_not_on_tcp(env):
    resolver, _, forwarder, _ = env
    big = DNSRecord.question("big.example.test", "TXT").reply()
    for i in range(14):  # ~1.5 KB: over 512 and over our 1232
        big.add_answer(RR("big.example.test", QTYPE.TXT, ttl=60, rdata=TXT("x" * 100 + str(i))))
    d = ask(resolver, "big.example.test", "TXT")
    forwarder.pending[0].callback(bytes(big.pack()))
    udp = parsed(d)
    assert udp.header.tc and udp.rr == []
    edns = parsed(ask(resolver, "big.example.test", "TXT", edns=4096))  # we cap at 1232
    assert edns.header.tc and edns.ar[0].rclass == 1232
    tcp = parsed(ask(resolver, "big.example.test", "TXT", tcp=True))
    assert not tcp.header.tc and len(tcp.rr) == 14


def test_edns_query_gets_an_opt_record_and_a_plain_one_does_not(env):
    resolver, *_ = env
    assert [r.rtype for r in parsed(ask(resolver, "ns.maas.lan", edns=1232)).ar] == [QTYPE.OPT]
    assert parsed(ask(resolver, "ns.maas.lan")).ar == []


def test_zone_transfer_is_refused(env):
    resolver, *_ = env
    assert parsed(ask(resolver, "maas.lan", "AXFR", tcp=True)).header.rcode == RCODE.REFUSED


def test_udp_cache_hit_registers_a_wire_entry_for_the_fast_path(env):
    resolver, _, forwarder, _ = env
    q = bytes(DNSRecord.question("www.example.test").pack())
    d = resolver.handle(q, INSIDE, tcp=False)
    forwarder.pending[0].callback(upstream_reply("www.example.test"))
    reply = parsed(d)
    entry = resolver.index.entries[q[2:]]
    assert q[:2] + entry[1] == reply.pack()


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_never_raise_and_replies_are_responses(data: bytes):
    clock = task.Clock()
    settings_ = ZoneSettings(
        "maas.lan", IPv4Address("10.66.0.1"), (IPv4Network("10.66.0.0/24"),), 30
    )
    resolver = Resolver(
        LiveZones(FakeStore(), settings_, clock.seconds),
        RecursionAcl([IPv4Network("10.66.0.0/24")]),
        Cache(10),
        WireIndex(10),
        FakeForwarder(),  # type: ignore[arg-type]
        clock.seconds,
    )
    result = resolver.handle(data, INSIDE, tcp=False)
    if isinstance(result, bytes):
        assert len(result) >= 12 and result[:2] == data[:2] and result[2] & 0x80
    else:
        assert result is None or isinstance(result, defer.Deferred)
