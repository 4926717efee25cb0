"""Store rows for disk erasing: the mode a release asked for, the verdict and the log.

One ``erasures`` row per node, replaced at each release with erase. ``begin_erase`` and
``finish_erase`` are ``transition(before=...)`` hooks, so the row changes in the same
transaction as the node's move to DISK_ERASING and out of it. ``ErasureStoreMixin``
gives SQLiteStore the read.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

MAX_LOG_BYTES = 4 << 20


@dataclass(frozen=True, slots=True)
class Erasure:
    system_id: str
    mode: str  # "quick" | "secure"
    started: float
    finished: float | None
    ok: bool | None  # None while the node is erasing
    log: bytes


def begin_erase(system_id: str, mode: str, now: float) -> Callable[[Any], None]:
    """A ``transition(before=...)`` hook: a fresh erasure row for this release."""

    def run(tx: Any) -> None:
        tx.db.execute(
            "INSERT INTO erasures (system_id, mode, started, finished, ok, log)"
            " VALUES (?, ?, ?, NULL, NULL, x'') ON CONFLICT(system_id) DO UPDATE SET"
            " mode = excluded.mode, started = excluded.started, finished = NULL,"
            " ok = NULL, log = x''",
            (system_id, mode, now),
        )

    return run


def finish_erase(system_id: str, ok: bool, log: bytes, now: float) -> Callable[[Any], None]:
    """A ``transition(before=...)`` hook: the verdict and the (tail of the) log."""

    def run(tx: Any) -> None:
        tx.db.execute(
            "UPDATE erasures SET finished = ?, ok = ?, log = ? WHERE system_id = ?",
            (now, int(ok), log[-MAX_LOG_BYTES:], system_id),
        )

    return run


class ErasureStoreMixin:
    _db: sqlite3.Connection
    _tx: Callable[[], Any]

    def erase_progress(
        self, system_id: str, stage: str, message: str, now: float, actor: str
    ) -> None:
        """A progress event from the erase environment (``erase:<stage>``)."""
        with self._tx() as tx:
            tx.add_event(system_id, now, actor, f"erase:{stage}", None, None, message)

    def erasure(self, system_id: str) -> Erasure | None:
        row = self._db.execute(
            "SELECT * FROM erasures WHERE system_id = ?", (system_id,)
        ).fetchone()
        if row is None:
            return None
        return Erasure(
            system_id=row["system_id"],
            mode=row["mode"],
            started=row["started"],
            finished=row["finished"],
            ok=None if row["ok"] is None else bool(row["ok"]),
            log=bytes(row["log"]),
        )
