"""Served subnets at run time: which subnet a request belongs to, its pool and its
reservations.

Selection (RFC 2131 §4.3.1, RFC 3011, RFC 3527): a relayed request (giaddr set) belongs
to the subnet holding the link-selection sub-option (82.5), else option 118, else giaddr;
a direct one to the subnet configured on the interface it arrived on.
"""

from __future__ import annotations

from collections.abc import Iterable

from netboot.dhcp.facts import ClientFacts
from netboot.dhcp.leases import LeaseTable, Pool
from netboot.dhcp.settings import HostReservation, SubnetConfig

__all__ = ["Subnet", "SubnetMap", "relay_suboptions"]


def relay_suboptions(raw: bytes | None) -> dict[int, bytes]:
    """Option 82 sub-options (RFC 3046 §2.0) as {code: value}; malformed -> {}."""
    found: dict[int, bytes] = {}
    if not raw:
        return found
    pos, size = 0, len(raw)
    while pos + 2 <= size:
        stop = pos + 2 + raw[pos + 1]
        if stop > size:
            return {}
        found.setdefault(raw[pos], raw[pos + 2 : stop])
        pos = stop
    return found if pos == size else {}


class Subnet:
    """One configured subnet with its pool and reservation indexes."""

    def __init__(self, cfg: SubnetConfig, table: LeaseTable) -> None:
        self.cfg = cfg
        self.network = cfg.network
        self.net_int = int(cfg.network.network_address)
        self.mask_int = int(cfg.network.netmask)
        self.name = str(cfg.network)
        self.server_id = cfg.server_id
        self.by_mac: dict[str, HostReservation] = {}
        self.by_circuit: dict[bytes, HostReservation] = {}
        self.by_remote: dict[bytes, HostReservation] = {}
        for host in cfg.hosts:
            if host.mac:
                self.by_mac[host.mac] = host
            if host.circuit_id:
                self.by_circuit[host.circuit_id] = host
            if host.remote_id:
                self.by_remote[host.remote_id] = host
        self.reserved_ips = {int(h.ip) for h in cfg.hosts}
        excluded = set(self.reserved_ips)
        for start, end in cfg.reserved:
            excluded.update(range(int(start), int(end) + 1))
        excluded.add(int(cfg.server_id))
        self._static_excluded = frozenset(excluded)
        self.pins: dict[str, HostReservation] = {}  # from the store (netboot leases --pin)
        self.pool = Pool([(int(s), int(e)) for s, e in cfg.ranges], excluded, table)

    def set_pins(self, pins: dict[str, HostReservation]) -> None:
        """Store pins in this subnet (configured hosts win over a pin for the same MAC);
        their addresses leave the dynamic pool."""
        self.pins = {mac: host for mac, host in pins.items() if mac not in self.by_mac}
        self.pool.excluded = set(self._static_excluded) | {int(h.ip) for h in self.pins.values()}

    def __contains__(self, ip: int) -> bool:
        return ip & self.mask_int == self.net_int

    def reservation(self, facts: ClientFacts) -> HostReservation | None:
        host = self.by_mac.get(facts.mac) or self.pins.get(facts.mac)
        if host is not None:
            return host
        if facts.relay_agent_info and (self.by_circuit or self.by_remote):
            subs = relay_suboptions(facts.relay_agent_info)
            host = self.by_circuit.get(subs.get(1, b"")) or self.by_remote.get(subs.get(2, b""))
        return host

    def lease_seconds(self, boot_client: bool) -> int:
        return self.cfg.boot_lease_seconds if boot_client else self.cfg.lease_seconds


class SubnetMap:
    """All served subnets; finds the one a request belongs to."""

    def __init__(self, configs: Iterable[SubnetConfig], table: LeaseTable) -> None:
        self.subnets = [Subnet(c, table) for c in configs]
        table.pools = [s.pool for s in self.subnets]
        self._local: dict[str, Subnet] = {}
        self._any_local = [s for s in self.subnets if s.cfg.interface is None]
        for subnet in self.subnets:
            if subnet.cfg.interface is not None:
                self._local.setdefault(subnet.cfg.interface, subnet)

    def set_pins(self, pins: Iterable[HostReservation]) -> None:
        """Addresses pinned to MACs in the store, each given to the subnet holding it."""
        for subnet in self.subnets:
            subnet.set_pins({h.mac: h for h in pins if h.mac and int(h.ip) in subnet})

    def containing(self, ip: int) -> Subnet | None:
        for subnet in self.subnets:
            if ip in subnet:
                return subnet
        return None

    def select(self, facts: ClientFacts, giaddr: int, interface: str) -> Subnet | None:
        if giaddr:
            subs = relay_suboptions(facts.relay_agent_info)
            link = subs.get(5)
            if link is not None and len(link) == 4:
                return self.containing(int.from_bytes(link, "big"))
            if facts.subnet_selection is not None:
                return self.containing(int(facts.subnet_selection))
            return self.containing(giaddr)
        if facts.subnet_selection is not None:
            return self.containing(int(facts.subnet_selection))
        local = self._local.get(interface)
        if local is not None:
            return local
        return self._any_local[0] if self._any_local else None
