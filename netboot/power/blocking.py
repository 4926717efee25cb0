"""Run a blocking BMC library call (libvirt, pyghmi, sushy) off the reactor, time-bounded.

Each call gets its own daemon thread, so a BMC that never answers holds one thread and
nothing else: the Deferred fails with a retryable PowerError after ``timeout`` seconds
whether or not the library returns, and the thread is left to finish (the libraries'
own socket timeouts end it later) without delaying shutdown. The number of threads
still running is capped process-wide; past the cap, calls fail at once instead of
queueing behind hung ones.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from netboot.power.base import PowerError

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
