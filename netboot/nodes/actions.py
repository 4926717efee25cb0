"""Node actions: the one place a node's status changes.

Every caller -- the MAAS API, the web UI, the CLI, node callbacks, the timeout checker --
goes through ``NodeActions``. Each action checks the move against the lifecycle table
(``lifecycle.check_transition``; an illegal move raises ``IllegalTransition`` naming the
current state, which the API answers with 409) and writes the new status, its fields and
an event row (time, actor, from, to, reason) in one store transaction. Power is then
driven through the node's power driver (``netboot.power.base.PowerDriver``, looked up by
the node's ``power_type``).

Synchronous parts (the transition) raise at once: NodeNotFound, IllegalTransition,
InvalidAction. Actions that drive power return a Deferred that fires with the updated
Node once the driver answered, or fails with PowerActionFailed after the node was moved
to the matching FAILED state with the driver's message.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from twisted.internet import defer
from twisted.logger import Logger

from netboot.nodes.constraints import Constraints, matches
from netboot.nodes.errors import InvalidAction, NoMatchingNode, PowerActionFailed
from netboot.nodes.lifecycle import RESCUE_ORIGINS, IllegalTransition, NodeStatus
from netboot.nodes.power_actions import PowerActions
from netboot.power.base import PowerDriver
from netboot.store.erase import begin_erase, finish_erase
from netboot.store.models import Node
from netboot.store.nodes_ext import NodeNotFound, clear_script_results

log = Logger(namespace="netboot.nodes")

S = NodeStatus

__all__ = [
    "IllegalTransition",
    "InvalidAction",
    "NodeActions",
    "NodeNotFound",
    "NoMatchingNode",
    "PowerActionFailed",
    "Timeouts",
]


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds a node may stay in a phase without reporting back (0 = no limit)."""

    commissioning: float = 1800.0
    deploying: float = 3600.0
    releasing: float = 900.0
    disk_erasing: float = 1800.0
    entering_rescue_mode: float = 1800.0
    exiting_rescue_mode: float = 900.0


# The phase a node waits in -> the FAILED state it goes to when the phase times out.
FAILED_STATE = {
    S.COMMISSIONING: S.FAILED_COMMISSIONING,
    S.DEPLOYING: S.FAILED_DEPLOYMENT,
    S.RELEASING: S.FAILED_RELEASING,
    S.DISK_ERASING: S.FAILED_DISK_ERASING,
    S.ENTERING_RESCUE_MODE: S.FAILED_ENTERING_RESCUE_MODE,
    S.EXITING_RESCUE_MODE: S.FAILED_EXITING_RESCUE_MODE,
}

# How a release may erase the disks (the installer's NB_ERASE_MODE): quick = wipefs +
# zero the first and last 2 MiB of each disk; secure = the disk's secure discard when it
# has one, then quick (quick alone when it has none).
ERASE_MODES = ("quick", "secure")

# What a node owned goes back to when it is released (READY).
_CLEARED = {
    "owner": None,
    "agent_name": "",
    "owner_data": {},
    "user_data": None,
    "osystem": "",
    "distro_series": "",
    "status_message": "",
    "status_deadline": None,
}

PowerLookup = Callable[[str], PowerDriver]
SYSTEM_ACTOR = "netboot"


