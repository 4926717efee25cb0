"""The authoritative zones: node/lease names, PTR, SOA/NS, NXDOMAIN vs NODATA, statics."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

import pytest
from dnslib import QTYPE, RCODE, RR

from netboot.dns.zone import NEGATIVE_TTL, Host, Zones, ZoneSettings, reverse_zones

SUBNET = IPv4Network("10.66.0.0/24")


def zones(hosts=(), records: str = "") -> Zones:
    static = tuple(RR.fromZone(records, origin="maas.lan.", ttl=30)) if records else ()
    settings = ZoneSettings("maas.lan", IPv4Address("10.66.0.1"), (SUBNET,), 30, static)
    return Zones(settings, hosts, serial=7)


def rdatas(answer) -> list[str]:
    return [str(rr.rdata) for rr in answer.answer]


def test_node_name_has_an_a_record_and_its_address_a_ptr():
    z = zones([Host("quiet-fox", IPv4Address("10.66.0.100"), "node")])
    a = z.answer("Quiet-Fox.MAAS.lan.", QTYPE.A)  # names are case-insensitive
    assert a.rcode == RCODE.NOERROR and rdatas(a) == ["10.66.0.100"]
    assert a.answer[0].ttl == 30
    ptr = z.answer("100.0.66.10.in-addr.arpa", QTYPE.PTR)
    assert rdatas(ptr) == ["quiet-fox.maas.lan."]


def test_unknown_name_is_nxdomain_with_the_soa_capped_by_its_minimum():
    a = zones().answer("nobody.maas.lan", QTYPE.A)
    assert a.rcode == RCODE.NXDOMAIN and a.answer == []
    [soa] = a.authority
    assert soa.rtype == QTYPE.SOA and soa.ttl == NEGATIVE_TTL
    assert soa.rdata.times[0] == 7  # the serial we were built with


def test_existing_name_without_that_type_is_nodata():
    a = zones([Host("n1", IPv4Address("10.66.0.100"), "node")]).answer("n1.maas.lan", QTYPE.AAAA)
    assert a.rcode == RCODE.NOERROR and a.answer == [] and a.authority[0].rtype == QTYPE.SOA


def test_empty_non_terminal_is_nodata_not_nxdomain():
    z = zones(records="a.b IN A 10.66.0.9")
    assert z.answer("b.maas.lan", QTYPE.A).rcode == RCODE.NOERROR
    assert z.answer("c.maas.lan", QTYPE.A).rcode == RCODE.NXDOMAIN
    # The reverse zone's intermediate labels exist too.
    assert z.answer("0.66.10.in-addr.arpa", QTYPE.SOA).answer[0].rtype == QTYPE.SOA


def test_apex_has_soa_and_ns_and_the_ns_name_resolves_to_the_appliance():
    z = zones()
    assert rdatas(z.answer("maas.lan", QTYPE.NS)) == ["ns.maas.lan."]
    assert rdatas(z.answer("ns.maas.lan", QTYPE.A)) == ["10.66.0.1"]
    assert rdatas(z.answer("1.0.66.10.in-addr.arpa", QTYPE.PTR)) == ["ns.maas.lan."]
    assert {rr.rtype for rr in z.answer("maas.lan", QTYPE.ANY).answer} == {QTYPE.SOA, QTYPE.NS}


def test_names_outside_our_zones_are_not_answered():
    z = zones()
    assert z.answer("example.com", QTYPE.A) is None
    assert z.answer("1.0.67.10.in-addr.arpa", QTYPE.PTR) is None
    assert z.answer("xmaas.lan", QTYPE.A) is None


def test_static_records_win_and_cnames_are_followed_inside_the_zone():
    z = zones(
        [Host("gw", IPv4Address("10.66.0.100"), "lease")],
        records="gw IN A 10.66.0.254\nwiki IN CNAME gw\nout IN CNAME www.example.com.",
    )
    assert rdatas(z.answer("gw.maas.lan", QTYPE.A)) == ["10.66.0.254"]
    assert rdatas(z.answer("wiki.maas.lan", QTYPE.A)) == ["gw.maas.lan.", "10.66.0.254"]
    assert rdatas(z.answer("out.maas.lan", QTYPE.A)) == ["www.example.com."]
    assert rdatas(z.answer("wiki.maas.lan", QTYPE.CNAME)) == ["gw.maas.lan."]


def test_node_beats_lease_with_the_same_name_and_bad_hostnames_are_skipped():
    z = zones(
        [
            Host("n1", IPv4Address("10.66.0.100"), "node"),
            Host("n1", IPv4Address("10.66.0.101"), "lease"),
            Host("bad_name!", IPv4Address("10.66.0.102"), "lease"),
            Host("-x", IPv4Address("10.66.0.103"), "lease"),
        ]
    )
    assert rdatas(z.answer("n1.maas.lan", QTYPE.A)) == ["10.66.0.100"]
    assert z.answer("102.0.66.10.in-addr.arpa", QTYPE.PTR).rcode == RCODE.NXDOMAIN


@pytest.mark.parametrize(
    ("subnet", "first", "count"),
    [
        ("10.66.0.0/24", "0.66.10.in-addr.arpa.", 1),
        ("10.66.0.128/25", "0.66.10.in-addr.arpa.", 1),
        ("10.66.16.0/20", "16.66.10.in-addr.arpa.", 16),
        ("10.66.0.0/16", "0.66.10.in-addr.arpa.", 256),
        ("10.64.0.0/14", "64.10.in-addr.arpa.", 4),
    ],
)
def test_reverse_zones_follow_octet_boundaries(subnet, first, count):
    zones_ = reverse_zones(IPv4Network(subnet))
    assert zones_[0] == first and len(zones_) == count
