"""Decide the answer to one DHCP request (RFC 2131 section 4.3). Pure: no I/O, no clock.

The server adapter gathers the client's facts and the lease state, calls ``decide`` and
carries out the decision (commit the lease durably, then send).
"""

from __future__ import annotations

from collections.abc import Set
from dataclasses import dataclass
from ipaddress import IPv4Address

from netboot.bootconfig.methods import BootAnswer
from netboot.config import DHCPConfig
from netboot.dhcp.codec import MessageType
from netboot.dhcp.facts import ClientFacts
from netboot.store.models import Lease


@dataclass(frozen=True, slots=True)
class Offer:
    ip: IPv4Address
    lease_seconds: int


@dataclass(frozen=True, slots=True)
class Ack:
    ip: IPv4Address
    lease_seconds: int


@dataclass(frozen=True, slots=True)
class InformAck:
    """Answer to DHCPINFORM: options only, no address (RFC 2131 section 3.4)."""


@dataclass(frozen=True, slots=True)
class Nak:
    reason: str


@dataclass(frozen=True, slots=True)
class Release:
    ip: IPv4Address


@dataclass(frozen=True, slots=True)
class Drop:
    reason: str


Decision = Offer | Ack | InformAck | Nak | Release | Drop


@dataclass(frozen=True, slots=True)
class LeaseState:
    """What the policy needs to know of the lease table for one client."""

    own: Lease | None  # this client's lease, if any (expired or not)
    held: Set[IPv4Address]  # addresses under an unexpired lease, any client


def decide(
    facts: ClientFacts,
    cfg: DHCPConfig,
    server_id: IPv4Address,
    state: LeaseState,
    now: float,
) -> Decision:
    mtype = facts.message_type
    if mtype == MessageType.DISCOVER:
        ip = _choose_address(facts, cfg, state, now)
        if ip is None:
            return Drop("no free address in the range")
        return Offer(ip, cfg.lease_seconds)
    if mtype == MessageType.REQUEST:
        return _request(facts, cfg, server_id, state, now)
    if mtype == MessageType.RELEASE:
        if state.own is not None and facts.ciaddr == state.own.ip:
            return Release(state.own.ip)
        return Drop("release for an address this client does not hold")
    if mtype == MessageType.INFORM:
        return InformAck()
    if mtype == MessageType.DECLINE:
        return Drop("decline (conflict handling not implemented yet)")
    return Drop(f"message type {mtype} is not for a server")


def _request(
    facts: ClientFacts,
    cfg: DHCPConfig,
    server_id: IPv4Address,
    state: LeaseState,
    now: float,
) -> Decision:
    if facts.server_id is not None:
        # SELECTING: the client answers an offer; if it chose another server, stay quiet.
        if facts.server_id != server_id:
            return Drop(f"client selected server {facts.server_id}")
        wanted = facts.requested_ip
    else:
        # INIT-REBOOT uses option 50; RENEWING/REBINDING put the address in ciaddr.
        wanted = facts.requested_ip or (facts.ciaddr if int(facts.ciaddr) else None)
    if wanted is None:
        return Drop("request names no address")
    if not _in_range(wanted, cfg):
        return Nak(f"{wanted} is not in this server's range")
    mine = state.own is not None and state.own.ip == wanted
    if not mine and wanted in state.held:
        return Nak(f"{wanted} is leased to another client")
    return Ack(wanted, cfg.lease_seconds)


def _in_range(ip: IPv4Address, cfg: DHCPConfig) -> bool:
    return cfg.range_start <= ip <= cfg.range_end


def _choose_address(
    facts: ClientFacts, cfg: DHCPConfig, state: LeaseState, now: float
) -> IPv4Address | None:
    # RFC 2131 4.3.1: the client's current or previous address, then the one it asks for,
    # then any free one.
    own = state.own
    if own is not None and _in_range(own.ip, cfg):
        return own.ip
    requested = facts.requested_ip
    if requested is not None and _in_range(requested, cfg) and requested not in state.held:
        return requested
    for value in range(int(cfg.range_start), int(cfg.range_end) + 1):
        candidate = IPv4Address(value)
        if candidate not in state.held:
            return candidate
    return None


def reply_options(
    facts: ClientFacts,
    cfg: DHCPConfig,
    server_id: IPv4Address,
    lease_seconds: int | None,
    boot: BootAnswer | None,
) -> list[tuple[int, object]]:
    """Options for an OFFER/ACK as (code, value) pairs, typed for options.encode."""
    opts: list[tuple[int, object]] = [(54, server_id)]
    if lease_seconds is not None:
        opts += [(51, lease_seconds), (58, lease_seconds // 2), (59, lease_seconds * 7 // 8)]
    opts.append((1, cfg.subnet.netmask))
    if cfg.router is not None:
        opts.append((3, [cfg.router]))
    if cfg.dns_servers:
        opts.append((6, list(cfg.dns_servers)))
    opts.append((15, cfg.domain))
    opts.append((28, cfg.subnet.broadcast_address))
    if boot is not None:
        if boot.vendor_class:
            opts.append((60, boot.vendor_class))
        opts.append((67, boot.filename))
    return opts
