"""The SQLite store: one file, WAL, ``synchronous=FULL``.

Every write method returns only after its transaction is committed and fsynced, so a
caller that acknowledges afterwards (DHCP ACK, HTTP 201) never acknowledges something a
``kill -9`` could take back.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import string
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

from netboot.nodes.inventory import EnlistReport
from netboot.nodes.lifecycle import NodeStatus
from netboot.nodes.names import generate_hostname
from netboot.store.deploy import DeployStoreMixin
from netboot.store.dns import DNSStoreMixin
from netboot.store.erase import ErasureStoreMixin
from netboot.store.models import Event, Node
from netboot.store.nodes_ext import NodeLifecycleStore, node_ext_fields
from netboot.store.rescue import RescueStoreMixin
from netboot.store.schema import MIGRATIONS, SCHEMA_VERSION
from netboot.store.users import UsersMixin


class StoreError(RuntimeError):
    pass


_SYSTEM_ID_ALPHABET = string.ascii_lowercase + string.digits


class SQLiteStore(
    NodeLifecycleStore,
    UsersMixin,
    DNSStoreMixin,
    DeployStoreMixin,
    ErasureStoreMixin,
    RescueStoreMixin,
):
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        # Autocommit mode: transactions are explicit (BEGIN IMMEDIATE ... COMMIT).
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._migrate()

    def close(self) -> None:
        self._db.close()

    # -- schema -------------------------------------------------------------------

    def _migrate(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} has schema version {version}, newer than this netboot "
                f"understands ({SCHEMA_VERSION}); refusing to open it"
            )
        for index in range(version, SCHEMA_VERSION):
            with self._tx() as db:
                db.executescript_in_tx(MIGRATIONS[index], index + 1)

    @contextmanager
    def _tx(self) -> Iterator[_Tx]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield _Tx(self._db)
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # -- nodes --------------------------------------------------------------------

    def enlist(self, report: EnlistReport, now: float, actor: str) -> tuple[Node, bool]:
        """Create the node for ``report``, or update the node already owning one of its
        MACs. Returns (node, created)."""
        with self._tx() as tx:
            existing = tx.system_id_for_macs(report.macs)
            fields = {
                "boot_mac": report.boot_mac,
                "uuid": report.uuid,
                "vendor": report.vendor,
                "product": report.product,
                "serial": report.serial,
                "cpu_count": report.cpu_count,
                "cpu_model": report.cpu_model,
                "memory_mib": report.memory_mib,
                "disks": json.dumps([asdict(d) for d in report.disks]),
                "inventory": json.dumps(report.raw, sort_keys=True),
                "updated": now,
            }
            if existing is None:
                system_id = self._new_system_id(tx)
                hostname = generate_hostname(tx.hostname_taken)
                tx.db.execute(
                    "INSERT INTO nodes (system_id, hostname, status, token, created, "
                    + ", ".join(fields)
                    + ") VALUES (?, ?, ?, ?, ?, "
                    + ", ".join("?" for _ in fields)
                    + ")",
                    (
                        system_id,
                        hostname,
                        int(NodeStatus.NEW),
                        secrets.token_urlsafe(24),
                        now,
                        *fields.values(),
                    ),
                )
                tx.add_event(
                    system_id,
                    now,
                    actor,
                    "enlisted",
                    None,
                    NodeStatus.NEW,
                    f"enlisted from {report.boot_mac}",
                )
            else:
                system_id = existing
                tx.db.execute(
                    "UPDATE nodes SET "
                    + ", ".join(f"{k} = ?" for k in fields)
                    + " WHERE system_id = ?",
                    (*fields.values(), system_id),
                )
                tx.add_event(
                    system_id,
                    now,
                    actor,
                    "re-enlisted",
                    None,
                    None,
                    f"inventory refreshed from {report.boot_mac}",
                )
            for mac in report.macs:
                tx.db.execute(
                    "INSERT INTO node_macs (mac, system_id) VALUES (?, ?) "
                    "ON CONFLICT(mac) DO UPDATE SET system_id = excluded.system_id",
                    (mac, system_id),
                )
        node = self.node(system_id)
        assert node is not None
        return node, existing is None

    def _new_system_id(self, tx: _Tx) -> str:
        while True:
            candidate = "".join(secrets.choice(_SYSTEM_ID_ALPHABET) for _ in range(6))
            row = tx.db.execute("SELECT 1 FROM nodes WHERE system_id = ?", (candidate,))
            if row.fetchone() is None:
                return candidate

    def node(self, system_id: str) -> Node | None:
        row = self._db.execute("SELECT * FROM nodes WHERE system_id = ?", (system_id,)).fetchone()
        return self._node(row) if row else None

    def node_by_mac(self, mac: str) -> Node | None:
        row = self._db.execute(
            "SELECT n.* FROM nodes n JOIN node_macs m USING (system_id) WHERE m.mac = ?",
            (mac.lower(),),
        ).fetchone()
        return self._node(row) if row else None

    def nodes(self) -> list[Node]:
        rows = self._db.execute("SELECT * FROM nodes ORDER BY hostname").fetchall()
        # All MACs in one query, not one per node (the UI lists 1,000+ nodes).
        macs: dict[str, list[str]] = {}
        for mac, system_id in self._db.execute("SELECT mac, system_id FROM node_macs ORDER BY mac"):
            macs.setdefault(system_id, []).append(mac)
        return [self._node(r, tuple(macs.get(r["system_id"], ()))) for r in rows]

    def events(self, system_id: str) -> list[Event]:
        rows = self._db.execute(
            "SELECT * FROM events WHERE system_id = ? ORDER BY id", (system_id,)
        ).fetchall()
        return [
            Event(
                system_id=r["system_id"],
                time=r["time"],
                actor=r["actor"],
                kind=r["kind"],
                from_status=None if r["from_status"] is None else NodeStatus(r["from_status"]),
                to_status=None if r["to_status"] is None else NodeStatus(r["to_status"]),
                message=r["message"],
            )
            for r in rows
        ]

    def _node(self, row: sqlite3.Row, macs: tuple[str, ...] | None = None) -> Node:
        if macs is None:
            macs = tuple(
                r[0]
                for r in self._db.execute(
                    "SELECT mac FROM node_macs WHERE system_id = ? ORDER BY mac",
                    (row["system_id"],),
                )
            )
        return Node(
            system_id=row["system_id"],
            hostname=row["hostname"],
            status=NodeStatus(row["status"]),
            boot_mac=row["boot_mac"],
            macs=macs,
            uuid=row["uuid"],
            vendor=row["vendor"],
            product=row["product"],
            serial=row["serial"],
            cpu_count=row["cpu_count"],
            cpu_model=row["cpu_model"],
            memory_mib=row["memory_mib"],
            disks=tuple(json.loads(row["disks"])),
            token=row["token"],
            created=row["created"],
            updated=row["updated"],
            **node_ext_fields(row),
        )


class _Tx:
    """Statements run inside one open transaction."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def executescript_in_tx(self, script: str, new_version: int) -> None:
        # executescript() would COMMIT first; run statement by statement instead.
        for statement in script.split(";"):
            if statement.strip():
                self.db.execute(statement)
        self.db.execute(f"PRAGMA user_version = {int(new_version)}")

    def system_id_for_macs(self, macs: tuple[str, ...]) -> str | None:
        for mac in macs:
            row = self.db.execute(
                "SELECT system_id FROM node_macs WHERE mac = ?", (mac,)
            ).fetchone()
            if row:
                return row[0]
        return None

    def hostname_taken(self, hostname: str) -> bool:
        row = self.db.execute("SELECT 1 FROM nodes WHERE hostname = ?", (hostname,))
        return row.fetchone() is not None

    def add_event(
        self,
        system_id: str,
        now: float,
        actor: str,
        kind: str,
        from_status: NodeStatus | None,
        to_status: NodeStatus | None,
        message: str,
    ) -> None:
        self.db.execute(
            "INSERT INTO events (system_id, time, actor, kind, from_status, to_status, message)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                system_id,
                now,
                actor,
                kind,
                None if from_status is None else int(from_status),
                None if to_status is None else int(to_status),
                message,
            ),
        )


def open_store(path: Path) -> SQLiteStore:
    return SQLiteStore(path)
