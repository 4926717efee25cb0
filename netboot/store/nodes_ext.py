"""Store methods for the node lifecycle: guarded status transitions, ownership and power
fields, commissioning results, API keys.

A mixin for SQLiteStore (it uses the store's ``_tx()``, ``_db`` and ``node()``). Every
status change goes through ``transition``: the legality check, the new fields and the
event row are one transaction, so a crash never leaves a status without its event.
Secrets (power parameters, user data, API key secrets) are read only through their own
methods and never appear on ``Node``.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from netboot.nodes.lifecycle import IllegalTransition, NodeStatus, check_transition
from netboot.store.models import Node

# Columns ``transition``/``update_node`` may write, and how each is encoded.
_JSON_COLUMNS = {"owner_data", "tags", "power_parameters", "hardware", "disks"}
WRITABLE_COLUMNS = frozenset(
    {
        "owner",
        "owner_data",
        "agent_name",
        "zone",
        "tags",
        "architecture",
        "power_type",
        "power_parameters",
        "power_state",
        "osystem",
        "distro_series",
        "user_data",
        "status_message",
        "status_deadline",
        "hardware",
        "disks",
        "cpu_count",
        "memory_mib",
        "hostname",
    }
)


class NodeNotFound(LookupError):
    def __init__(self, system_id: str) -> None:
        super().__init__(f"no node with system_id {system_id!r}")
        self.system_id = system_id


@dataclass(frozen=True, slots=True)
class ScriptResult:
    system_id: str
    name: str
    exit_status: int
    output: bytes
    time: float


@dataclass(frozen=True, slots=True)
class ApiKey:
    """An operator API key: ``consumer_key:token_key:token_secret`` (consumer secret "")."""

    consumer_key: str
    token_key: str
    token_secret: str
    username: str
    name: str
    created: float

    @property
    def key(self) -> str:
        return f"{self.consumer_key}:{self.token_key}:{self.token_secret}"


def node_ext_fields(row: sqlite3.Row) -> dict[str, Any]:
    """The lifecycle columns of a ``nodes`` row, as Node keyword arguments."""
    return {
        "owner": row["owner"],
        "owner_data": json.loads(row["owner_data"]),
        "agent_name": row["agent_name"],
        "zone": row["zone"],
        "tags": tuple(json.loads(row["tags"])),
        "architecture": row["architecture"],
        "power_type": row["power_type"],
        "power_state": row["power_state"],
        "osystem": row["osystem"],
        "distro_series": row["distro_series"],
        "status_message": row["status_message"],
        "status_deadline": row["status_deadline"],
        "hardware": json.loads(row["hardware"]),
    }


def _encode(fields: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in fields.items():
        if key not in WRITABLE_COLUMNS:
            raise ValueError(f"{key} is not a writable node column")
        if key in _JSON_COLUMNS:
            value = json.dumps(list(value) if isinstance(value, tuple) else value, sort_keys=True)
        out[key] = value
    return out


class NodeLifecycleStore:
    """Mixin: lifecycle writes and reads. Requires ``_tx``, ``_db`` and ``node``."""

    _db: sqlite3.Connection

    def transition(
        self,
        system_id: str,
        to: NodeStatus,
        now: float,
        actor: str,
        reason: str,
        *,
        fields: Mapping[str, Any] | None = None,
        only_from: Iterable[NodeStatus] | None = None,
        kind: str = "status",
        before: Callable[[Any], None] | None = None,
    ) -> tuple[Node, NodeStatus]:
        """Move ``system_id`` to ``to`` (checked against the lifecycle table), write
        ``fields`` and one event, all in one transaction. Returns (node, previous status).

        ``only_from`` narrows the legal starting states further (a node callback only
        completes the phase it is in). ``before(tx)`` runs inside the transaction after
        the check, for related rows (e.g. clearing old commissioning results).
        Raises NodeNotFound or IllegalTransition; nothing is written then.
        """
        encoded = _encode(fields or {})
        with self._tx() as tx:  # type: ignore[attr-defined]
            row = tx.db.execute(
                "SELECT status FROM nodes WHERE system_id = ?", (system_id,)
            ).fetchone()
            if row is None:
                raise NodeNotFound(system_id)
            current = NodeStatus(row["status"])
            if only_from is not None and current not in set(only_from):
                raise IllegalTransition(current, to)
            check_transition(current, to)
            if before is not None:
                before(tx)
            encoded["status"] = int(to)
            encoded["updated"] = now
            tx.db.execute(
                "UPDATE nodes SET "
                + ", ".join(f"{k} = ?" for k in encoded)
                + " WHERE system_id = ?",
                (*encoded.values(), system_id),
            )
            tx.add_event(system_id, now, actor, kind, current, to, reason)
        node = self.node(system_id)  # type: ignore[attr-defined]
        assert node is not None
        return node, current

    def update_node(
        self,
        system_id: str,
        fields: Mapping[str, Any],
        now: float,
        actor: str,
        kind: str,
        message: str,
        *,
        record_event: bool = True,
    ) -> Node:
        """Change non-status fields (owner data, power state, inventory), with an event."""
        encoded = _encode(fields)
        encoded["updated"] = now
        with self._tx() as tx:  # type: ignore[attr-defined]
            cur = tx.db.execute(
                "UPDATE nodes SET "
                + ", ".join(f"{k} = ?" for k in encoded)
                + " WHERE system_id = ?",
                (*encoded.values(), system_id),
            )
            if cur.rowcount == 0:
                raise NodeNotFound(system_id)
            if record_event:
                tx.add_event(system_id, now, actor, kind, None, None, message)
        node = self.node(system_id)  # type: ignore[attr-defined]
        assert node is not None
        return node

    def nodes_past_deadline(self, now: float, statuses: Iterable[NodeStatus]) -> list[Node]:
        marks = ",".join("?" for _ in statuses)
        rows = self._db.execute(
            "SELECT system_id FROM nodes WHERE status_deadline IS NOT NULL "
            f"AND status_deadline <= ? AND status IN ({marks}) ORDER BY status_deadline",
            (now, *(int(s) for s in statuses)),
        ).fetchall()
        return [n for n in (self.node(r[0]) for r in rows) if n is not None]  # type: ignore[attr-defined]

    def lease_ips(self, now: float) -> dict[str, str]:
        """MAC -> address of every unexpired, held DHCP lease (for ``ip_addresses``)."""
        columns = {r[1] for r in self._db.execute("PRAGMA table_info(leases)")}
        if not {"mac", "ip", "expires"} <= columns:
            return {}
        held = " AND state = 'active'" if "state" in columns else ""
        rows = self._db.execute(
            f"SELECT mac, ip FROM leases WHERE expires > ?{held} ORDER BY expires", (now,)
        ).fetchall()
        return {r[0]: r[1] for r in rows}

    def power_parameters(self, system_id: str) -> dict[str, str]:
        row = self._db.execute(
            "SELECT power_parameters FROM nodes WHERE system_id = ?", (system_id,)
        ).fetchone()
        if row is None:
            raise NodeNotFound(system_id)
        return json.loads(row[0])

    def user_data(self, system_id: str) -> bytes | None:
        row = self._db.execute(
            "SELECT user_data FROM nodes WHERE system_id = ?", (system_id,)
        ).fetchone()
        if row is None:
            raise NodeNotFound(system_id)
        return row[0]

    # -- commissioning results --------------------------------------------------------

    def add_script_result(
        self, system_id: str, name: str, exit_status: int, output: bytes, now: float
    ) -> None:
        """Record (or replace, on a retried upload) one script's result."""
        with self._tx() as tx:  # type: ignore[attr-defined]
            tx.db.execute(
                "INSERT INTO script_results (system_id, name, exit_status, output, time) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT(system_id, name) DO UPDATE SET "
                "exit_status = excluded.exit_status, output = excluded.output, "
                "time = excluded.time",
                (system_id, name, exit_status, output, now),
            )

    def script_results(self, system_id: str) -> list[ScriptResult]:
        rows = self._db.execute(
            "SELECT * FROM script_results WHERE system_id = ? ORDER BY name", (system_id,)
        ).fetchall()
        return [
            ScriptResult(
                system_id=r["system_id"],
                name=r["name"],
                exit_status=r["exit_status"],
                output=bytes(r["output"]),
                time=r["time"],
            )
            for r in rows
        ]

    # -- API keys -----------------------------------------------------------------------

    def create_api_key(self, username: str, name: str, now: float) -> ApiKey:
        key = ApiKey(
            consumer_key=secrets.token_urlsafe(14),
            token_key=secrets.token_urlsafe(14),
            token_secret=secrets.token_urlsafe(24),
            username=username,
            name=name,
            created=now,
        )
        with self._tx() as tx:  # type: ignore[attr-defined]
            tx.db.execute(
                "INSERT INTO api_keys (consumer_key, token_key, token_secret, username, name,"
                " created) VALUES (?, ?, ?, ?, ?, ?)",
                (key.consumer_key, key.token_key, key.token_secret, username, name, now),
            )
        return key

    def api_key(self, consumer_key: str, token_key: str) -> ApiKey | None:
        row = self._db.execute(
            "SELECT * FROM api_keys WHERE consumer_key = ? AND token_key = ?",
            (consumer_key, token_key),
        ).fetchone()
        if row is None:
            return None
        return ApiKey(
            consumer_key=row["consumer_key"],
            token_key=row["token_key"],
            token_secret=row["token_secret"],
            username=row["username"],
            name=row["name"],
            created=row["created"],
        )

    def api_keys(self) -> list[ApiKey]:
        rows = self._db.execute("SELECT * FROM api_keys ORDER BY created").fetchall()
        return [self.api_key(r["consumer_key"], r["token_key"]) for r in rows]  # type: ignore[misc]

    def delete_api_key(self, token_key: str) -> bool:
        with self._tx() as tx:  # type: ignore[attr-defined]
            cur = tx.db.execute("DELETE FROM api_keys WHERE token_key = ?", (token_key,))
        return cur.rowcount > 0


