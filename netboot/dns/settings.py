"""The [dns] configuration table, validated once into a frozen DNSConfig.

```toml
[dns]                                  # on by default; enabled = false turns it off
# bind = "10.66.0.1"                   # default: server_address
# port = 53
# domain = "maas.lan"                  # default: the DHCP domain, else "maas.lan"
# upstreams = ["192.0.2.53", "192.0.2.54:5353"]   # default: the host's resolv.conf
# allow_recursion = ["10.66.0.0/24"]   # default: the served DHCP subnets + 127.0.0.0/8
# records = ["gw IN A 10.66.0.254", "wiki IN CNAME gw"]   # zone-file lines
# reverse_subnets = ["10.66.0.0/24"]   # default: the served DHCP subnets
# cache_size = 10000                   # cached answers (entries)
# ttl = 30                             # TTL of node/lease records
# upstream_timeout = 1.5               # seconds per upstream attempt
# workers = 0                          # extra answering processes (SO_REUSEPORT)
# [dns.forward_zones]                  # conditional forwarders
# "corp.example" = ["192.0.2.10"]
```
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any

from dnslib import RR, DNSError

from netboot.config import ConfigError

RESOLV_CONF = Path("/etc/resolv.conf")
_KEYS = {
    "enabled",
    "bind",
    "port",
    "domain",
    "upstreams",
    "allow_recursion",
    "records",
    "reverse_subnets",
    "cache_size",
    "ttl",
    "upstream_timeout",
    "workers",
    "forward_zones",
}


@dataclass(frozen=True, slots=True)
class Upstream:
    ip: IPv4Address
    port: int = 53

    def __str__(self) -> str:
        return f"{self.ip}:{self.port}"


@dataclass(frozen=True, slots=True)
class DNSConfig:
    bind: IPv4Address
    port: int
    domain: str  # lowercase, no trailing dot
    upstreams: tuple[Upstream, ...]
    forward_zones: tuple[tuple[str, tuple[Upstream, ...]], ...]
    allow_recursion: tuple[IPv4Network, ...]
    reverse_subnets: tuple[IPv4Network, ...]
    records: tuple[RR, ...]
    cache_size: int = 10000
    ttl: int = 30
    upstream_timeout: float = 1.5
    workers: int = 0
    hold_down: bool = True  # not a TOML key: off in worker processes (dns/build.py)


def served_subnets(dhcp: Any) -> tuple[list[IPv4Network], str | None]:
    """The DHCP-served networks and the DHCP domain (None without DHCP)."""
    if dhcp is None:
        return [], None
    subnets = getattr(dhcp, "subnets", None)
    if subnets is not None:
        return [s.network for s in subnets], (subnets[0].domain if subnets else None)
    return [dhcp.subnet], dhcp.domain


def upstreams_from_resolv_conf(text: str, exclude: set[IPv4Address]) -> tuple[Upstream, ...]:
    """IPv4 ``nameserver`` lines of resolv.conf(5), minus addresses that would be us."""
    found: list[Upstream] = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "nameserver":
            try:
                ip = IPv4Address(parts[1])
            except ValueError:
                continue  # IPv6 upstreams are not supported yet
            if ip not in exclude and Upstream(ip) not in found:
                found.append(Upstream(ip))
    return tuple(found)


def parse_dns(
    raw: dict[str, Any],
    server_address: IPv4Address,
    dhcp: Any,
    resolv_conf: Path = RESOLV_CONF,
) -> DNSConfig | None:
    if not isinstance(raw, dict):
        raise ConfigError("dns", "must be a table")
    for key in raw:
        if key not in _KEYS:
            raise ConfigError(f"dns.{key}", f"unknown key (known: {', '.join(sorted(_KEYS))})")
    enabled = raw.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ConfigError("dns.enabled", "must be true or false")
    if not enabled:
        return None
    subnets, dhcp_domain = served_subnets(dhcp)
    bind = _ip(raw.get("bind", str(server_address)), "dns.bind")
    port = _int(raw, "port", 53, 0, 65535)
    domain = raw.get("domain", dhcp_domain or "maas.lan")
    if not isinstance(domain, str) or not _valid_domain(domain):
        raise ConfigError("dns.domain", "must be a DNS domain name like maas.lan")
    domain = domain.lower().rstrip(".")

    if "upstreams" in raw:
        upstreams = _upstreams(raw["upstreams"], "dns.upstreams")
    else:
        try:
            text = resolv_conf.read_text()
        except OSError:
            text = ""
        never = {bind, server_address, IPv4Address("0.0.0.0")}
        if bind == IPv4Address("0.0.0.0") or bind.is_loopback:
            never |= {IPv4Address(f"127.0.0.{i}") for i in range(256)}
        upstreams = upstreams_from_resolv_conf(text, never)
    for i, up in enumerate(upstreams):
        if up.ip == bind and up.port == port:
            raise ConfigError(f"dns.upstreams[{i}]", "is this server itself")

    zones_raw = raw.get("forward_zones", {})
    if not isinstance(zones_raw, dict):
        raise ConfigError("dns.forward_zones", 'must be a table of "domain" = [upstreams]')
    forward_zones = []
    for name, ups in zones_raw.items():
        if not _valid_domain(name):
            raise ConfigError(f"dns.forward_zones.{name}", "is not a domain name")
        zone_ups = _upstreams(ups, f"dns.forward_zones.{name}")
        for i, up in enumerate(zone_ups):
            if up.ip == bind and up.port == port:
                raise ConfigError(f"dns.forward_zones.{name}[{i}]", "is this server itself")
        forward_zones.append((name.lower().rstrip("."), zone_ups))

    allow = (
        _networks(raw["allow_recursion"], "dns.allow_recursion")
        if "allow_recursion" in raw
        else tuple(subnets) + (IPv4Network("127.0.0.0/8"),)
    )
    reverse = (
        _networks(raw["reverse_subnets"], "dns.reverse_subnets")
        if "reverse_subnets" in raw
        else tuple(subnets)
    )
    ttl = _int(raw, "ttl", 30, 0, 86400)
    timeout = raw.get("upstream_timeout", 1.5)
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not 0.05 <= timeout <= 30
    ):
        raise ConfigError("dns.upstream_timeout", "must be a number of seconds in 0.05..30")
    return DNSConfig(
        bind=bind,
        port=port,
        domain=domain,
        upstreams=upstreams,
        forward_zones=tuple(forward_zones),
        allow_recursion=allow,
        reverse_subnets=reverse,
        records=_records(raw.get("records", []), domain, reverse, ttl),
        cache_size=_int(raw, "cache_size", 10000, 1, 10_000_000),
        ttl=ttl,
        upstream_timeout=float(timeout),
        workers=_int(raw, "workers", 0, 0, 64),
    )


def _valid_domain(name: str) -> bool:
    labels = name.rstrip(".").split(".")
    return (
        0 < len(name) <= 253
        and all(0 < len(label) <= 63 for label in labels)
        and all(c.isalnum() or c in "-_" for label in labels for c in label)
    )


def _ip(value: Any, key: str) -> IPv4Address:
    if not isinstance(value, str):
        raise ConfigError(key, "must be an IPv4 address string")
    try:
        return IPv4Address(value)
    except ValueError:
        raise ConfigError(key, f"{value!r} is not an IPv4 address") from None


def _int(raw: dict[str, Any], key: str, default: int, lo: int, hi: int) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"dns.{key}", "must be an integer")
    if not lo <= value <= hi:
        raise ConfigError(f"dns.{key}", f"{value} is outside {lo}..{hi}")
    return value


def _upstreams(value: Any, key: str) -> tuple[Upstream, ...]:
    if not isinstance(value, list):
        raise ConfigError(key, 'must be a list like ["192.0.2.53", "192.0.2.54:5353"]')
    out = []
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise ConfigError(f"{key}[{i}]", "must be a string")
        host, _, port = item.partition(":")
        ip = _ip(host, f"{key}[{i}]")
        if port and (not port.isdigit() or not 0 < int(port) < 65536):
            raise ConfigError(f"{key}[{i}]", f"{port!r} is not a port")
        out.append(Upstream(ip, int(port) if port else 53))
    return tuple(out)


def _networks(value: Any, key: str) -> tuple[IPv4Network, ...]:
    if not isinstance(value, list):
        raise ConfigError(key, 'must be a list of networks like ["10.66.0.0/24"]')
    out = []
    for i, item in enumerate(value):
        try:
            out.append(IPv4Network(item))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{key}[{i}]", str(exc)) from None
    return tuple(out)


def _records(value: Any, domain: str, reverse: tuple[IPv4Network, ...], ttl: int) -> tuple[RR, ...]:
    from netboot.dns.zone import ZoneSettings, apex_for, fqdn, zone_apexes

    if not isinstance(value, list):
        raise ConfigError(
            "dns.records", 'must be a list of zone-file lines like "gw IN A 10.0.0.1"'
        )
    apexes = zone_apexes(ZoneSettings(domain, IPv4Address(0), reverse, ttl))
    out: list[RR] = []
    for i, line in enumerate(value):
        key = f"dns.records[{i}]"
        if not isinstance(line, str) or "\n" in line:
            raise ConfigError(key, "must be one zone-file line")
        try:
            rrs = RR.fromZone(line, origin=domain + ".", ttl=ttl)
        except (DNSError, ValueError, IndexError, KeyError, AttributeError) as exc:
            raise ConfigError(key, f"not a zone-file record: {exc}") from None
        if not rrs:
            raise ConfigError(key, "holds no record")
        for rr in rrs:
            if apex_for(fqdn(str(rr.rname)), apexes) is None:
                raise ConfigError(key, f"{rr.rname} is outside {domain} and the reverse zones")
        out += rrs
    return tuple(out)
