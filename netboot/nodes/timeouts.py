"""The phase-timeout checker: a LoopingCall that fails nodes that stopped reporting.

A node in COMMISSIONING, DEPLOYING or RELEASING carries a deadline (set by NodeActions
on entry). Every ``interval`` seconds the checker asks NodeActions to move nodes past
their deadline to FAILED_COMMISSIONING / FAILED_DEPLOYMENT / FAILED_RELEASING, with the
reason in the event and the status message. The clock is injected (tests: task.Clock).
"""

from __future__ import annotations

from typing import Any

from twisted.application import service
from twisted.internet import task
from twisted.logger import Logger

from netboot.nodes.actions import NodeActions

log = Logger(namespace="netboot.nodes")


class TimeoutChecker(service.Service):
    name = "node-timeouts"

    def __init__(self, actions: NodeActions, clock: Any, interval: float = 10.0) -> None:
        self.actions = actions
        self.interval = interval
        self._loop = task.LoopingCall(self.check)
        self._loop.clock = clock
        self._done: Any = None

    def check(self) -> int:
        """One pass; returns how many nodes were failed. Never raises (logged instead),
        so one bad row cannot stop the loop."""
        try:
            return len(self.actions.expire_overdue())
        except Exception:
            log.failure("node timeout check failed")
            return 0

    def startService(self) -> None:  # noqa: N802 (twisted API name)
        super().startService()
        self._done = self._loop.start(self.interval, now=True)

    def stopService(self):  # noqa: N802 (twisted API name)
        super().stopService()
        if self._loop.running:
            self._loop.stop()
        return None
