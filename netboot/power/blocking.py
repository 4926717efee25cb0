"""Run a blocking BMC library call (libvirt, pyghmi, sushy) off the reactor, time-bounded.

``BlockingDriver`` is what the virsh, ipmi and redfish drivers share on top of that:
on/off/cycle/query as one blocking operation each, the library-missing and bad-parameter
errors, and the deadline; each driver supplies only its parameters, its operations and
the one blocking function that opens a session and runs an operation in it.

Each call gets its own daemon thread, so a BMC that never answers holds one thread and
nothing else: the Deferred fails with a retryable PowerError after ``timeout`` seconds
whether or not the library returns, and the thread is left to finish (the libraries'
own socket timeouts end it later) without delaying shutdown. The number of threads
still running is capped process-wide; past the cap, calls fail at once instead of
queueing behind hung ones.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, TypeVar

from twisted.internet.defer import Deferred, fail
from twisted.python.failure import Failure

from netboot.power.base import InvalidPowerParameters, PowerError, PowerState

T = TypeVar("T")

MAX_THREADS = 64


class BlockingCalls:
    _lock = threading.Lock()
    _running = 0  # threads started and not yet returned, across all instances

    def __init__(self, reactor: Any, max_threads: int = MAX_THREADS) -> None:
        self.reactor = reactor
        self.max_threads = max_threads

    @classmethod
    def running(cls) -> int:
        with cls._lock:
            return cls._running

    def run(self, what: str, timeout: float, fn: Callable[..., T], *args: Any) -> Deferred[T]:
        """``fn(*args)`` on a thread; ``what`` names the target in error messages."""
        with self._lock:
            if BlockingCalls._running >= self.max_threads:
                busy = BlockingCalls._running
                return _failed(
                    PowerError(f"{what}: {busy} power calls are still waiting on BMCs; try later")
                )
            BlockingCalls._running += 1
        d: Deferred[T] = Deferred()
        reactor = self.reactor

        def expire() -> None:
            if not d.called:
                d.errback(PowerError(f"{what}: no answer within {timeout:g} s", retryable=True))

        timer = reactor.callLater(timeout, expire)

        def finish(outcome: Any) -> None:
            if timer.active():
                timer.cancel()
            if d.called:
                return  # timed out already; the late answer is dropped
            if isinstance(outcome, Failure):
                d.errback(outcome)
            else:
                d.callback(outcome)

        def work() -> None:
            try:
                outcome: Any = fn(*args)
            except BaseException:
                outcome = Failure()
            finally:
                with self._lock:
                    BlockingCalls._running -= 1
            reactor.callFromThread(finish, outcome)

        threading.Thread(target=work, name=f"power {what}", daemon=True).start()
        return d


def _failed(error: Exception) -> Deferred:
    d: Deferred = Deferred()
    d.errback(error)
    return d


# An operation run inside a driver's session: gets the library's handle (a libvirt
# domain, a pyghmi Command, a sushy System) and returns the action's answer.
Operation = Callable[[Any], Any]

ACTION_LABELS = {"on": "power on", "off": "power off", "cycle": "power cycle", "query": "query"}


class BlockingDriver:
    """Base for drivers over a blocking library. Subclasses set ``name``, ``library``
    (what to install, for the error when it is missing), ``operations`` (action ->
    Operation, for on/off/cycle/query) and implement ``validate``, ``_installed`` and
    ``_blocking``. Every action validates the parameters, then runs the driver's session
    function on its own thread with the driver's deadline (``BlockingCalls``)."""

    name: ClassVar[str]
    library: ClassVar[str]
    operations: ClassVar[Mapping[str, Operation]]
    can_query = True

    def __init__(self, reactor: Any, timeout: float = 30.0) -> None:
        self.reactor = reactor
        self.timeout = timeout
        self.calls = BlockingCalls(reactor)

    def validate(self, params: Mapping[str, str]) -> dict[str, str]:  # pragma: no cover
        raise NotImplementedError

    def _installed(self) -> bool:  # pragma: no cover - each driver says
        raise NotImplementedError

    def _blocking(
        self, p: Mapping[str, str], op: Operation
    ) -> tuple[str, Callable[..., Any], tuple[Any, ...]]:  # pragma: no cover
        """(target for messages, e.g. "via BMC 10.0.0.5:623"; the function to run on
        the thread; its arguments) for validated parameters ``p`` and operation ``op``."""
        raise NotImplementedError

    def on(self, params: Mapping[str, str]) -> Deferred[None]:
        return self._call("on", params)

    def off(self, params: Mapping[str, str]) -> Deferred[None]:
        return self._call("off", params)

    def cycle(self, params: Mapping[str, str]) -> Deferred[None]:
        return self._call("cycle", params)

    def query(self, params: Mapping[str, str]) -> Deferred[PowerState]:
        return self._call("query", params)

    def _call(self, action: str, params: Mapping[str, str]) -> Deferred:
        if not self._installed():
            return fail(
                PowerError(f"{self.library} is not installed on the appliance", retryable=False)
            )
        try:
            p = self.validate(params)
        except InvalidPowerParameters as exc:
            return fail(PowerError(f"{self.name} parameters: {exc}", retryable=False))
        target, fn, args = self._blocking(p, self.operations[action])
        return self.calls.run(f"{ACTION_LABELS[action]} {target}", self.timeout, fn, *args)
