"""DHCP leases and DHCP alarms in the SQLite store (tables from migration "leases v2").

LeaseStore opens its own connection to the store file (WAL, ``synchronous=FULL``): the
DHCP group committer writes from its own thread, and a long DHCP batch never blocks
the HTTP side's connection. ``apply`` returns only once its transaction is fsynced.
"""

from __future__ import annotations

import socket
import sqlite3
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path

from netboot.dhcp.leases import Binding, State
from netboot.dhcp.quickinit import quick_init
from netboot.dhcp.settings import HostReservation

__all__ = ["Alarm", "DeleteLease", "LeaseStore", "PutLease", "RecordAlarm"]


@quick_init
@dataclass(frozen=True, slots=True)
class PutLease:
    binding: Binding
    now: float


@quick_init
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

_UPSERT_HEAD = (
    "INSERT INTO leases (client_id, mac, ip, state, expires, hostname, subnet, relay, updated)"
    " VALUES "
)
_UPSERT_TAIL = (
    " ON CONFLICT(client_id) DO UPDATE SET"
    " mac = excluded.mac, ip = excluded.ip, state = excluded.state,"
    " expires = excluded.expires, hostname = excluded.hostname, subnet = excluded.subnet,"
    " relay = excluded.relay, updated = excluded.updated"
)
_ROW = "(?, ?, ?, ?, ?, ?, ?, ?, ?)"
_MAX_ROWS = 3000  # 9 parameters each, under SQLite's 32766 host parameters
_statements: dict[int, str] = {}


def _upsert(db: sqlite3.Connection, puts: list[PutLease]) -> None:
    """Rows applied in order (a later row for the same client updates the earlier)."""
    for start in range(0, len(puts), _MAX_ROWS):
        chunk = puts[start : start + _MAX_ROWS]
        sql = _statements.get(len(chunk))
        if sql is None:
            sql = _UPSERT_HEAD + ", ".join([_ROW] * len(chunk)) + _UPSERT_TAIL
            if len(_statements) < 256:
                _statements[len(chunk)] = sql
        args: list = []
        for change in chunk:
            b = change.binding
            args += (
                b.key.hex(),
                b.mac,
                _dotted(b.ip),
                b.state._value_,  # plain attribute; .value is a slow descriptor
                b.expires,
                b.hostname,
                b.subnet,
                b.relay.hex(),
                change.now,
            )
        db.execute(sql, args)


_pack_ip = struct.Struct("!I").pack


def _dotted(ip: int) -> str:
    return socket.inet_ntoa(_pack_ip(ip))


class LeaseStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA busy_timeout=10000")
        # No automatic checkpoint inside our COMMITs: copying WAL pages back into the
        # database (and fsyncing it) every ~1000 pages stalled the packet path for tens
        # of ms. checkpoint() runs it from another thread instead.
        self._db.execute("PRAGMA wal_autocheckpoint=0")
        self._checkpointer: sqlite3.Connection | None = None

    def close(self) -> None:
        self._db.close()
        if self._checkpointer is not None:
            self._checkpointer.close()

    def checkpoint(self) -> tuple[int, int, int]:
        """PASSIVE WAL checkpoint on a connection of its own (call it off the reactor):
        never blocks the DHCP writer, keeps the WAL from growing without bound.
        Returns SQLite's (busy, wal pages, pages checkpointed)."""
        if self._checkpointer is None:
            self._checkpointer = sqlite3.connect(
                str(self.path), isolation_level=None, check_same_thread=False
            )
            self._checkpointer.execute("PRAGMA busy_timeout=10000")
        return tuple(self._checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone())

    def apply(self, changes: Sequence[Change]) -> None:
        """Write ``changes`` in order, in one transaction, durably (one fsync).

        Consecutive lease upserts go as one multi-row statement: the writer thread then
        gives the GIL back to the reactor a handful of times per batch, not per row.
        """
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            run: list[PutLease] = []
            for change in changes:
                if type(change) is PutLease:
                    run.append(change)
                    continue
                if run:
                    _upsert(db, run)
                    run = []
                if type(change) is DeleteLease:
                    db.execute("DELETE FROM leases WHERE client_id = ?", (change.key.hex(),))
                else:
                    a = change.alarm
                    db.execute(
                        "INSERT INTO dhcp_alarms (time, interface, kind, server_ip, server_mac,"
                        " message) VALUES (?, ?, ?, ?, ?, ?)",
                        (a.time, a.interface, a.kind, a.server_ip, a.server_mac, a.message),
                    )
            if run:
                _upsert(db, run)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def node_names(self) -> dict[str, str]:
        """MAC -> node hostname for every enlisted node's MACs (the nodes tables)."""
        rows = self._db.execute(
            "SELECT m.mac, n.hostname FROM node_macs m JOIN nodes n USING (system_id)"
        )
        return dict(rows.fetchall())

    def pins(self) -> list[HostReservation]:
        rows = self._db.execute("SELECT mac, ip, hostname FROM dhcp_pins ORDER BY mac")
        return [
            HostReservation(ip=IPv4Address(ip), mac=mac, hostname=hostname or None)
            for mac, ip, hostname in rows.fetchall()
        ]

    def pin(self, mac: str, ip: IPv4Address, hostname: str, now: float) -> None:
        """Pin ``ip`` to ``mac`` (replacing the MAC's pin). IntegrityError if another
        MAC has that address pinned."""
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(
                "INSERT INTO dhcp_pins (mac, ip, hostname, updated) VALUES (?, ?, ?, ?)"
                " ON CONFLICT(mac) DO UPDATE SET ip = excluded.ip,"
                " hostname = excluded.hostname, updated = excluded.updated",
                (mac.lower(), str(ip), hostname, now),
            )

    def unpin(self, mac: str) -> bool:
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            cur = self._db.execute("DELETE FROM dhcp_pins WHERE mac = ?", (mac.lower(),))
        return cur.rowcount > 0

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
