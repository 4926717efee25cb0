"""Decide the answer to one DHCP request (RFC 2131 §4.3). Pure: no I/O, no clock.

The adapter (server.py) gathers the request's context -- facts, client key, the subnet
it belongs to, the in-memory lease table, the time -- calls ``decide`` and carries out
the decision: hold an offer, commit a lease durably and then ACK, quarantine, NAK, or
stay silent. Client states (RFC 2131 §4.3.2) are told apart by which of server id (54),
requested address (50) and ciaddr the REQUEST carries.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address

from netboot.dhcp.codec import MessageType
from netboot.dhcp.facts import ClientFacts
from netboot.dhcp.leases import LeaseTable, State
from netboot.dhcp.quickinit import quick_init
from netboot.dhcp.settings import DHCPConfig
from netboot.dhcp.subnets import Subnet

__all__ = [
    "Ack",
    "Decision",
    "Decline",
    "Drop",
    "InformAck",
    "Nak",
    "Offer",
    "ProxyAck",
    "ProxyOffer",
    "Release",
    "Request",
    "decide",
]


@quick_init
@dataclass(frozen=True, slots=True)
class Offer:
    ip: int
    lease_seconds: int


@quick_init
@dataclass(frozen=True, slots=True)
class Ack:
    ip: int
    lease_seconds: int


@dataclass(frozen=True, slots=True)
class InformAck:
    """DHCPINFORM: options only, no address and no lease time (RFC 2131 §3.4, §4.3.5)."""


@dataclass(frozen=True, slots=True)
class ProxyOffer:
    """proxyDHCP (PXE 2.1 §2.4): boot options, no address; another server leases."""


@dataclass(frozen=True, slots=True)
class ProxyAck:
    """PXE boot server answer on port 4011: boot options for a configured client."""


@dataclass(frozen=True, slots=True)
class Nak:
    reason: str


@dataclass(frozen=True, slots=True)
class Release:
    """DHCPRELEASE (RFC 2131 §4.3.4): free the client's address; no reply."""

    ip: int


@dataclass(frozen=True, slots=True)
class Decline:
    """DHCPDECLINE (RFC 2131 §4.3.3): the address is in use; quarantine it; no reply."""

    ip: int


@dataclass(frozen=True, slots=True)
class Drop:
    reason: str


Decision = Offer | Ack | InformAck | ProxyOffer | ProxyAck | Nak | Release | Decline | Drop


@quick_init
@dataclass(frozen=True, slots=True)
class Request:
    """Everything the decision depends on."""

    facts: ClientFacts
    key: bytes  # client key (leases.client_key)
    subnet: Subnet | None  # None: not a subnet we serve
    table: LeaseTable
    cfg: DHCPConfig
    now: float
    boot_client: bool  # PXE / iPXE / HTTP boot: short lease, boot options
    our_ids: frozenset[int]  # every server identifier we answer as
    pxe_port: bool = False  # arrived on 4011 (PXE boot server)


def decide(req: Request) -> Decision:
    mtype = req.facts.message_type
    if req.cfg.proxy or req.pxe_port:
        return _proxy(req, mtype)
    if mtype == MessageType.DISCOVER:
        return _discover(req)
    if mtype == MessageType.REQUEST:
        return _request(req)
    if mtype == MessageType.RELEASE:
        own = req.table.get(req.key)
        ciaddr = int(req.facts.ciaddr)
        if own is not None and own.ip == ciaddr and own.state == State.ACTIVE:
            return Release(ciaddr)
        return Drop("release for an address this client does not hold")
    if mtype == MessageType.DECLINE:
        return _decline(req)
    if mtype == MessageType.INFORM:
        if req.subnet is None:
            return Drop("inform from outside every served subnet")
        return InformAck()
    return Drop(f"message type {mtype} is not for a server")


def _proxy(req: Request, mtype: int | None) -> Decision:
    if not req.boot_client:
        return Drop("proxyDHCP answers only PXE / HTTP boot clients")
    if mtype == MessageType.DISCOVER and not req.pxe_port:
        return ProxyOffer()
    if mtype in (MessageType.REQUEST, MessageType.INFORM) and req.pxe_port:
        return ProxyAck()
    return Drop("proxyDHCP: nothing to say to this message")