def clear_script_results(system_id: str) -> Callable[[Any], None]:
    """A ``transition(before=...)`` hook: forget the previous commissioning run's results."""

    def run(tx: Any) -> None:
        tx.db.execute("DELETE FROM script_results WHERE system_id = ?", (system_id,))

    return run


class MacInUse(ValueError):
    def __init__(self, mac: str, hostname: str) -> None:
        super().__init__(f"{mac} already belongs to {hostname}")
        self.mac = mac
        self.hostname = hostname


class HostnameTaken(ValueError):
    pass


def create_node(
    store: Any,
    *,
    macs: tuple[str, ...],
    now: float,
    actor: str,
    hostname: str | None = None,
    architecture: str = "amd64/generic",
    power_type: str = "manual",
    power_parameters: Mapping[str, str] | None = None,
) -> Node:
    """Create a NEW node from an operator/API request (no inventory yet); one
    transaction with its event. Raises MacInUse or HostnameTaken, writing nothing."""
    from netboot.nodes.names import generate_hostname

    with store._tx() as tx:
        for mac in macs:
            row = tx.db.execute(
                "SELECT n.hostname FROM node_macs m JOIN nodes n USING (system_id) WHERE m.mac = ?",
                (mac,),
            ).fetchone()
            if row is not None:
                raise MacInUse(mac, row[0])
        if hostname is None:
            hostname = generate_hostname(tx.hostname_taken)
        elif tx.hostname_taken(hostname):
            raise HostnameTaken(f"hostname {hostname!r} is already in use")
        system_id = store._new_system_id(tx)
        tx.db.execute(
            "INSERT INTO nodes (system_id, hostname, status, boot_mac, token, created, updated,"
            " architecture, power_type, power_parameters) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                system_id,
                hostname,
                int(NodeStatus.NEW),
                macs[0],
                secrets.token_urlsafe(24),
                now,
                now,
                architecture,
                power_type,
                json.dumps(dict(power_parameters or {}), sort_keys=True),
            ),
        )
        for mac in macs:
            tx.db.execute("INSERT INTO node_macs (mac, system_id) VALUES (?, ?)", (mac, system_id))
        tx.add_event(system_id, now, actor, "created", None, NodeStatus.NEW, "created by API")
    node = store.node(system_id)
    assert node is not None
    return node
