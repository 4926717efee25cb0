"""Store methods for operator accounts (web UI logins) and the small read-only counts
the UI and /metrics need (nodes per status, leases per state, whether a table exists).

A mixin for SQLiteStore: it uses the store's ``_tx()`` and ``_db``. Password hashes are
produced by ``netboot.http.ui.auth``; the store only keeps them.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

USERNAME_RE = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}$")


class UserExists(ValueError):
    pass


class BadUsername(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class User:
    username: str
    created: float
    last_login: float | None


def check_username(username: str) -> str:
    if not USERNAME_RE.match(username):
        raise BadUsername(
            f"{username!r} is not a valid user name "
            "(lower-case letters, digits, '_', '.', '-'; up to 32; starts with a letter)"
        )
    return username


class UsersMixin:
    _db: sqlite3.Connection
    _tx: Callable[[], Any]  # SQLiteStore's transaction context manager

    def create_user(
        self, username: str, password_hash: str, now: float, replace: bool = False
    ) -> User:
        """Add an operator; with ``replace`` an existing one gets the new password."""
        check_username(username)
        with self._tx() as tx:
            exists = tx.db.execute("SELECT 1 FROM users WHERE username = ?", (username,))
            if exists.fetchone() is not None:
                if not replace:
                    raise UserExists(f"user {username!r} already exists")
                tx.db.execute(
                    "UPDATE users SET password_hash = ? WHERE username = ?",
                    (password_hash, username),
                )
            else:
                tx.db.execute(
                    "INSERT INTO users (username, password_hash, created) VALUES (?, ?, ?)",
                    (username, password_hash, now),
                )
        user = self.user(username)
        assert user is not None
        return user

    def user(self, username: str) -> User | None:
        row = self._db.execute(
            "SELECT username, created, last_login FROM users WHERE username = ?", (username,)
        ).fetchone()
        return User(row[0], row[1], row[2]) if row else None

    def users(self) -> list[User]:
        rows = self._db.execute(
            "SELECT username, created, last_login FROM users ORDER BY username"
        ).fetchall()
        return [User(r[0], r[1], r[2]) for r in rows]

    def password_hash(self, username: str) -> str | None:
        row = self._db.execute(
            "SELECT password_hash FROM users WHERE username = ?", (username,)
        ).fetchone()
        return row[0] if row else None

    def record_login(self, username: str, now: float) -> None:
        with self._tx() as tx:
            tx.db.execute("UPDATE users SET last_login = ? WHERE username = ?", (now, username))

    def delete_user(self, username: str) -> bool:
        with self._tx() as tx:
            cur = tx.db.execute("DELETE FROM users WHERE username = ?", (username,))
            return cur.rowcount > 0

    # -- read-only views for the UI and /metrics ------------------------------------

    def node_status_counts(self) -> dict[int, int]:
        """``{status number: node count}`` in one query (for /metrics)."""
        rows = self._db.execute("SELECT status, COUNT(*) FROM nodes GROUP BY status")
        return {int(r[0]): int(r[1]) for r in rows}

    def lease_state_counts(self) -> dict[str, int]:
        """``{lease state: rows}`` of the DHCP lease table (for /metrics)."""
        rows = self._db.execute("SELECT state, COUNT(*) FROM leases GROUP BY state")
        return {str(r[0]): int(r[1]) for r in rows}

    def leases_held(self, now: float) -> int:
        """Addresses held at ``now``: the states that hold (RFC 2131 bound, declined,
        conflicting; see netboot.dhcp.leases.HOLDING) and not yet expired."""
        row = self._db.execute(
            "SELECT COUNT(*) FROM leases WHERE state IN ('active', 'declined', 'conflict')"
            " AND expires > ?",
            (now,),
        ).fetchone()
        return int(row[0])

    def table_exists(self, name: str) -> bool:
        row = self._db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
        ).fetchone()
        return row is not None
