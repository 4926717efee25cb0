"""Node statuses and the one table of legal transitions between them.

Numbers follow MAAS (``maascommon``'s NODE_STATUS) so MAAS clients read them unchanged.
Every status change in netboot goes through ``check_transition``; the store records
each one as an event.
"""

from __future__ import annotations

from enum import IntEnum


class NodeStatus(IntEnum):
    NEW = 0
    COMMISSIONING = 1
    FAILED_COMMISSIONING = 2
    READY = 4
    DEPLOYED = 6
    BROKEN = 8
    DEPLOYING = 9
    ALLOCATED = 10
    FAILED_DEPLOYMENT = 11
    RELEASING = 12
    FAILED_RELEASING = 13
    DISK_ERASING = 14
    FAILED_DISK_ERASING = 15
    RESCUE_MODE = 16

    @property
    def label(self) -> str:
        """MAAS's label (``NODE_STATUS_LABELS``): clients such as Juju match on it."""
        return _LABELS[self]


_LABELS = {
    NodeStatus.NEW: "New",
    NodeStatus.COMMISSIONING: "Commissioning",
    NodeStatus.FAILED_COMMISSIONING: "Failed commissioning",
    NodeStatus.READY: "Ready",
    NodeStatus.DEPLOYED: "Deployed",
    NodeStatus.BROKEN: "Broken",
    NodeStatus.DEPLOYING: "Deploying",
    NodeStatus.ALLOCATED: "Allocated",
    NodeStatus.FAILED_DEPLOYMENT: "Failed deployment",
    NodeStatus.RELEASING: "Releasing",
    NodeStatus.FAILED_RELEASING: "Releasing failed",
    NodeStatus.DISK_ERASING: "Disk erasing",
    NodeStatus.FAILED_DISK_ERASING: "Failed disk erasing",
    NodeStatus.RESCUE_MODE: "Rescue mode",
}


S = NodeStatus
TRANSITIONS: dict[NodeStatus, frozenset[NodeStatus]] = {
    S.NEW: frozenset({S.COMMISSIONING, S.BROKEN}),
    S.COMMISSIONING: frozenset({S.READY, S.FAILED_COMMISSIONING, S.NEW, S.BROKEN}),
    S.FAILED_COMMISSIONING: frozenset({S.COMMISSIONING, S.BROKEN}),
    S.READY: frozenset({S.COMMISSIONING, S.ALLOCATED, S.BROKEN, S.RESCUE_MODE}),
    S.ALLOCATED: frozenset({S.DEPLOYING, S.RELEASING, S.READY, S.DISK_ERASING, S.BROKEN}),
    S.DEPLOYING: frozenset(
        {S.DEPLOYED, S.FAILED_DEPLOYMENT, S.RELEASING, S.DISK_ERASING, S.BROKEN}
    ),
    S.FAILED_DEPLOYMENT: frozenset({S.DEPLOYING, S.RELEASING, S.DISK_ERASING, S.BROKEN}),
    S.DEPLOYED: frozenset({S.RELEASING, S.DISK_ERASING, S.BROKEN, S.RESCUE_MODE}),
    S.RELEASING: frozenset({S.READY, S.FAILED_RELEASING, S.DISK_ERASING, S.BROKEN}),
    S.FAILED_RELEASING: frozenset({S.RELEASING, S.DISK_ERASING, S.BROKEN}),
    # Release with erase: the node boots the installer in erase mode, which reports done
    # (READY) or failed; a failed erase may be retried by releasing again.
    S.DISK_ERASING: frozenset({S.READY, S.FAILED_DISK_ERASING, S.BROKEN}),
    S.FAILED_DISK_ERASING: frozenset({S.DISK_ERASING, S.RELEASING, S.BROKEN}),
    S.BROKEN: frozenset({S.READY, S.COMMISSIONING}),
    S.RESCUE_MODE: frozenset({S.READY, S.DEPLOYED, S.BROKEN}),
}


class IllegalTransition(ValueError):
    def __init__(self, current: NodeStatus, wanted: NodeStatus) -> None:
        super().__init__(f"cannot go from {current.name} to {wanted.name}")
        self.current = current
        self.wanted = wanted


def check_transition(current: NodeStatus, wanted: NodeStatus) -> None:
    """Raise IllegalTransition unless ``current -> wanted`` is in the table."""
    if wanted not in TRANSITIONS[current]:
        raise IllegalTransition(current, wanted)