class NodeActions(PowerActions):
    """Lifecycle actions over a store. ``power(power_type)`` returns the driver (raising
    KeyError for an unknown type); ``clock`` gives wall-clock seconds."""

    def __init__(
        self,
        store,
        power: PowerLookup,
        clock: Callable[[], float] = time.time,
        timeouts: Timeouts = Timeouts(),  # noqa: B008 (frozen, shared safely)
        commissioning_scripts: Path | None = None,
        erase_on_release: bool = False,
        erase_mode: str = "quick",
    ) -> None:
        self.store = store
        self.power = power
        self.clock = clock
        self.timeouts = timeouts
        # The operator's commissioning scripts (served to nodes, expected in results).
        self.commissioning_scripts = commissioning_scripts
        # [deploy] erase_on_release: what release() does when the caller does not say.
        self.erase_on_release = erase_on_release
        self.erase_mode = erase_mode

    # -- reads --------------------------------------------------------------------------

    def get(self, system_id: str) -> Node:
        node = self.store.node(system_id)
        if node is None:
            raise NodeNotFound(system_id)
        return node

    # -- commissioning ------------------------------------------------------------------

    def commission(self, system_id: str, actor: str, reason: str = "") -> defer.Deferred:
        """NEW/READY/FAILED_COMMISSIONING/BROKEN -> COMMISSIONING, then power on. The
        node boots the commissioning environment, which reports back through
        ``commissioning_result``/``commissioning_done``."""
        node = self._to(
            system_id,
            S.COMMISSIONING,
            actor,
            reason or "commissioning started",
            deadline=self.timeouts.commissioning,
            fields={"status_message": "Commissioning"},
            before=clear_script_results(system_id),
        )
        return self._power(node, "on", actor, failed=S.FAILED_COMMISSIONING)

    def commissioning_done(
        self, system_id: str, actor: str, ok: bool, message: str, hardware: dict | None = None
    ) -> Node:
        """The commissioning environment finished: READY, or FAILED_COMMISSIONING with
        ``message`` (the failed scripts). Only a COMMISSIONING node completes."""
        fields: dict = {"status_message": "" if ok else message, "status_deadline": None}
        if hardware is not None:
            fields["hardware"] = hardware
        to = S.READY if ok else S.FAILED_COMMISSIONING
        node, _ = self.store.transition(
            system_id,
            to,
            self.clock(),
            actor,
            message,
            fields=fields,
            only_from=(S.COMMISSIONING,),
        )
        log.info(
            "{hostname} ({system_id}) commissioning {result}: {message}",
            hostname=node.hostname,
            system_id=system_id,
            result="done" if ok else "FAILED",
            message=message,
        )
        return node

    # -- allocation and deployment ------------------------------------------------------

    def allocate(
        self,
        constraints: Constraints,
        actor: str,
        *,
        agent_name: str = "",
        comment: str = "",
        dry_run: bool = False,
    ) -> Node:
        """Pick a READY node matching ``constraints`` (fewest resources first, so big
        machines stay free for big requests) and move it to ALLOCATED owned by ``actor``.
        ``dry_run`` returns the pick without changing anything."""
        candidates = sorted(
            (n for n in self.store.nodes() if n.status is S.READY and matches(n, constraints)),
            key=lambda n: (n.cpu_count, n.memory_mib, n.storage_bytes, n.hostname),
        )
        if dry_run:
            if not candidates:
                raise NoMatchingNode(f"no ready node matches {constraints.describe()}")
            return candidates[0]
        for node in candidates:
            try:
                return self._to(
                    node.system_id,
                    S.ALLOCATED,
                    actor,
                    comment or f"allocated to {actor} ({constraints.describe()})",
                    fields={"owner": actor, "agent_name": agent_name, "status_message": ""},
                    only_from=(S.READY,),
                )
            except IllegalTransition:
                continue  # taken by a concurrent allocation since we listed: next one
        raise NoMatchingNode(f"no ready node matches {constraints.describe()}")

    acquire = allocate  # MAAS 1.x name

    def deploy(
        self,
        system_id: str,
        actor: str,
        *,
        osystem: str = "debian",
        distro_series: str = "bookworm",
        user_data: bytes | None = None,
        agent_name: str | None = None,
        comment: str = "",
    ) -> defer.Deferred:
        """(READY -> ALLOCATED ->) DEPLOYING, then power on. A READY node is allocated to
        ``actor`` first, as MAAS does. FAILED_DEPLOYMENT may be deployed again."""
        if user_data is not None and len(user_data) > 16 << 20:
            raise InvalidAction("user_data", "larger than 16 MiB")
        node = self.get(system_id)
        if node.status is S.READY:
            node = self._to(
                system_id,
                S.ALLOCATED,
                actor,
                "allocated by deploy",
                fields={"owner": actor, "agent_name": agent_name or ""},
                only_from=(S.READY,),
            )
        fields: dict = {
            "osystem": osystem,
            "distro_series": distro_series,
            "user_data": user_data,
            "status_message": "Deploying",
        }
        if agent_name is not None:
            fields["agent_name"] = agent_name
        node = self._to(
            system_id,
            S.DEPLOYING,
            actor,
            comment or f"deploying {osystem}/{distro_series}",
            deadline=self.timeouts.deploying,
            fields=fields,
            only_from=(S.ALLOCATED, S.FAILED_DEPLOYMENT),
        )
        return self._power(node, "on", actor, failed=S.FAILED_DEPLOYMENT)

    def deployment_done(self, system_id: str, actor: str, ok: bool, message: str) -> Node:
        """The installer reported: DEPLOYED, or FAILED_DEPLOYMENT with ``message``."""
        node, _ = self.store.transition(
            system_id,
            S.DEPLOYED if ok else S.FAILED_DEPLOYMENT,
            self.clock(),
            actor,
            message,
            fields={"status_message": "" if ok else message, "status_deadline": None},
            only_from=(S.DEPLOYING,),
        )
        return node

    def release(
        self,
        system_id: str,
        actor: str,
        *,
        erase: bool | None = None,
        erase_mode: str | None = None,
        comment: str = "",
    ) -> defer.Deferred:
        """Give the node back: ALLOCATED -> READY at once; a node that may be running
        (DEPLOYING, DEPLOYED, FAILED_DEPLOYMENT, FAILED_RELEASING) -> RELEASING, power
        off, -> READY (FAILED_RELEASING if the power off fails). Owner, agent name,
        owner data and user data are cleared.

        ``erase`` (None: the ``[deploy] erase_on_release`` default) sends the node to
        DISK_ERASING instead: see ``erase_disks``; ``erase_mode`` None is the configured
        ``[deploy] erase_mode``."""
        erase_mode = erase_mode or self.erase_mode
        if erase_mode not in ERASE_MODES:
            raise InvalidAction("erase_mode", f"{erase_mode!r} is not one of quick, secure")
        if erase is None:
            erase = self.erase_on_release
        node = self.get(system_id)
        reason = comment or "released"
        if node.status is S.READY:
            return defer.succeed(node)  # MAAS: releasing a Ready machine is a no-op
        if erase:
            return self.erase_disks(system_id, actor, erase_mode, comment)
        if node.status is S.ALLOCATED:
            return defer.succeed(
                self._to(
                    system_id, S.READY, actor, reason, fields=_CLEARED, only_from=(S.ALLOCATED,)
                )
            )
        node = self._to(
            system_id,
            S.RELEASING,
            actor,
            reason,
            deadline=self.timeouts.releasing,
            fields={"status_message": "Releasing"},
            only_from=(S.DEPLOYING, S.DEPLOYED, S.FAILED_DEPLOYMENT, S.FAILED_RELEASING),
        )
        d = self._power(node, "off", actor, failed=S.FAILED_RELEASING)

        def released(_: Node) -> Node:
            return self._to(
                system_id, S.READY, actor, "powered off", fields=_CLEARED, only_from=(S.RELEASING,)
            )

        d.addCallback(released)
        return d

    def erase_disks(
        self, system_id: str, actor: str, mode: str = "quick", comment: str = ""
    ) -> defer.Deferred:
        """Release with erase (MAAS's DISK_ERASING): the node goes to DISK_ERASING and is
        power cycled (on if it was off); it PXE boots the installer in erase mode, which
        erases every disk and reports (``erasing_done``): READY, or FAILED_DISK_ERASING
        with its log. A failed power cycle -> FAILED_DISK_ERASING."""
        if mode not in ERASE_MODES:
            raise InvalidAction("erase_mode", f"{mode!r} is not one of quick, secure")
        node = self._to(
            system_id,
            S.DISK_ERASING,
            actor,
            comment or f"released with {mode} disk erase",
            deadline=self.timeouts.disk_erasing,
            fields={"status_message": f"Erasing disks ({mode})"},
            only_from=(
                S.ALLOCATED,
                S.DEPLOYING,
                S.DEPLOYED,
                S.FAILED_DEPLOYMENT,
                S.RELEASING,
                S.FAILED_RELEASING,
                S.FAILED_DISK_ERASING,
            ),
            before=begin_erase(system_id, mode, self.clock()),
        )
        return self._power(node, "cycle", actor, failed=S.FAILED_DISK_ERASING)

    def erasing_done(
        self, system_id: str, actor: str, ok: bool, message: str, log_bytes: bytes = b""
    ) -> Node:
        """The erase environment reported: READY (owner and deploy fields cleared), or
        FAILED_DISK_ERASING with ``message``; its log is kept (``store.erasure``)."""
        now = self.clock()
        fields = dict(_CLEARED) if ok else {"status_message": message, "status_deadline": None}
        node, _ = self.store.transition(
            system_id,
            S.READY if ok else S.FAILED_DISK_ERASING,
            now,
            actor,
            message,
            fields=fields,
            only_from=(S.DISK_ERASING,),
            before=finish_erase(system_id, ok, log_bytes, now),
        )
        log.info(
            "{hostname} ({system_id}) disk erasing {result}: {message}",
            hostname=node.hostname,
            system_id=system_id,
            result="done" if ok else "FAILED",
            message=message,
        )
        return node

    # -- rescue mode --------------------------------------------------------------------

    def rescue_mode(self, system_id: str, actor: str, comment: str = "") -> defer.Deferred:
        """MAAS's rescue mode: -> ENTERING_RESCUE_MODE, power cycle (on if it was off).
        The node PXE boots the installer with ``netboot.purpose=rescue``, which brings up
        the network and a root shell on the console without touching the disks, then
        reports (``rescue_done``): RESCUE_MODE, or FAILED_ENTERING_RESCUE_MODE. A failed
        power cycle -> FAILED_ENTERING_RESCUE_MODE. Owner and deploy fields are kept:
        exiting returns the node to the state it came from (``exit_rescue_mode``)."""
        node = self._to(
            system_id,
            S.ENTERING_RESCUE_MODE,
            actor,
            comment or "rescue mode",
            deadline=self.timeouts.entering_rescue_mode,
            fields={"status_message": "Entering rescue mode"},
            only_from=(
                *RESCUE_ORIGINS,
                S.FAILED_ENTERING_RESCUE_MODE,
                S.FAILED_EXITING_RESCUE_MODE,
            ),
        )
        return self._power(node, "cycle", actor, failed=S.FAILED_ENTERING_RESCUE_MODE)

    def rescue_done(self, system_id: str, actor: str, ok: bool, message: str) -> Node:
        """The rescue environment reported: RESCUE_MODE (its shell is up), or
        FAILED_ENTERING_RESCUE_MODE with ``message``."""
        node, _ = self.store.transition(
            system_id,
            S.RESCUE_MODE if ok else S.FAILED_ENTERING_RESCUE_MODE,
            self.clock(),
            actor,
            message,
            fields={"status_message": "" if ok else message, "status_deadline": None},
            only_from=(S.ENTERING_RESCUE_MODE,),
        )
        log.info(
            "{hostname} ({system_id}) rescue mode {result}: {message}",
            hostname=node.hostname,
            system_id=system_id,
            result="up" if ok else "FAILED",
            message=message,
        )
        return node

    def exit_rescue_mode(self, system_id: str, actor: str, comment: str = "") -> defer.Deferred:
        """-> EXITING_RESCUE_MODE, then back to the state rescue started from (as MAAS):
        a DEPLOYED node is power cycled (its PXE answer is "boot the local disk"), any
        other is powered off. A failed power call -> FAILED_EXITING_RESCUE_MODE."""
        origin = self.store.rescue_origin(system_id) or S.READY
        node = self._to(
            system_id,
            S.EXITING_RESCUE_MODE,
            actor,
            comment or f"exiting rescue mode (back to {origin.label.lower()})",
            deadline=self.timeouts.exiting_rescue_mode,
            fields={"status_message": "Exiting rescue mode"},
            only_from=(
                S.RESCUE_MODE,
                S.ENTERING_RESCUE_MODE,
                S.FAILED_ENTERING_RESCUE_MODE,
                S.FAILED_EXITING_RESCUE_MODE,
            ),
        )
        action = "cycle" if origin is S.DEPLOYED else "off"
        d = self._power(node, action, actor, failed=S.FAILED_EXITING_RESCUE_MODE)

        def exited(_: Node) -> Node:
            return self._to(
                system_id,
                origin,
                actor,
                f"rescue mode exited (power {action})",
                fields={"status_message": ""},
                only_from=(S.EXITING_RESCUE_MODE,),
            )

        d.addCallback(exited)
        return d

    # -- broken / fixed -----------------------------------------------------------------

    def mark_broken(self, system_id: str, actor: str, reason: str = "") -> Node:
        return self._to(
            system_id,
            S.BROKEN,
            actor,
            reason or "marked broken",
            fields={"status_message": reason or "Marked broken", "status_deadline": None},
        )

    def mark_fixed(self, system_id: str, actor: str, reason: str = "") -> Node:
        return self._to(
            system_id,
            S.READY,
            actor,
            reason or "marked fixed",
            fields={"status_message": ""},
            only_from=(S.BROKEN,),
        )

    # -- fields without a status change -------------------------------------------------

    def set_owner_data(self, system_id: str, actor: str, updates: Mapping[str, str]) -> Node:
        """Merge ``updates`` into owner_data; an empty value deletes that key."""
        node = self.get(system_id)
        data = dict(node.owner_data)
        for key, value in updates.items():
            if not key or len(key) > 255:
                raise InvalidAction(key or "(key)", "owner data keys are 1..255 characters")
            if value == "":
                data.pop(key, None)
            else:
                data[key] = value
        return self.store.update_node(
            system_id,
            {"owner_data": data},
            self.clock(),
            actor,
            "owner-data",
            "owner data: " + ", ".join(sorted(updates)),
        )

    # -- timeouts -----------------------------------------------------------------------

    def expire_overdue(self) -> list[Node]:
        """Move every node whose phase deadline passed to the matching FAILED state."""
        now = self.clock()
        expired = []
        for node in self.store.nodes_past_deadline(now, FAILED_STATE):
            limit = {
                S.COMMISSIONING: self.timeouts.commissioning,
                S.DEPLOYING: self.timeouts.deploying,
                S.RELEASING: self.timeouts.releasing,
                S.DISK_ERASING: self.timeouts.disk_erasing,
                S.ENTERING_RESCUE_MODE: self.timeouts.entering_rescue_mode,
                S.EXITING_RESCUE_MODE: self.timeouts.exiting_rescue_mode,
            }[node.status]
            reason = (
                f"timed out: no report from the node within {limit:g} s of "
                f"{node.status.label.lower()}"
            )
            try:
                failed, _ = self.store.transition(
                    node.system_id,
                    FAILED_STATE[node.status],
                    now,
                    SYSTEM_ACTOR,
                    reason,
                    fields={"status_message": reason, "status_deadline": None},
                    only_from=(node.status,),
                )
            except (IllegalTransition, NodeNotFound):
                continue  # it reported (or was deleted) in the meantime
            log.warn(
                "{hostname} ({system_id}) {reason}",
                hostname=node.hostname,
                system_id=node.system_id,
                reason=reason,
            )
            expired.append(failed)
        return expired

    # -- internals ----------------------------------------------------------------------

    def _to(
        self,
        system_id: str,
        to: NodeStatus,
        actor: str,
        reason: str,
        *,
        deadline: float | None = None,
        fields: Mapping | None = None,
        only_from=None,
        before=None,
    ) -> Node:
        now = self.clock()
        all_fields = dict(fields or {})
        if to in FAILED_STATE:
            all_fields["status_deadline"] = now + deadline if deadline else None
        elif "status_deadline" not in all_fields:
            all_fields["status_deadline"] = None
        node, previous = self.store.transition(
            system_id, to, now, actor, reason, fields=all_fields, only_from=only_from, before=before
        )
        log.info(
            "{hostname} ({system_id}) {frm} -> {to} by {actor}: {reason}",
            hostname=node.hostname,
            system_id=system_id,
            frm=previous.name,
            to=to.name,
            actor=actor,
            reason=reason,
        )
        return node