def _discover(req: Request) -> Decision:
    subnet, facts, table, key, now = req.subnet, req.facts, req.table, req.key, req.now
    if subnet is None:
        return Drop("no served subnet for this client (interface or relay giaddr)")
    lease = subnet.lease_seconds(req.boot_client)
    host = subnet.reservation(facts)
    if host is not None:
        ip = int(host.ip)
        if table.free_for(ip, key, now):
            return Offer(ip, lease)
        return Drop(f"reserved address {host.ip} is held by another client")
    # RFC 2131 §4.3.1: the client's current or previous address, then an address
    # already offered to it, then the one it asks for, then a free one.
    own = table.get(key)
    if own is not None and subnet.pool.contains(own.ip) and table.free_for(own.ip, key, now):
        return Offer(own.ip, lease)
    offered = table.offer_of(key, now)
    if offered is not None and subnet.pool.contains(offered) and table.free_for(offered, key, now):
        return Offer(offered, lease)
    wanted = facts.requested_ip
    if wanted is not None:
        ip = int(wanted)
        if subnet.pool.contains(ip) and ip not in table.by_ip and table.free_for(ip, key, now):
            return Offer(ip, lease)
    ip = subnet.pool.allocate(key, now)
    if ip is None:
        return Drop(f"no free address in {subnet.name}")
    return Offer(ip, lease)


def _request(req: Request) -> Decision:
    facts = req.facts
    ciaddr = int(facts.ciaddr)
    requested = int(facts.requested_ip) if facts.requested_ip is not None else None
    if facts.server_id is not None:
        # SELECTING: the client answers an offer; if it chose another server, stay quiet.
        if int(facts.server_id) not in req.our_ids:
            return Drop(f"client selected server {facts.server_id}")
        if requested is None:
            return Drop("SELECTING request without a requested address (50)")
        return _verify(req, requested, "SELECTING")
    if requested is not None and not ciaddr:
        return _verify(req, requested, "INIT-REBOOT")
    if ciaddr:
        # RENEWING (unicast) and REBINDING (broadcast) are answered alike.
        return _verify(req, ciaddr, "RENEWING/REBINDING")
    return Drop("request names no address")


def _verify(req: Request, ip: int, state: str) -> Decision:
    subnet, table, key, now = req.subnet, req.table, req.key, req.now
    authoritative = req.cfg.authoritative
    if subnet is None:
        return Drop(f"{state} from outside every served subnet")
    if ip not in subnet:
        # The client moved to another network (RFC 2131 §4.3.2).
        if authoritative:
            return Nak(f"{IPv4Address(ip)} is not on {subnet.name}")
        return Drop(f"{IPv4Address(ip)} is not on {subnet.name}")
    lease = subnet.lease_seconds(req.boot_client)
    host = subnet.reservation(req.facts)
    own = table.get(key)
    if host is not None:
        if ip != int(host.ip):
            return Nak(f"this client is reserved {host.ip}")
    elif not subnet.pool.contains(ip):
        if own is None and not authoritative:
            return Drop(f"{IPv4Address(ip)} is not one of our addresses")
        return Nak(f"{IPv4Address(ip)} is not in a dynamic range of {subnet.name}")
    holder = table.holder(ip, now)
    if holder is not None and holder != key:
        return Nak(f"{IPv4Address(ip)} is held by another client")
    if state == "INIT-REBOOT" and own is None and not authoritative:
        return Drop("INIT-REBOOT from a client we have no record of")
    if (
        state != "SELECTING"
        and host is None
        and own is not None
        and own.ip != ip
        and own.holds(now)
    ):
        return Nak(f"this client holds {IPv4Address(own.ip)}, not {IPv4Address(ip)}")
    return Ack(ip, lease)


def _decline(req: Request) -> Decision:
    facts = req.facts
    if facts.server_id is not None and int(facts.server_id) not in req.our_ids:
        return Drop("decline addressed to another server")
    if facts.requested_ip is None:
        return Drop("decline without the declined address (50)")
    ip = int(facts.requested_ip)
    own = req.table.get(req.key)
    offered = req.table.offer_of(req.key, req.now)
    if (own is not None and own.ip == ip) or offered == ip:
        return Decline(ip)
    return Drop(f"decline of {facts.requested_ip}, which this client does not hold")
