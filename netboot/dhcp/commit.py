"""Group commit: many lease changes share one transaction and one fsync.

Submitters hand in (changes, on_durable) pairs; every pending submission is written
in one transaction, and only when COMMIT (fsync) has returned do the callbacks run --
they send the ACKs. While one batch is being written the next one collects, so under
load batches grow by themselves and at idle a lone ACK waits for exactly one fsync.

Modes:
- "thread" (default): a writer thread writes each batch; sqlite3 releases the GIL
  while it writes and fsyncs, so OFFERs keep flowing during an fsync. The store turns
  a batch of upserts into one multi-row statement (store/leases.py), so the writer
  asks for the GIL back a handful of times per batch, not once per row.
- "reactor": the batch is written on the reactor thread once per reactor iteration
  (callLater(0)), i.e. after the sockets were drained. No second thread, but every
  fsync stalls the reactor; measured slower when the disk is busy (docs/dhcp.md).
- "inline": write at once on each submit (unit tests).
In every mode a callback runs only after its changes are committed.
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
MODES = ("thread", "reactor", "inline")


class GroupCommitter:
    def __init__(
        self,
        apply: Callable[[Sequence[Change]], None],
        reactor: Any,
        on_error: Callable[[BaseException], None],
        mode: str = "thread",
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"commit mode must be one of {MODES}, not {mode!r}")
        self._apply = apply
        self._reactor = reactor
        self._on_error = on_error
        self._mode = mode
        self._scheduled = False
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
        if mode == "thread":
            self._thread = threading.Thread(target=self._run, name="dhcp-commit", daemon=True)
            self._thread.start()

    def submit(self, changes: Sequence[Change], on_durable: Callback = None) -> None:
        """Queue ``changes``; ``on_durable`` runs on the reactor once they are fsynced."""
        self._pending.append((changes, on_durable))
        if self._busy:
            return
        if self._mode == "reactor":
            if not self._scheduled:
                self._scheduled = True
                self._reactor.callLater(0, self._flush_now)
            return
        self._start_batch()

    def _flush_now(self) -> None:
        self._scheduled = False
        if self._pending and not self._busy:
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
        if self._mode != "thread":
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
