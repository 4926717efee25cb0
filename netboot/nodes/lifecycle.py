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
    ENTERING_RESCUE_MODE = 17
    FAILED_ENTERING_RESCUE_MODE = 18
    EXITING_RESCUE_MODE = 19
    FAILED_EXITING_RESCUE_MODE = 20

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
    NodeStatus.ENTERING_RESCUE_MODE: "Entering rescue mode",
    NodeStatus.FAILED_ENTERING_RESCUE_MODE: "Failed to enter rescue mode",
    NodeStatus.EXITING_RESCUE_MODE: "Exiting rescue mode",
    NodeStatus.FAILED_EXITING_RESCUE_MODE: "Failed to exit rescue mode",
}

# Where rescue mode may start from (MAAS's RescueMode action, minus the statuses netboot
# does not have), and so where exiting it may return to. Rescue states themselves are
# never an origin: exiting goes back to the state before the first try.
RESCUE_ORIGINS = frozenset(
    {
        NodeStatus.NEW,
        NodeStatus.FAILED_COMMISSIONING,
        NodeStatus.READY,
        NodeStatus.ALLOCATED,
        NodeStatus.FAILED_DEPLOYMENT,
        NodeStatus.DEPLOYED,
        NodeStatus.BROKEN,
        NodeStatus.FAILED_DISK_ERASING,
    }
)
RESCUE_STATES = frozenset(
    {
        NodeStatus.RESCUE_MODE,
        NodeStatus.ENTERING_RESCUE_MODE,
        NodeStatus.FAILED_ENTERING_RESCUE_MODE,
        NodeStatus.EXITING_RESCUE_MODE,
        NodeStatus.FAILED_EXITING_RESCUE_MODE,
    }
)


S = NodeStatus
_ENTER = S.ENTERING_RESCUE_MODE
TRANSITIONS: dict[NodeStatus, frozenset[NodeStatus]] = {
    S.NEW: frozenset({S.COMMISSIONING, S.BROKEN, _ENTER}),
    S.COMMISSIONING: frozenset({S.READY, S.FAILED_COMMISSIONING, S.NEW, S.BROKEN}),
    S.FAILED_COMMISSIONING: frozenset({S.COMMISSIONING, S.BROKEN, _ENTER}),
    S.READY: frozenset({S.COMMISSIONING, S.ALLOCATED, S.BROKEN, _ENTER}),
    S.ALLOCATED: frozenset({S.DEPLOYING, S.RELEASING, S.READY, S.DISK_ERASING, S.BROKEN, _ENTER}),
    S.DEPLOYING: frozenset(
        {S.DEPLOYED, S.FAILED_DEPLOYMENT, S.RELEASING, S.DISK_ERASING, S.BROKEN}
    ),
    S.FAILED_DEPLOYMENT: frozenset({S.DEPLOYING, S.RELEASING, S.DISK_ERASING, S.BROKEN, _ENTER}),
    S.DEPLOYED: frozenset({S.RELEASING, S.DISK_ERASING, S.BROKEN, _ENTER}),
    S.RELEASING: frozenset({S.READY, S.FAILED_RELEASING, S.DISK_ERASING, S.BROKEN}),
    S.FAILED_RELEASING: frozenset({S.RELEASING, S.DISK_ERASING, S.BROKEN}),
    # Release with erase: the node boots the installer in erase mode, which reports done
    # (READY) or failed; a failed erase may be retried by releasing again.
    S.DISK_ERASING: frozenset({S.READY, S.FAILED_DISK_ERASING, S.BROKEN}),
    S.FAILED_DISK_ERASING: frozenset({S.DISK_ERASING, S.RELEASING, S.BROKEN, _ENTER}),
    S.BROKEN: frozenset({S.READY, S.COMMISSIONING, _ENTER}),
    # Rescue mode (as MAAS): power cycle into the installer's rescue shell, which reports
    # "up" (RESCUE_MODE); exiting powers off (or cycles a DEPLOYED node to its disk) and
    # goes back to the state rescue started from.
    S.ENTERING_RESCUE_MODE: frozenset(
        {S.RESCUE_MODE, S.FAILED_ENTERING_RESCUE_MODE, S.EXITING_RESCUE_MODE, S.BROKEN}
    ),
    S.FAILED_ENTERING_RESCUE_MODE: frozenset({_ENTER, S.EXITING_RESCUE_MODE, S.BROKEN}),
    S.RESCUE_MODE: frozenset({S.EXITING_RESCUE_MODE, S.BROKEN}),
    S.EXITING_RESCUE_MODE: RESCUE_ORIGINS | {S.FAILED_EXITING_RESCUE_MODE},
    S.FAILED_EXITING_RESCUE_MODE: frozenset({_ENTER, S.EXITING_RESCUE_MODE, S.BROKEN}),
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
