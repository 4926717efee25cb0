"""What DNS needs from the store: host names with addresses, and a cheap change marker.

A mixin for SQLiteStore (it uses the store's ``_db`` connection). Read-only.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from ipaddress import IPv4Address


@dataclass(frozen=True, slots=True)
class DNSHost:
    hostname: str
    ip: IPv4Address
    source: str  # "node" or "lease"


class DNSStoreMixin:
    _db: sqlite3.Connection

    def dns_generation(self) -> tuple[int, int]:
        """Changes whenever any connection commits a write: ``total_changes`` counts this
        connection's own writes, ``PRAGMA data_version`` everyone else's (other processes
        included). Equal markers mean the DNS data cannot have changed."""
        version = self._db.execute("PRAGMA data_version").fetchone()[0]
        return (self._db.total_changes, version)

    def dns_hosts(self, now: float) -> tuple[list[DNSHost], float | None]:
        """Nodes first (by hostname), then other unexpired leases with a hostname; and the
        time the earliest of the leases used expires (the answer changes then)."""
        # Only bound leases name a host (not released, declined or conflicting ones).
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(leases)")}
        bound = " AND state = 'active'" if "state" in columns else ""
        leases = self._db.execute(
            "SELECT mac, ip, expires, hostname FROM leases WHERE expires > ?"
            + bound
            + " ORDER BY updated DESC",
            (now,),
        ).fetchall()
        by_mac = {row["mac"]: row for row in leases}
        macs: dict[str, list[str]] = {}
        for mac, system_id in self._db.execute("SELECT mac, system_id FROM node_macs"):
            macs.setdefault(system_id, []).append(mac)
        hosts: list[DNSHost] = []
        used: set[str] = set()
        next_expiry: float | None = None
        rows = self._db.execute(
            "SELECT system_id, hostname, boot_mac, inventory FROM nodes ORDER BY hostname"
        )
        for row in rows:
            node_macs = [row["boot_mac"]] + sorted(macs.get(row["system_id"], []))
            lease = next((by_mac[m] for m in node_macs if m in by_mac), None)
            if lease is not None:
                ip = _ip(lease["ip"])
                used.add(lease["mac"])
                next_expiry = _earliest(next_expiry, lease["expires"])
            else:
                ip = _reported_ip(row["inventory"], row["boot_mac"])
            if ip is not None:
                hosts.append(DNSHost(row["hostname"], ip, "node"))
        for lease in leases:
            if lease["mac"] in used or not lease["hostname"]:
                continue
            ip = _ip(lease["ip"])
            if ip is not None:
                hosts.append(DNSHost(lease["hostname"], ip, "lease"))
                next_expiry = _earliest(next_expiry, lease["expires"])
        return hosts, next_expiry


def _earliest(current: float | None, candidate: float) -> float:
    return candidate if current is None else min(current, candidate)


def _ip(value: object) -> IPv4Address | None:
    try:
        return IPv4Address(str(value).split("/", 1)[0])
    except ValueError:
        return None


def _reported_ip(inventory: str, boot_mac: str) -> IPv4Address | None:
    """The IPv4 address the node reported for its boot interface (else any) at enlistment."""
    try:
        interfaces = json.loads(inventory).get("interfaces") or []
    except (ValueError, AttributeError):
        return None
    candidates = [i for i in interfaces if isinstance(i, dict) and i.get("ipv4")]
    candidates.sort(key=lambda i: str(i.get("mac", "")).lower() != boot_mac)
    for interface in candidates:
        ip = _ip(interface["ipv4"])
        if ip is not None:
            return ip
    return None
