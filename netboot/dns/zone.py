"""The zones netboot is authoritative for, and the answers they give. Pure.

Zones: the node domain (``maas.lan``) and the reverse zones (in-addr.arpa) of the served
subnets. Their data, built from one snapshot of the store:

- apex: SOA and NS (``ns.<domain>``, with an A record for the appliance itself);
- static records from the configuration (zone-file lines, they win over dynamic names);
- ``<hostname>.<domain>`` A for every node (its lease address, else the address it
  reported at enlistment) and every unexpired lease with a usable hostname;
- PTR in the reverse zones for each of those addresses.

Answers follow RFC 1034 4.3.2: a name with data of another type is NODATA (NOERROR, SOA
in authority), a name that does not exist (no data, not an empty non-terminal) is
NXDOMAIN, with the SOA's TTL capped by its MINIMUM (RFC 2308 section 3). CNAMEs from the
static records are followed within our data. No wildcards, no zone transfers.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network

from dnslib import NS, PTR, QTYPE, RCODE, RR, SOA, A

# A short negative TTL: a node that enlists right after someone asked for its name must
# not stay hidden behind a client's cached NXDOMAIN for long (RFC 2308 section 4).
NEGATIVE_TTL = 5
_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_MAX_CNAME_CHAIN = 8


@dataclass(frozen=True, slots=True)
class ZoneSettings:
    domain: str  # lowercase, no trailing dot
    server_address: IPv4Address
    subnets: tuple[IPv4Network, ...]
    ttl: int
    static_records: tuple[RR, ...] = ()


@dataclass(frozen=True, slots=True)
class Host:
    """One name -> address mapping taken from the store."""

    hostname: str
    ip: IPv4Address
    source: str  # "node" or "lease", for logs


@dataclass(frozen=True, slots=True)
class Answer:
    rcode: int
    answer: list[RR] = field(default_factory=list)
    authority: list[RR] = field(default_factory=list)


def fqdn(name: str) -> str:
    """Lowercase, with exactly one trailing dot."""
    return name.lower().rstrip(".") + "."


def valid_hostname(name: str) -> bool:
    return bool(_LABEL.match(name))


def reverse_zones(subnet: IPv4Network) -> list[str]:
    """in-addr.arpa zones covering ``subnet``, on octet boundaries (RFC 1035 3.5).

    A /24 or longer prefix gets its /24 zone; shorter prefixes get one zone per /24
    (up to /16) or per /16 (up to /8), so we never claim more than the subnet rounds to.
    """
    if subnet.prefixlen >= 24:
        parts = [subnet.supernet(new_prefix=24)]
    elif subnet.prefixlen >= 16:
        parts = list(subnet.subnets(new_prefix=24))
    elif subnet.prefixlen >= 8:
        parts = list(subnet.subnets(new_prefix=16))
    else:
        parts = list(subnet.subnets(new_prefix=8))
    zones = []
    for net in parts:
        octets = str(net.network_address).split(".")[: net.prefixlen // 8]
        zones.append(".".join(reversed(octets)) + ".in-addr.arpa.")
    return zones


def ptr_name(ip: IPv4Address) -> str:
    return ip.reverse_pointer + "."


def zone_apexes(settings: ZoneSettings) -> tuple[str, ...]:
    apexes = [fqdn(settings.domain)]
    for subnet in settings.subnets:
        apexes += [z for z in reverse_zones(subnet) if z not in apexes]
    return tuple(apexes)


def apex_for(name: str, apexes: tuple[str, ...]) -> str | None:
    """The longest apex that ``name`` (fqdn form) is at or under, or None."""
    best = None
    for apex in apexes:
        if (name == apex or name.endswith("." + apex)) and (best is None or len(apex) > len(best)):
            best = apex
    return best


class Zones:
    """A snapshot: every record we serve, indexed by owner name and type."""

    def __init__(self, settings: ZoneSettings, hosts: Iterable[Host], serial: int) -> None:
        self.settings = settings
        self.apexes = zone_apexes(settings)
        self.serial = serial & 0xFFFFFFFF
        self._data: dict[str, dict[int, list[RR]]] = {}
        self._names: set[str] = set()
        self._build(list(hosts))

    # -- building ---------------------------------------------------------------

    def _add(self, rr: RR) -> None:
        name = fqdn(str(rr.rname))
        apex = apex_for(name, self.apexes)
        if apex is None:
            return
        self._data.setdefault(name, {}).setdefault(rr.rtype, []).append(rr)
        # The owner and every name between it and the apex exist (empty non-terminals).
        while True:
            self._names.add(name)
            if name == apex:
                break
            name = name.split(".", 1)[1]

    def _build(self, hosts: list[Host]) -> None:
        s = self.settings
        domain = fqdn(s.domain)
        ns_name = "ns." + domain
        for apex in self.apexes:
            soa = SOA(
                ns_name, "hostmaster." + domain, (self.serial, 3600, 600, 86400, NEGATIVE_TTL)
            )
            self._add(RR(apex, QTYPE.SOA, ttl=s.ttl, rdata=soa))
            self._add(RR(apex, QTYPE.NS, ttl=s.ttl, rdata=NS(ns_name)))
        for rr in s.static_records:
            self._add(rr)
        taken_names = set(self._data)
        taken_ptrs = set(n for n, types in self._data.items() if QTYPE.PTR in types)
        if ns_name not in taken_names:
            self._add(RR(ns_name, QTYPE.A, ttl=s.ttl, rdata=A(str(s.server_address))))
            taken_names.add(ns_name)
            ptr = ptr_name(s.server_address)
            if ptr not in taken_ptrs:
                self._add(RR(ptr, QTYPE.PTR, ttl=s.ttl, rdata=PTR(ns_name)))
                taken_ptrs.add(ptr)
        for host in hosts:
            label = host.hostname.lower()
            if not valid_hostname(label):
                continue
            name = f"{label}.{domain}"
            if name in taken_names:
                continue
            taken_names.add(name)
            self._add(RR(name, QTYPE.A, ttl=s.ttl, rdata=A(str(host.ip))))
            ptr = ptr_name(host.ip)
            if ptr not in taken_ptrs:
                taken_ptrs.add(ptr)
                self._add(RR(ptr, QTYPE.PTR, ttl=s.ttl, rdata=PTR(name)))

    # -- answering --------------------------------------------------------------

    def is_ours(self, qname: str) -> bool:
        return apex_for(fqdn(qname), self.apexes) is not None

    def answer(self, qname: str, qtype: int) -> Answer | None:
        """The authoritative answer for (qname, qtype), or None if qname is not ours."""
        name = fqdn(qname)
        apex = apex_for(name, self.apexes)
        if apex is None:
            return None
        records: list[RR] = []
        for _ in range(_MAX_CNAME_CHAIN):
            rrsets = self._data.get(name, {})
            if qtype == QTYPE.ANY and rrsets:
                return Answer(
                    RCODE.NOERROR, records + [rr for rrs in rrsets.values() for rr in rrs]
                )
            if qtype in rrsets:
                return Answer(RCODE.NOERROR, records + rrsets[qtype])
            cname = rrsets.get(QTYPE.CNAME)
            if not cname:
                break
            records += cname
            target = fqdn(str(cname[0].rdata.label))
            if apex_for(target, self.apexes) is None:
                return Answer(RCODE.NOERROR, records)  # the client follows it outside
            name = target
        # NODATA when the (final) name exists, NXDOMAIN when it does not (RFC 2308 2.1).
        rcode = RCODE.NOERROR if name in self._names else RCODE.NXDOMAIN
        return Answer(rcode, records, [self._negative_soa(apex_for(name, self.apexes) or apex)])

    def _negative_soa(self, apex: str) -> RR:
        soa = self._data[apex][QTYPE.SOA][0]
        return RR(soa.rname, QTYPE.SOA, ttl=min(soa.ttl, NEGATIVE_TTL), rdata=soa.rdata)
