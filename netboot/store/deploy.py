"""Store methods for deployments (which image a node is being installed with, how far
the installer got, its log) and the operators' SSH keys that deployed nodes receive.

A mixin for SQLiteStore (it uses ``_tx()`` and ``_db``). One ``deployments`` row per
node, reset at the start of each deployment episode: the episode is the time of the
node's latest move to DEPLOYING, so a redeploy after a release starts clean while an
installer that reboots mid-install finds its own row again.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from netboot.nodes.lifecycle import NodeStatus

MAX_LOG_BYTES = 4 << 20

# Statuses in which a node still uses the image it was deployed with.
USING_IMAGE = (
    NodeStatus.DEPLOYING,
    NodeStatus.DEPLOYED,
    NodeStatus.FAILED_DEPLOYMENT,
    NodeStatus.RELEASING,
    # Rescue runs the installer in RAM; the node's disk still holds its deployed image.
    NodeStatus.RESCUE_MODE,
    NodeStatus.ENTERING_RESCUE_MODE,
    NodeStatus.FAILED_ENTERING_RESCUE_MODE,
    NodeStatus.EXITING_RESCUE_MODE,
    NodeStatus.FAILED_EXITING_RESCUE_MODE,
)


@dataclass(frozen=True, slots=True)
class Deployment:
    system_id: str
    episode: float
    method: str  # "image" (fast installer) | "preseed" (Debian installer)
    image: str  # kind/name/version of the deploy image ("" for preseed installs)
    installer: str  # kind/name/version of the boot image the installer ran
    stage: str
    installed: float | None  # when the installer reported success (PXE -> local disk)
    started: float
    updated: float
    log: bytes


class DeployStoreMixin:
    _db: sqlite3.Connection
    _tx: Callable[[], Any]

    def deploy_episode(self, system_id: str) -> float | None:
        """Time of the node's latest move to DEPLOYING (None: never deployed)."""
        row = self._db.execute(
            "SELECT MAX(time) FROM events WHERE system_id = ? AND to_status = ?",
            (system_id, int(NodeStatus.DEPLOYING)),
        ).fetchone()
        return row[0] if row else None

    def deployment(self, system_id: str) -> Deployment | None:
        row = self._db.execute(
            "SELECT * FROM deployments WHERE system_id = ?", (system_id,)
        ).fetchone()
        return _deployment(row) if row else None

    def current_deployment(self, system_id: str) -> Deployment | None:
        """The row of the node's current deployment episode, if it has started."""
        dep = self.deployment(system_id)
        if dep is None or dep.episode != self.deploy_episode(system_id):
            return None
        return dep

    def begin_deployment(
        self,
        system_id: str,
        episode: float,
        method: str,
        image: str,
        installer: str,
        now: float,
    ) -> Deployment:
        """Pin the images of this episode (a new episode replaces the old row)."""
        with self._tx() as tx:
            tx.db.execute(
                "INSERT INTO deployments (system_id, episode, method, image, installer, stage,"
                " installed, started, updated, log) VALUES (?, ?, ?, ?, ?, 'config', NULL, ?, ?,"
                " x'') ON CONFLICT(system_id) DO UPDATE SET episode = excluded.episode,"
                " method = excluded.method, image = excluded.image,"
                " installer = excluded.installer, stage = 'config', installed = NULL,"
                " started = excluded.started, updated = excluded.updated, log = x''",
                (system_id, episode, method, image, installer, now, now),
            )
        dep = self.deployment(system_id)
        assert dep is not None
        return dep

    def deployment_progress(
        self, system_id: str, stage: str, message: str, now: float, actor: str
    ) -> None:
        """Record an installer progress event (an event row the UI and API show)."""
        with self._tx() as tx:
            tx.db.execute(
                "UPDATE deployments SET stage = ?, updated = ? WHERE system_id = ?",
                (stage, now, system_id),
            )
            tx.add_event(system_id, now, actor, f"deploy:{stage}", None, None, message)

    def deployment_finished(
        self, system_id: str, ok: bool, log: bytes, now: float, actor: str
    ) -> None:
        """The installer is done: keep its log; on success the node boots its disk."""
        with self._tx() as tx:
            tx.db.execute(
                "UPDATE deployments SET stage = ?, installed = ?, updated = ?, log = ?"
                " WHERE system_id = ?",
                (
                    "installed" if ok else "failed",
                    now if ok else None,
                    now,
                    log[-MAX_LOG_BYTES:],
                    system_id,
                ),
            )
            tx.add_event(
                system_id,
                now,
                actor,
                "deploy:installed" if ok else "deploy:failed",
                None,
                None,
                "installer finished; booting from disk" if ok else "installer failed",
            )

    def images_in_use(self) -> set[str]:
        """Image refs pinned by a node that still runs (or is installing) them."""
        marks = ",".join("?" for _ in USING_IMAGE)
        rows = self._db.execute(
            "SELECT d.image, d.installer FROM deployments d JOIN nodes n USING (system_id)"
            f" WHERE n.status IN ({marks})",
            tuple(int(s) for s in USING_IMAGE),
        ).fetchall()
        return {ref for row in rows for ref in row if ref}

    # -- SSH keys -----------------------------------------------------------------------

    def add_ssh_key(self, username: str, key: str, now: float) -> None:
        with self._tx() as tx:
            tx.db.execute(
                "INSERT INTO ssh_keys (username, key, created) VALUES (?, ?, ?)"
                " ON CONFLICT(username, key) DO NOTHING",
                (username, key, now),
            )

    def ssh_keys(self, username: str) -> list[str]:
        rows = self._db.execute(
            "SELECT key FROM ssh_keys WHERE username = ? ORDER BY created, key", (username,)
        ).fetchall()
        return [r[0] for r in rows]

    def delete_ssh_key(self, username: str, key: str) -> bool:
        with self._tx() as tx:
            cur = tx.db.execute(
                "DELETE FROM ssh_keys WHERE username = ? AND key = ?", (username, key)
            )
        return cur.rowcount > 0


def _deployment(row: sqlite3.Row) -> Deployment:
    return Deployment(
        system_id=row["system_id"],
        episode=row["episode"],
        method=row["method"],
        image=row["image"],
        installer=row["installer"],
        stage=row["stage"],
        installed=row["installed"],
        started=row["started"],
        updated=row["updated"],
        log=bytes(row["log"]),
    )
