"""Store reads for rescue mode: the state a node returns to when it exits rescue.

MAAS keeps ``previous_status`` on the node; netboot reads it from the event log instead
(no schema change): the ``from`` of the node's latest move into ENTERING_RESCUE_MODE
that did not come from another rescue state (a retry after a failed entry or exit keeps
the original origin). Rescue progress events are ``rescue:<stage>`` rows.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

from netboot.nodes.lifecycle import RESCUE_STATES, NodeStatus


class RescueStoreMixin:
    _db: sqlite3.Connection
    _tx: Callable[[], Any]

    def rescue_origin(self, system_id: str) -> NodeStatus | None:
        """The status the node was in when rescue mode was asked for (None: never)."""
        marks = ",".join("?" for _ in RESCUE_STATES)
        row = self._db.execute(
            "SELECT from_status FROM events WHERE system_id = ? AND to_status = ?"
            f" AND from_status IS NOT NULL AND from_status NOT IN ({marks})"
            " ORDER BY id DESC LIMIT 1",
            (system_id, int(NodeStatus.ENTERING_RESCUE_MODE), *(int(s) for s in RESCUE_STATES)),
        ).fetchone()
        return None if row is None else NodeStatus(row[0])

    def rescue_progress(
        self, system_id: str, stage: str, message: str, now: float, actor: str
    ) -> None:
        """A progress event from the rescue environment (``rescue:<stage>``)."""
        with self._tx() as tx:
            tx.add_event(system_id, now, actor, f"rescue:{stage}", None, None, message)
