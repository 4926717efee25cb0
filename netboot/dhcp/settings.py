"""The [dhcp] configuration table, validated once into frozen dataclasses.

Two spellings, one result. The flat keys (``subnet``, ``range_start``, ``range_end``,
``router`` ...) describe a single subnet served on ``interfaces``; ``[[dhcp.subnets]]``
tables describe several (local ones name an ``interface``, relayed ones do not: the
relay's giaddr selects them). Every error names its dotted key, e.g.
``dhcp.subnets[1].hosts[0].ip``.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from typing import Any

from netboot.config import ConfigError, _int, _parse_ip, _reject_unknown

__all__ = ["DHCPConfig", "HostReservation", "SubnetConfig", "parse_dhcp"]

MODES = ("server", "proxy")


@dataclass(frozen=True, slots=True)
class HostReservation:
    """A fixed address for one client, matched by MAC or by relay option 82 sub-options
    (RFC 3046 §2.0: 1 = circuit id, 2 = remote id), compared as raw text."""

    ip: IPv4Address
    mac: str | None = None
    circuit_id: bytes | None = None
    remote_id: bytes | None = None
    hostname: str | None = None


@dataclass(frozen=True, slots=True)
class SubnetConfig:
    network: IPv4Network
    ranges: tuple[tuple[IPv4Address, IPv4Address], ...]  # dynamic pools, inclusive
    reserved: tuple[tuple[IPv4Address, IPv4Address], ...]  # never handed out dynamically
    hosts: tuple[HostReservation, ...]
    interface: str | None  # None: reached through relays (or any served interface)
    server_id: IPv4Address  # option 54 and siaddr for this subnet
    router: IPv4Address | None
    dns_servers: tuple[IPv4Address, ...]
    ntp_servers: tuple[IPv4Address, ...]
    domain: str
    domain_search: tuple[str, ...]
    lease_seconds: int  # installed OSes
    boot_lease_seconds: int  # PXE / iPXE / enlistment boots (MAAS uses 30 s)
    mtu: int | None = None

    @property
    def pool_size(self) -> int:
        return sum(int(end) - int(start) + 1 for start, end in self.ranges)


@dataclass(frozen=True, slots=True)
class DHCPConfig:
    interfaces: tuple[str, ...]
    subnets: tuple[SubnetConfig, ...]
    mode: str = "server"  # "proxy": boot options only, another server gives addresses
    authoritative: bool = True  # NAK foreign addresses; ACK unknown INIT-REBOOT clients
    decline_seconds: int = 600  # quarantine after DHCPDECLINE (RFC 2131 §4.3.3)
    conflict_probe: bool = True  # ARP-probe fresh addresses after offering them
    rogue_probe_seconds: int = 300  # 0 disables the rogue-DHCP probe
    reclaim_seconds: int = 10  # how often expired leases are reclaimed
    offer_hold_seconds: int = 30  # an offered address is kept for its client this long
    log_replies: bool = True  # one log line per OFFER/ACK (off for load tests)
    commit: str = "thread"  # group commit from a writer thread, or "reactor" (commit.py)

    @property
    def proxy(self) -> bool:
        return self.mode == "proxy"


_SUBNET_KEYS = {
    "subnet",
    "interface",
    "range_start",
    "range_end",
    "ranges",
    "reserved",
    "hosts",
    "server_id",
    "router",
    "dns_servers",
    "ntp_servers",
    "domain",
    "domain_search",
    "lease_seconds",
    "boot_lease_seconds",
    "mtu",
}
_GLOBAL_KEYS = {
    "interfaces",
    "subnets",
    "mode",
    "authoritative",
    "decline_seconds",
    "conflict_probe",
    "rogue_probe_seconds",
    "reclaim_seconds",
    "offer_hold_seconds",
    "log_replies",
    "commit",
}
# Keys that may be set once under [dhcp] as defaults for every subnet.
_INHERITED = {
    "dns_servers",
    "ntp_servers",
    "domain",
    "domain_search",
    "lease_seconds",
    "boot_lease_seconds",
}


def parse_dhcp(raw: dict[str, Any], server_address: IPv4Address) -> DHCPConfig:
    """Validate the [dhcp] table; raise ConfigError naming the key at fault."""
    flat = "subnet" in raw
    if flat and "subnets" in raw:
        raise ConfigError("dhcp.subnets", "use either the flat subnet keys or [[dhcp.subnets]]")
    known = _GLOBAL_KEYS | (_SUBNET_KEYS if flat else _INHERITED)
    _reject_unknown(raw, known, "dhcp.")
    interfaces = raw.get("interfaces")
    # Safety: DHCP is answered only on interfaces the operator named explicitly.
    if (
        not isinstance(interfaces, list)
        or not interfaces
        or not all(isinstance(i, str) and i for i in interfaces)
    ):
        raise ConfigError(
            "dhcp.interfaces", "must be a non-empty list of interface names to answer DHCP on"
        )
    mode = raw.get("mode", "server")
    if mode not in MODES:
        raise ConfigError("dhcp.mode", f"must be one of {', '.join(MODES)}")
    defaults = {k: raw[k] for k in _INHERITED if k in raw}
    subnets: list[SubnetConfig] = []
    if flat:
        subnets.append(_subnet(raw, {}, "dhcp.", server_address, None))
    else:
        tables = raw.get("subnets", [])
        if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
            raise ConfigError("dhcp.subnets", "must be an array of tables ([[dhcp.subnets]])")
        if not tables and mode == "server":
            raise ConfigError("dhcp.subnets", "a DHCP server needs at least one subnet")
        for i, table in enumerate(tables):
            prefix = f"dhcp.subnets[{i}]."
            _reject_unknown(table, _SUBNET_KEYS, prefix)
            iface = table.get("interface")
            if iface is not None and iface not in interfaces:
                raise ConfigError(f"{prefix}interface", f"{iface!r} is not in dhcp.interfaces")
            subnets.append(_subnet(table, defaults, prefix, server_address, iface))
    for i, a in enumerate(subnets):
        for b in subnets[i + 1 :]:
            if a.network.overlaps(b.network):
                raise ConfigError("dhcp.subnets", f"{a.network} overlaps {b.network}")
    return DHCPConfig(
        interfaces=tuple(interfaces),
        subnets=tuple(subnets),
        mode=mode,
        authoritative=_bool(raw, "authoritative", "dhcp.authoritative", True),
        decline_seconds=_int(raw, "decline_seconds", "dhcp.decline_seconds", 600, 1, 86400 * 30),
        conflict_probe=_bool(raw, "conflict_probe", "dhcp.conflict_probe", True),
        rogue_probe_seconds=_int(
            raw, "rogue_probe_seconds", "dhcp.rogue_probe_seconds", 300, 0, 86400
        ),
        reclaim_seconds=_int(raw, "reclaim_seconds", "dhcp.reclaim_seconds", 10, 1, 3600),
        offer_hold_seconds=_int(raw, "offer_hold_seconds", "dhcp.offer_hold_seconds", 30, 2, 600),
        log_replies=_bool(raw, "log_replies", "dhcp.log_replies", True),
        commit=_choice(raw, "commit", "dhcp.commit", ("thread", "reactor")),
    )


def _subnet(
    raw: dict[str, Any],
    defaults: dict[str, Any],
    prefix: str,
    server_address: IPv4Address,
    interface: str | None,
) -> SubnetConfig:
    def get(key: str, default: Any = None) -> Any:
        return raw.get(key, defaults.get(key, default))

    value = raw.get("subnet")
    if not isinstance(value, str):
        raise ConfigError(f"{prefix}subnet", "is required: a network like 10.66.0.0/24")
    try:
        network = IPv4Network(value)
    except ValueError as exc:
        raise ConfigError(f"{prefix}subnet", str(exc)) from None
    server_id = (
        _parse_ip(raw["server_id"], f"{prefix}server_id") if "server_id" in raw else server_address
    )
    if "ranges" in raw:
        ranges = _ranges(raw["ranges"], f"{prefix}ranges", network)
    elif "range_start" in raw or "range_end" in raw:
        start = _parse_ip(raw.get("range_start"), f"{prefix}range_start")
        end = _parse_ip(raw.get("range_end"), f"{prefix}range_end")
        for key, addr in (("range_start", start), ("range_end", end)):
            if addr not in network:
                raise ConfigError(
                    f"{prefix}{key}", f"{addr} is not inside {prefix}subnet {network}"
                )
        if int(end) < int(start):
            raise ConfigError(f"{prefix}range_end", f"{end} is before {prefix}range_start {start}")
        ranges = ((start, end),)
    else:
        ranges = ()
    for start, end in ranges:
        if start <= server_id <= end:
            key = "range_start" if "range_start" in raw else "ranges"
            raise ConfigError(f"{prefix}{key}", f"range includes server address {server_id}")
    if prefix == "dhcp." and server_id not in network:
        raise ConfigError("server_address", f"{server_id} is not inside dhcp.subnet {network}")
    reserved = _ranges(raw.get("reserved", []), f"{prefix}reserved", network)
    hosts = _hosts(raw.get("hosts", []), f"{prefix}hosts", network)
    router = _parse_ip(raw["router"], f"{prefix}router") if "router" in raw else None
    dns_raw = get("dns_servers", [str(server_id)])
    dns = _ip_list(dns_raw, f"{prefix}dns_servers")
    ntp = _ip_list(get("ntp_servers", []), f"{prefix}ntp_servers")
    domain = get("domain", "maas.lan")
    if not isinstance(domain, str) or not domain or len(domain) > 253:
        raise ConfigError(f"{prefix}domain", "must be a DNS domain name")
    # Option 119 defaults to the node domain (as MAAS does), so short names of
    # neighbours resolve on installed nodes; an explicit [] turns it off.
    search = get("domain_search", [domain])
    if not isinstance(search, list) or not all(isinstance(s, str) and s for s in search):
        raise ConfigError(f"{prefix}domain_search", "must be a list of domain names")
    mtu = _int(raw, "mtu", f"{prefix}mtu", 0, 0, 65535) or None
    return SubnetConfig(
        network=network,
        ranges=ranges,
        reserved=reserved,
        hosts=hosts,
        interface=interface,
        server_id=server_id,
        router=router,
        dns_servers=dns,
        ntp_servers=ntp,
        domain=domain,
        domain_search=tuple(search),
        lease_seconds=_int(
            {"v": get("lease_seconds", 600)}, "v", f"{prefix}lease_seconds", 600, 30, 365 * 86400
        ),
        boot_lease_seconds=_int(
            {"v": get("boot_lease_seconds", 30)}, "v", f"{prefix}boot_lease_seconds", 30, 10, 86400
        ),
        mtu=mtu,
    )


def _ranges(value: Any, key: str, network: IPv4Network) -> tuple[tuple[IPv4Address, ...], ...]:
    if not isinstance(value, list):
        raise ConfigError(key, 'must be a list of ["first", "last"] address pairs')
    out = []
    for i, pair in enumerate(value):
        name = f"{key}[{i}]"
        if not isinstance(pair, list) or len(pair) != 2:
            raise ConfigError(name, 'must be a ["first", "last"] address pair')
        start, end = _parse_ip(pair[0], name), _parse_ip(pair[1], name)
        if start not in network or end not in network:
            raise ConfigError(name, f"{start}-{end} is not inside {network}")
        if int(end) < int(start):
            raise ConfigError(name, f"{end} is before {start}")
        out.append((start, end))
    return tuple(out)


def _hosts(value: Any, key: str, network: IPv4Network) -> tuple[HostReservation, ...]:
    if not isinstance(value, list) or not all(isinstance(h, dict) for h in value):
        raise ConfigError(key, "must be an array of tables ([[...hosts]])")
    out: list[HostReservation] = []
    seen: set[IPv4Address] = set()
    for i, host in enumerate(value):
        name = f"{key}[{i}]"
        _reject_unknown(host, {"ip", "mac", "circuit_id", "remote_id", "hostname"}, f"{name}.")
        ip = _parse_ip(host.get("ip"), f"{name}.ip")
        if ip not in network:
            raise ConfigError(f"{name}.ip", f"{ip} is not inside {network}")
        if ip in seen:
            raise ConfigError(f"{name}.ip", f"{ip} is reserved twice")
        seen.add(ip)
        mac = host.get("mac")
        if mac is not None:
            mac = _mac(mac, f"{name}.mac")
        circuit, remote = host.get("circuit_id"), host.get("remote_id")
        for sub, val in (("circuit_id", circuit), ("remote_id", remote)):
            if val is not None and (not isinstance(val, str) or not val):
                raise ConfigError(f"{name}.{sub}", "must be a non-empty string")
        if mac is None and circuit is None and remote is None:
            raise ConfigError(name, "needs mac, circuit_id or remote_id to match a client")
        hostname = host.get("hostname")
        if hostname is not None and not isinstance(hostname, str):
            raise ConfigError(f"{name}.hostname", "must be a string")
        out.append(
            HostReservation(
                ip=ip,
                mac=mac,
                circuit_id=circuit.encode() if circuit else None,
                remote_id=remote.encode() if remote else None,
                hostname=hostname,
            )
        )
    return tuple(out)


def _mac(value: Any, key: str) -> str:
    text = value.lower().replace("-", ":") if isinstance(value, str) else ""
    parts = text.split(":")
    if len(parts) != 6 or not all(len(p) == 2 for p in parts):
        raise ConfigError(key, f"{value!r} is not a MAC address like 52:54:00:12:34:56")
    try:
        bytes.fromhex("".join(parts))
    except ValueError:
        raise ConfigError(key, f"{value!r} is not a MAC address") from None
    return text


def _ip_list(value: Any, key: str) -> tuple[IPv4Address, ...]:
    if not isinstance(value, list):
        raise ConfigError(key, "must be a list of IPv4 addresses")
    return tuple(_parse_ip(v, f"{key}[{i}]") for i, v in enumerate(value))


def _choice(raw: dict[str, Any], key: str, name: str, choices: tuple[str, ...]) -> str:
    value = raw.get(key, choices[0])
    if value not in choices:
        raise ConfigError(name, f"must be one of {', '.join(choices)}")
    return value


def _bool(raw: dict[str, Any], key: str, name: str, default: bool) -> bool:
    value = raw.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(name, "must be true or false")
    return value
