"""DHCP leases and DHCP alarms in the SQLite store (tables from migration "leases v2").

LeaseStore opens its own connection to the store file (WAL, ``synchronous=FULL``): the
DHCP group committer writes from its own thread, and a long DHCP batch never blocks
the HTTP side's connection. ``apply`` returns only once its transaction is fsynced.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path

from netboot.dhcp.leases import Binding, State

__all__ = ["Alarm", "DeleteLease", "LeaseStore", "PutLease", "RecordAlarm"]


@dataclass(frozen=True, slots=True)
class PutLease:
    binding: Binding
    now: float


@dataclass(frozen=True, slots=True)
class DeleteLease:
    key: bytes


@dataclass(frozen=True, slots=True)
class Alarm:
    time: float
    interface: str
    kind: str
    server_ip: str
    server_mac: str
    message: str


@dataclass(frozen=True, slots=True)
class RecordAlarm:
    alarm: Alarm


Change = PutLease | DeleteLease | RecordAlarm

_UPSERT = (
    "INSERT INTO leases (client_id, mac, ip, state, expires, hostname, subnet, relay, updated)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(client_id) DO UPDATE SET"
    " mac = excluded.mac, ip = excluded.ip, state = excluded.state,"
    " expires = excluded.expires, hostname = excluded.hostname, subnet = excluded.subnet,"
    " relay = excluded.relay, updated = excluded.updated"
)


class LeaseStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA busy_timeout=10000")

    def close(self) -> None:
        self._db.close()

    def apply(self, changes: Sequence[Change]) -> None:
        """Write ``changes`` in order, in one transaction, durably (one fsync)."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            for change in changes:
                if type(change) is PutLease:
                    b = change.binding
                    db.execute(
                        _UPSERT,
                        (
                            b.key.hex(),
                            b.mac,
                            str(IPv4Address(b.ip)),
                            b.state.value,
                            b.expires,
                            b.hostname,
                            b.subnet,
                            b.relay.hex(),
                            change.now,
                        ),
                    )
                elif type(change) is DeleteLease:
                    db.execute("DELETE FROM leases WHERE client_id = ?", (change.key.hex(),))
                else:
                    a = change.alarm
                    db.execute(
                        "INSERT INTO dhcp_alarms (time, interface, kind, server_ip, server_mac,"
                        " message) VALUES (?, ?, ?, ?, ?, ?)",
                        (a.time, a.interface, a.kind, a.server_ip, a.server_mac, a.message),
                    )
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def load(self) -> list[Binding]:
        rows = self._db.execute(
            "SELECT client_id, mac, ip, state, expires, hostname, subnet, relay FROM leases"
        ).fetchall()
        return [_binding(r) for r in rows]

    def query(
        self, mac: str | None = None, ip: str | None = None, state: str | None = None
    ) -> list[Binding]:
        """Leases matching every given filter, by address."""
        sql = "SELECT client_id, mac, ip, state, expires, hostname, subnet, relay FROM leases"
        where, args = [], []
        for column, value in (("mac", mac), ("ip", ip), ("state", state)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value.lower() if column == "mac" else value)
        if where:
            sql += " WHERE " + " AND ".join(where)
        return sorted((_binding(r) for r in self._db.execute(sql, args)), key=lambda b: b.ip)

    def alarms(self, limit: int = 100) -> list[Alarm]:
        rows = self._db.execute(
            "SELECT time, interface, kind, server_ip, server_mac, message FROM dhcp_alarms"
            " ORDER BY id DESC LIMIT ?",
            (limit,),
        ).fetchall()
        return [Alarm(*r) for r in rows]


def _binding(row: tuple) -> Binding:
    key, mac, ip, state, expires, hostname, subnet, relay = row
    return Binding(
        key=bytes.fromhex(key),
        mac=mac,
        ip=int(IPv4Address(ip)),
        state=State(state),
        expires=expires,
        hostname=hostname,
        subnet=subnet,
        relay=bytes.fromhex(relay),
    )
