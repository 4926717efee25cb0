"""Power actions, one at a time per node and per BMC, retried with backoff, time-bounded.

``PowerQueue.submit(node, driver, action, params)`` returns a Deferred that fires with
the driver's answer (None, or a PowerState for ``query``) or fails with PowerError.
Rules:
- serialised: an action waits until every earlier action on the same node *and* on the
  same BMC (``base.bmc_key``: e.g. one IPMI address) has finished -- BMCs mishandle
  concurrent sessions, and "off then on" must not run as "on then off";
- bounded: each attempt is cut off after ``attempt_timeout`` (drivers have their own,
  shorter deadline; this is the safety net), and no retry starts after ``deadline``
  seconds from the first attempt;
- retried: a retryable PowerError (timeouts, connection errors, 5xx) is retried after
  ``first_delay``, then ``factor`` times longer each time, up to ``attempts`` in all; a
  non-retryable one (bad password, no such domain) fails at once;
- recorded: every start, retry and outcome is passed to ``on_event`` as a PowerEvent
  (NodeActions or the power service writes them to the store) and logged;
- cancellable: cancelling the returned Deferred stops the retries and frees the node
  and BMC for the next action (a call already running on a thread is abandoned).
Nodes never wait for each other: a hung BMC holds only its own node's queue.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from twisted.internet import defer, task
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from netboot.power.base import PowerDriver, PowerError, bmc_key

log = Logger(namespace="netboot.power.queue")

ACTIONS = ("on", "off", "cycle", "query")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 3
    first_delay: float = 2.0
    factor: float = 2.0
    max_delay: float = 30.0
    attempt_timeout: float = 60.0
    deadline: float = 180.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        return min(self.max_delay, self.first_delay * self.factor ** (attempt - 1))


@dataclass(frozen=True, slots=True)
class PowerEvent:
    node: str
    action: str
    kind: str  # "started" | "retrying" | "done" | "failed"
    message: str
    attempt: int
    power_type: str


EventSink = Callable[[PowerEvent], None]


class PowerQueue:
    def __init__(
        self,
        clock: IReactorTime,
        policy: RetryPolicy = RetryPolicy(),  # noqa: B008 (frozen)
        on_event: EventSink | None = None,
    ) -> None:
        self.clock = clock
        self.policy = policy
        self.on_event = on_event
        self._locks: dict[str, defer.DeferredLock] = {}
        self._pending: dict[str, int] = {}

    def pending(self, node: str) -> int:
        """Actions submitted for ``node`` and not finished (queued or running)."""
        return self._pending.get(node, 0)

    def busy_keys(self) -> set[str]:
        return {k for k, lock in self._locks.items() if lock.locked}

    def submit(
        self, node: str, driver: PowerDriver, action: str, params: Mapping[str, str]
    ) -> defer.Deferred:
        if action not in ACTIONS:
            raise ValueError(f"unknown power action {action!r}")
        keys = [f"node:{node}", f"bmc:{bmc_key(driver, params)}"]
        self._pending[node] = self._pending.get(node, 0) + 1
        d = self._serialised(keys, lambda: self._attempts(node, driver, action, dict(params)))

        def finished(result: Any) -> Any:
            left = self._pending[node] - 1
            if left:
                self._pending[node] = left
            else:
                del self._pending[node]
            return result

        return d.addBoth(finished)

    # -- serialisation ----------------------------------------------------------------

    @defer.inlineCallbacks
    def _serialised(self, keys: list[str], work: Callable[[], defer.Deferred]):
        # Always node lock first, then BMC lock: no action holds a BMC lock while
        # waiting for a node lock, so two actions can never wait on each other.
        locks = [self._locks.setdefault(k, defer.DeferredLock()) for k in keys]
        held: list[defer.DeferredLock] = []
        try:
            for lock in locks:
                yield lock.acquire()
                held.append(lock)
            result = yield work()
            return result
        finally:
            for lock in reversed(held):
                lock.release()
            for key, lock in zip(keys, locks, strict=True):
                if not lock.locked and not lock.waiting and self._locks.get(key) is lock:
                    del self._locks[key]

    # -- attempts ---------------------------------------------------------------------

    @defer.inlineCallbacks
    def _attempts(self, node: str, driver: PowerDriver, action: str, params: dict[str, str]):
        policy = self.policy
        started = self.clock.seconds()
        attempt = 0
        while True:
            attempt += 1
            self._event(node, action, "started", f"power {action} ({driver.name})", attempt, driver)
            d = defer.maybeDeferred(getattr(driver, action), params)
            d.addTimeout(policy.attempt_timeout, self.clock)
            try:
                result = yield d
            except defer.TimeoutError:
                error = PowerError(
                    f"power {action} via {driver.name}: no answer within "
                    f"{policy.attempt_timeout:g} s"
                )
            except PowerError as exc:
                error = exc
            except defer.CancelledError:
                self._cancelled(node, action, attempt, driver)
                raise
            except Exception as exc:  # a driver bug must not take the queue down
                log.failure(
                    "power {action} of {node} crashed in the {ptype} driver",
                    Failure(),
                    action=action,
                    node=node,
                    ptype=driver.name,
                )
                error = PowerError(
                    f"power {action} via {driver.name}: internal error {exc!r}", retryable=False
                )
            else:
                detail = f": {result.value}" if action == "query" and result is not None else ""
                self._event(
                    node,
                    action,
                    "done",
                    f"power {action} ({driver.name}) done{detail}",
                    attempt,
                    driver,
                )
                return result
            elapsed = self.clock.seconds() - started
            delay = policy.delay(attempt)
            if (
                not error.retryable
                or attempt >= policy.attempts
                or elapsed + delay >= policy.deadline
            ):
                why = "" if error.retryable else " (not retried)"
                self._event(
                    node,
                    action,
                    "failed",
                    f"power {action} failed after {attempt} attempt(s){why}: {error}",
                    attempt,
                    driver,
                )
                raise error
            self._event(
                node,
                action,
                "retrying",
                f"power {action} attempt {attempt} failed: {error}; retrying in {delay:g} s",
                attempt,
                driver,
            )
            try:
                yield task.deferLater(self.clock, delay, lambda: None)
            except defer.CancelledError:
                self._cancelled(node, action, attempt, driver)
                raise

    def _cancelled(self, node: str, action: str, attempt: int, driver: PowerDriver) -> None:
        self._event(node, action, "failed", f"power {action} cancelled", attempt, driver)

    def _event(
        self, node: str, action: str, kind: str, message: str, attempt: int, driver: PowerDriver
    ) -> None:
        event = PowerEvent(node, action, kind, message, attempt, driver.name)
        emit = log.warn if kind in ("retrying", "failed") else log.debug
        emit("{node}: {message}", node=node, message=message, kind=kind)
        if self.on_event is not None:
            try:
                self.on_event(event)
            except Exception:
                log.failure("power event sink failed for {node}", node=node)


class QueuedDriver:
    """A PowerDriver whose actions go through a PowerQueue under the node ``node_of``
    returns for the parameters; ``for_node`` binds the node instead (NodeActions does,
    so an event never lands on another node behind the same BMC)."""

    def __init__(
        self, driver: PowerDriver, queue: PowerQueue, node_of: Callable[[Mapping[str, str]], str]
    ) -> None:
        self.driver = driver
        self.queue = queue
        self.node_of = node_of
        self.name = driver.name
        self.parameters = driver.parameters
        self.can_query = driver.can_query

    def __getattr__(self, name: str) -> Any:  # validate, bmc_key
        return getattr(self.driver, name)

    def for_node(self, node: str) -> QueuedDriver:
        """The same driver with its actions queued (and their events recorded) under
        ``node``: callers that know the node say so, since several nodes can share one
        BMC and the parameters alone do not tell them apart."""
        return QueuedDriver(self.driver, self.queue, lambda _params: node)

    def _submit(self, action: str, params: Mapping[str, str]) -> defer.Deferred:
        return self.queue.submit(self.node_of(params), self.driver, action, params)

    def on(self, params: Mapping[str, str]) -> defer.Deferred:
        return self._submit("on", params)

    def off(self, params: Mapping[str, str]) -> defer.Deferred:
        return self._submit("off", params)

    def cycle(self, params: Mapping[str, str]) -> defer.Deferred:
        return self._submit("cycle", params)

    def query(self, params: Mapping[str, str]) -> defer.Deferred:
        return self._submit("query", params)
