"""Group commit: many lease changes share one transaction and one fsync.

The reactor thread submits (changes, on_durable) pairs; one writer thread takes every
pending submission at once, writes them in one transaction, and when COMMIT (fsync)
returns hands the callbacks back to the reactor, which sends the ACKs. While a batch
is being fsynced the next one collects: under load batches grow by themselves, at idle
a lone ACK waits for exactly one fsync. sqlite3 releases the GIL while it writes and
syncs, so OFFERs keep flowing during the fsync.

``threaded=False`` runs each batch inline at the end of the submitting call chain
(tests, and a fallback); the ordering guarantee is the same: a callback runs only
after its changes are committed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger

from netboot.store.leases import Change

__all__ = ["GroupCommitter"]

log = Logger(namespace="netboot.dhcp.commit")

Callback = Callable[[], None] | None


class GroupCommitter:
    def __init__(
        self,
        apply: Callable[[Sequence[Change]], None],
        reactor: Any,
        on_error: Callable[[BaseException], None],
        threaded: bool = True,
    ) -> None:
        self._apply = apply
        self._reactor = reactor
        self._on_error = on_error
        self._threaded = threaded
        self._pending: list[tuple[Sequence[Change], Callback]] = []
        self._busy = False
        self._idle_waiters: list[Deferred] = []
        self._cv = threading.Condition()
        self._work: list[tuple[Sequence[Change], Callback]] | None = None
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.batches = 0
        self.changes = 0
        self.largest_batch = 0
        if threaded:
            self._thread = threading.Thread(target=self._run, name="dhcp-commit", daemon=True)
            self._thread.start()

    def submit(self, changes: Sequence[Change], on_durable: Callback = None) -> None:
        """Queue ``changes``; ``on_durable`` runs on the reactor once they are fsynced."""
        self._pending.append((changes, on_durable))
        if not self._busy:
            self._start_batch()

    @property
    def pending(self) -> int:
        return len(self._pending)

    def idle(self) -> Deferred:
        """Fires once nothing is pending or being written."""
        if not self._busy and not self._pending:
            return succeed(None)
        d: Deferred = Deferred()
        self._idle_waiters.append(d)
        return d

    def stop(self) -> Deferred:
        """Finish what was submitted, then stop the writer thread."""
        d = self.idle()

        def _halt(result: object) -> object:
            with self._cv:
                self._stopping = True
                self._cv.notify()
            return result

        d.addBoth(_halt)
        return d

    # -- internals ----------------------------------------------------------------

    def _start_batch(self) -> None:
        batch, self._pending = self._pending, []
        self._busy = True
        if not self._threaded:
            error = self._write(batch)
            self._finished(batch, error)
            return
        with self._cv:
            self._work = batch
            self._cv.notify()

    def _write(self, batch: list[tuple[Sequence[Change], Callback]]) -> BaseException | None:
        changes = [c for submitted, _ in batch for c in submitted]
        try:
            if changes:
                self._apply(changes)
        except BaseException as exc:  # the whole batch failed: nothing of it is durable
            return exc
        self.batches += 1
        self.changes += len(changes)
        self.largest_batch = max(self.largest_batch, len(batch))
        return None

    def _run(self) -> None:
        while True:
            with self._cv:
                while self._work is None and not self._stopping:
                    self._cv.wait()
                if self._work is None:
                    return
                batch, self._work = self._work, None
            error = self._write(batch)
            self._reactor.callFromThread(self._finished, batch, error)

    def _finished(
        self, batch: list[tuple[Sequence[Change], Callback]], error: BaseException | None
    ) -> None:
        self._busy = False
        if error is not None:
            log.error(
                "lease commit of {n} changes failed: {error}; their replies are not sent",
                n=sum(len(c) for c, _ in batch),
                error=repr(error),
            )
            self._on_error(error)
        else:
            for _, callback in batch:
                if callback is not None:
                    try:
                        callback()
                    except Exception:
                        log.failure("error in a post-commit callback")
        if self._pending:
            self._start_batch()
        elif self._idle_waiters:
            waiters, self._idle_waiters = self._idle_waiters, []
            for d in waiters:
                d.callback(None)
