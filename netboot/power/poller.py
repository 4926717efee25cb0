"""Keep every node's ``power_state`` current: a periodic query through the power queue.

Every ``interval`` seconds (a LoopingCall on the injected clock) the poller asks
``targets()`` for the nodes to query -- (node, power_type, params) -- and queries each
one that can be queried and has nothing else queued (an on/off in progress answers for
itself). At most ``concurrency`` queries run at once, so a thousand nodes do not open
a thousand BMC sessions. Each answer (or error) goes to ``on_state``; a round never
overlaps the next.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from twisted.internet import defer, task
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from netboot.power.base import PowerDriver, PowerError, PowerState
from netboot.power.queue import PowerQueue

log = Logger(namespace="netboot.power.poller")


@dataclass(frozen=True, slots=True)
class PollTarget:
    node: str
    power_type: str
    params: dict[str, str]


StateSink = Callable[[str, PowerState, str], None]  # node, state, error message ("" if none)


class PowerPoller:
    def __init__(
        self,
        clock: IReactorTime,
        queue: PowerQueue,
        targets: Callable[[], Iterable[PollTarget]],
        lookup: Callable[[str], PowerDriver],
        on_state: StateSink,
        interval: float = 300.0,
        concurrency: int = 8,
    ) -> None:
        self.clock = clock
        self.queue = queue
        self.targets = targets
        self.lookup = lookup
        self.on_state = on_state
        self.interval = interval
        self._limit = defer.DeferredSemaphore(concurrency)
        self._loop: task.LoopingCall | None = None
        self._round: defer.Deferred | None = None
        self.rounds = 0

    def start(self, now: bool = True) -> None:
        if self._loop is None:
            self._loop = task.LoopingCall(self.poll_once)
            self._loop.clock = self.clock
            self._loop.start(self.interval, now=now).addErrback(
                lambda f: log.failure("power poller stopped", f)
            )

    def stop(self) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None

    def poll_once(self) -> defer.Deferred:
        """Query every node once; fires when all answered (or failed). A round still
        running when the next is due is not doubled: the LoopingCall waits for it."""
        if self._round is not None:
            return self._round
        queries = []
        for target in self.targets():
            if self.queue.pending(target.node):
                continue
            try:
                driver = self.lookup(target.power_type)
            except KeyError:
                self._report(
                    target.node, PowerState.ERROR, f"unknown power type {target.power_type!r}"
                )
                continue
            if not driver.can_query:
                continue
            queries.append(self._limit.run(self._query, target, driver))
        self.rounds += 1
        round_ = defer.DeferredList(queries, consumeErrors=True)
        self._round = round_

        def done(_: Any) -> None:
            self._round = None

        round_.addBoth(done)
        return round_

    def _query(self, target: PollTarget, driver: PowerDriver) -> defer.Deferred:
        d = self.queue.submit(target.node, driver, "query", target.params)

        def answered(state: PowerState) -> None:
            self._report(target.node, state, "")

        def failed(failure: Any) -> None:
            message = (
                failure.getErrorMessage() if failure.check(PowerError) else repr(failure.value)
            )
            self._report(target.node, PowerState.ERROR, message)

        return d.addCallbacks(answered, failed)

    def _report(self, node: str, state: PowerState, message: str) -> None:
        try:
            self.on_state(node, state, message)
        except Exception:
            log.failure("recording the power state of {node} failed", node=node)
