"""The UDP adapter's hot path: repeated identical queries are answered from spliced
bytes without reaching the resolver, but only for clients inside the ACL."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

from dnslib import QTYPE, RCODE, RR, A, DNSRecord
from twisted.internet import task

from netboot.dns.acl import RecursionAcl
from netboot.dns.cache import Cache, WireIndex
from netboot.dns.live import LiveZones
from netboot.dns.resolver import Resolver
from netboot.dns.server import DNSDatagramProtocol
from netboot.dns.zone import ZoneSettings
from tests.unit.test_dns_resolver import FakeForwarder, FakeStore

INSIDE = ("10.66.0.50", 40000)
OUTSIDE = ("192.0.2.9", 40000)


class FakeSocket:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, tuple[str, int]]] = []

    def sendto(self, data: bytes, addr: tuple[str, int]) -> int:
        self.sent.append((bytes(data), addr))
        return len(data)


class FakePort:
    def __init__(self) -> None:
        self.socket = FakeSocket()


def make():
    clock = task.Clock()
    clock.advance(1000)
    forwarder = FakeForwarder()
    settings = ZoneSettings(
        "maas.lan", IPv4Address("10.66.0.1"), (IPv4Network("10.66.0.0/24"),), 30
    )
    resolver = Resolver(
        LiveZones(FakeStore(), settings, clock.seconds),
        RecursionAcl([IPv4Network("10.66.0.0/24")]),
        Cache(10),
        WireIndex(10),
        forwarder,  # type: ignore[arg-type]
        clock.seconds,
    )
    proto = DNSDatagramProtocol(resolver, clock.seconds)
    proto.makeConnection(FakePort())
    return proto, resolver, forwarder, clock


def query(qid: int) -> bytes:
    q = DNSRecord.question("www.example.test")
    q.header.id = qid
    return bytes(q.pack())


def upstream(ttl: int = 60) -> bytes:
    r = DNSRecord.question("www.example.test").reply()
    r.add_answer(RR("www.example.test", QTYPE.A, ttl=ttl, rdata=A("198.51.100.1")))
    return bytes(r.pack())


def test_second_identical_query_is_spliced_without_the_resolver():
    proto, resolver, forwarder, clock = make()
    sent = proto.transport.socket.sent
    proto.datagramReceived(query(1), INSIDE)
    forwarder.pending[0].callback(upstream())
    assert DNSRecord.parse(sent[-1][0]).header.id == 1
    decided = sum(resolver.stats.values())
    proto.datagramReceived(query(2), INSIDE)
    assert sum(resolver.stats.values()) == decided  # the resolver never saw it
    second = DNSRecord.parse(sent[-1][0])
    assert second.header.id == 2 and str(second.rr[0].rdata) == "198.51.100.1"
    assert sent[-1][1] == INSIDE
    clock.advance(10.5)  # re-aged on the hot path too
    proto.datagramReceived(query(3), INSIDE)
    assert DNSRecord.parse(sent[-1][0]).rr[0].ttl == 50
    clock.advance(60)  # expired: back to the resolver, which asks upstream again
    proto.datagramReceived(query(4), INSIDE)
    assert len(forwarder.pending) == 2


def test_hot_entry_is_not_served_to_a_client_outside_the_acl():
    proto, _, forwarder, _ = make()
    sent = proto.transport.socket.sent
    proto.datagramReceived(query(1), INSIDE)
    forwarder.pending[0].callback(upstream())
    proto.datagramReceived(query(2), OUTSIDE)
    refused = DNSRecord.parse(sent[-1][0])
    assert refused.header.rcode == RCODE.REFUSED and refused.rr == []


def test_garbage_is_dropped_or_formerr_and_the_protocol_keeps_going():
    proto, *_ = make()
    sent = proto.transport.socket.sent
    proto.datagramReceived(b"\x01", INSIDE)
    assert sent == []
    proto.datagramReceived(b"\x00\x07" + b"\x01\x00" + b"\x00\x05" + bytes(6), INSIDE)
    assert DNSRecord.parse(sent[-1][0]).header.rcode == RCODE.FORMERR
    proto.datagramReceived(bytes(DNSRecord.question("ns.maas.lan").pack()), INSIDE)
    assert str(DNSRecord.parse(sent[-1][0]).rr[0].rdata) == "10.66.0.1"
