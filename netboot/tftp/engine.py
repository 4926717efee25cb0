"""The data phase of TFTP transfers: one lean epoll loop per server, off the reactor.

The Twisted listener (server.py) parses each RRQ, opens the file, negotiates options
and creates the transfer's socket (the server's TID, RFC 1350 section 4). It then hands
the whole transfer to a `TransferEngine`, which runs every DATA/ACK exchange in a plain
`select.epoll` loop on its own thread: per ACK one `recvfrom`, the session's decision
(session.py, unchanged: the protocol lives there), one `pread` and one `sendmsg`
(udp.DataSender). A lock-step transfer (PXE ROMs, pxelinux, grub: windowsize 1) costs
one ACK round trip per block, so the few microseconds of Python per block are the
server's share of that round trip; the reactor's per-event machinery (timed-call
bookkeeping, logging context, `DatagramProtocol` dispatch) is not paid per block.

Timers: each transfer has one deadline (last progress + the session's current wait).
Deadlines live in a heap with one live entry per transfer; progress only moves the
deadline, and an entry that fires early is pushed again for the remainder (no heap
operation per ACK). The same expiry checks the transfer lifetime cap.

Threads: `submit` and `stop` are called from the reactor thread; everything else runs
on the engine thread. The engine never touches the reactor: it hands results back
through the injected `deliver(callable, *args)` (reactor.callFromThread in production,
a direct call in tests), which the server uses for its counters and log lines. `clock`
is injected too (time.monotonic by default), and `run_once(timeout)` is the loop body,
so tests drive the engine step by step with a fake clock and no thread.

Fast path (fastpath.py, `TransferEngine(fastpath=True)`, the server's default): a transfer
of a regular file in octet mode (`file_fd` set) runs instead on a thread of its own, in
C with the GIL released; the epoll loop keeps dynamic and netascii transfers. Both
report through the same `on_finished` with the same counters (`bytes_sent`,
`bytes_acked`, `retransmits`, `send_syscalls`, `send_dropped`, `errors_sent`), set on
the transfer before it is delivered. `stop()` ends both kinds with "server stopped".
If no thread can be started, the epoll loop takes the transfer after all.
"""

from __future__ import annotations

import contextlib
import errno
import heapq
import os
import select
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, BinaryIO

from netboot.tftp import fastpath as _fast
from netboot.tftp.codec import Data, Error, ErrorCode, MalformedPacket, decode, encode
from netboot.tftp.session import ReadSession, State, Step
from netboot.tftp.udp import DataSender

__all__ = ["EngineTransfer", "TransferEngine"]

Peer = tuple[Any, ...]
Deliver = Callable[..., None]

_TOO_LONG = Error(ErrorCode.NOT_DEFINED, "transfer took too long")
_UNKNOWN_TID = Error(ErrorCode.UNKNOWN_TID, "unknown transfer ID")
_INTERNAL = Error(ErrorCode.NOT_DEFINED, "internal error")
_STOPPED = Step((), State.FAILED, "server stopped")
_RECV_SIZE = 2048  # clients send ACK (4 octets) and ERROR; anything longer is malformed anyway


class EngineTransfer:
    """One transfer owned by the engine: its socket, session, source and deadline.

    `on_finished(transfer, step)` is delivered once, after the socket and the source are
    closed. The counters (`bytes_sent`, `bytes_acked`, `retransmits`, `send_syscalls`,
    `send_dropped`, `errors_sent`) are final by then, so the reactor thread reads them
    safely.
    """

    __slots__ = (
        "sock",
        "fd",
        "peer",
        "session",
        "source",
        "filename",
        "sender",
        "on_finished",
        "started",
        "deadline",
        "timer_at",
        "errors_sent",
        "closed",
        "file_fd",
        "fast",
        "max_seconds",
        "bytes_sent",
        "bytes_acked",
        "retransmits",
        "send_syscalls",
        "send_dropped",
    )

    def __init__(
        self,
        sock: socket.socket,
        peer: Peer,
        session: ReadSession,
        source: BinaryIO,
        filename: str,
        on_finished: Callable[[EngineTransfer, Step], None],
        *,
        use_gso: bool = True,
        file_fd: int | None = None,
    ) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.peer = peer
        self.session = session
        self.source = source
        self.filename = filename
        self.sender = DataSender(sock, use_gso=use_gso)
        self.on_finished = on_finished
        self.started = 0.0
        self.deadline = 0.0  # when the current wait for progress runs out
        self.timer_at = 0.0  # time of this transfer's live heap entry
        self.errors_sent = 0
        self.closed = False
        self.file_fd = file_fd  # a regular file read as-is (octet): eligible for the fast path
        self.fast = False  # running on the fast path (set on submit)
        self.max_seconds = 0.0  # the engine's lifetime cap, set on submit
        # Final counters, set before on_finished is delivered.
        self.bytes_sent = 0  # DATA payload octets, retransmissions included
        self.bytes_acked = 0
        self.retransmits = 0
        self.send_syscalls = 0
        self.send_dropped = 0


class TransferEngine:
    """Runs submitted transfers to completion on one epoll loop (see module docstring)."""

    def __init__(
        self,
        *,
        deliver: Deliver,
        log: Deliver | None = None,
        clock: Callable[[], float] = time.monotonic,
        max_transfer_seconds: float = 1800.0,
        fastpath: bool = False,
    ) -> None:
        self._deliver = deliver
        self._log = log  # log(format, **fields), called through deliver
        self.clock = clock
        self.max_transfer_seconds = max_transfer_seconds
        self._poller = select.epoll()
        self._wake_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._poller.register(self._wake_fd, select.EPOLLIN)
        self._incoming: deque[EngineTransfer] = deque()  # from submit(), any thread
        self._by_fd: dict[int, EngineTransfer] = {}
        self._heap: list[tuple[float, int, EngineTransfer]] = []
        self._seq = 0  # heap tie-breaker
        self._stopping = False
        self._thread: threading.Thread | None = None
        # Fast path: one thread per transfer; stop() sets the flag's byte, which every
        # C loop reads before each receive (at most a 0.1 s receive tick apart).
        self.fastpath = fastpath and _fast.available()
        self._stop_flag = bytearray(1)
        self._fast_lock = threading.Lock()
        self._fast: dict[EngineTransfer, threading.Thread] = {}
        self._fast_stopped: list[tuple[EngineTransfer, Step]] = []

    # --- reactor side ---------------------------------------------------------------

    def start(self) -> None:
        """Run the loop on a daemon thread until `stop()`."""
        if self._thread is not None or self._stopping:
            raise RuntimeError("engine already started or stopped")
        self._thread = threading.Thread(target=self._run, name="tftp-engine", daemon=True)
        self._thread.start()

    def submit(self, transfer: EngineTransfer) -> None:
        """Hand over a transfer (socket bound, session not started). Any thread."""
        transfer.max_seconds = self.max_transfer_seconds
        if self.fastpath and transfer.file_fd is not None:
            thread = threading.Thread(
                target=self._run_fast, args=(transfer,), name="tftp-transfer", daemon=True
            )
            with self._fast_lock:
                if self._stopping:
                    started = None
                else:
                    self._fast[transfer] = thread
                    transfer.fast = True
                    try:
                        thread.start()
                        started = True
                    except RuntimeError:  # no more threads: the epoll loop takes it
                        del self._fast[transfer]
                        transfer.fast = started = False
            if started:
                return
            if started is None:
                self._close(transfer, _STOPPED, direct=True)
                return
            _fast.connect_for_python_loop(transfer)
        self._incoming.append(transfer)
        os.eventfd_write(self._wake_fd, 1)

    def stop(self) -> None:
        """End the loop, then end every transfer with "server stopped" (delivered to
        its on_finished directly, in the calling thread, as the loop is gone). Idempotent."""
        if self._poller.closed:
            return
        with self._fast_lock:
            self._stopping = True
            fast_threads = list(self._fast.values())
        os.eventfd_write(self._wake_fd, 1)
        self._stop_flag[0] = 1
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        deadline = time.monotonic() + 10
        for thread in fast_threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        with self._fast_lock:
            finished, self._fast_stopped = self._fast_stopped, []
        for transfer, step in finished:
            transfer.on_finished(transfer, step)
        transfers = list(self._by_fd.values()) + list(self._incoming)
        self._incoming.clear()
        for transfer in transfers:
            self._close(transfer, _STOPPED, direct=True)
        self._poller.close()
        os.close(self._wake_fd)

    @property
    def running(self) -> bool:
        return self._thread is not None

    @property
    def active(self) -> int:
        """Transfers running (read from any thread: an estimate while they run)."""
        return len(self._by_fd) + len(self._fast)

    # --- fast-path threads ----------------------------------------------------------

    def _run_fast(self, transfer: EngineTransfer) -> None:
        transfer.started = self.clock()
        try:
            step, counters = _fast.serve(transfer, self._stop_flag)
        except Exception as exc:  # a bug costs this transfer only, with a prompt error 0
            self._note(
                "tftp: internal error on {file} for {peer}: {reason}", transfer, reason=repr(exc)
            )
            self._send(transfer, _INTERNAL, transfer.peer)
            step, counters = Step((), State.FAILED, f"internal error: {exc!r}"), {}
        transfer.bytes_sent = counters.get("bytes_sent", 0)
        transfer.bytes_acked = counters.get("bytes_acked", 0)
        transfer.retransmits = counters.get("retransmits", 0)
        transfer.send_syscalls = counters.get("syscalls", 0)
        transfer.send_dropped = counters.get("dropped", 0)
        transfer.errors_sent += counters.get("errors_sent", 0)
        if counters.get("malformed"):
            self._note(
                "tftp: dropped {count} malformed packets from {peer}",
                transfer,
                count=counters["malformed"],
            )
        if counters.get("send_failures"):
            self._note(
                "tftp: {count} sends to {peer} failed: {reason}",
                transfer,
                count=counters["send_failures"],
                reason=os.strerror(counters["last_errno"]),
            )
        transfer.closed = True
        transfer.sock.close()
        try:
            transfer.source.close()
        except Exception as exc:
            self._note("tftp: closing {file} failed: {reason}", transfer, reason=str(exc))
        with self._fast_lock:
            self._fast.pop(transfer, None)
            if self._stopping:  # stop() is joining this thread and delivers directly
                self._fast_stopped.append((transfer, step))
                return
        self._deliver(transfer.on_finished, transfer, step)

    # --- engine thread --------------------------------------------------------------

    def _run(self) -> None:
        while not self._stopping:
            try:
                self.run_once(self._wait())
            except Exception as exc:  # per-transfer errors are caught below; this is the loop
                if self._log is not None:
                    self._deliver(self._log, "tftp: engine loop error: {reason}", reason=repr(exc))
                time.sleep(0.01)  # never spin on a persistent failure

    def _wait(self) -> float:
        if not self._heap:
            return -1.0  # nothing to time out: sleep until a packet or a submission
        return max(0.0, self._heap[0][0] - self.clock())

    def run_once(self, timeout: float = 0.0) -> None:
        """One loop iteration: wait up to `timeout` s (-1: no limit) for sockets, then
        handle ready sockets, new submissions and expired deadlines."""
        try:
            events = self._poller.poll(timeout)
        except InterruptedError:
            events = []
        by_fd = self._by_fd
        for fd, _mask in events:
            transfer = by_fd.get(fd)
            if transfer is not None:
                try:
                    self._readable(transfer)
                except Exception as exc:
                    self._crashed(transfer, exc)
            elif fd == self._wake_fd:
                with contextlib.suppress(BlockingIOError):
                    os.eventfd_read(self._wake_fd)
        while self._incoming:
            transfer = self._incoming.popleft()
            try:
                self._begin(transfer)
            except Exception as exc:
                self._crashed(transfer, exc)
        if self._heap and self._heap[0][0] <= self.clock():
            self._expire()

    def _begin(self, transfer: EngineTransfer) -> None:
        if self._stopping:
            self._close(transfer, _STOPPED, direct=True)
            return
        now = self.clock()
        transfer.started = now
        self._by_fd[transfer.fd] = transfer
        self._poller.register(transfer.fd, select.EPOLLIN)
        self._apply(transfer, transfer.session.start(), now)

    def _readable(self, transfer: EngineTransfer) -> None:
        try:
            data, addr = transfer.sock.recvfrom(_RECV_SIZE)
        except BlockingIOError:
            return
        except OSError as exc:  # e.g. a queued ICMP error: the timer recovers
            self._note("tftp: receive for {file} failed: {reason}", transfer, reason=str(exc))
            return
        if addr != transfer.peer:
            # RFC 1350 section 4: a foreign TID gets error 5; the transfer carries on.
            self._send(transfer, _UNKNOWN_TID, addr)
            return
        try:
            packet = decode(data)
        except MalformedPacket as exc:
            self._note(
                "tftp: dropped malformed packet from {peer}: {reason}", transfer, reason=str(exc)
            )
            return
        self._apply(transfer, transfer.session.receive(packet), self.clock())

    def _apply(self, transfer: EngineTransfer, step: Step, now: float) -> None:
        send = step.send
        if send:
            if type(send[0]) is Data:
                try:
                    transfer.sender.send(send, transfer.peer)  # type: ignore[arg-type]
                except OSError as exc:
                    self._note("tftp: send to {peer} failed: {reason}", transfer, reason=str(exc))
            else:
                for packet in send:
                    self._send(transfer, packet, transfer.peer)
        if step.state in _TERMINAL:
            self._close(transfer, step)
        elif send:
            # Progress or retransmission: restart the wait; ignored packets leave it.
            deadline = now + transfer.session.timeout_seconds
            transfer.deadline = deadline
            if transfer.timer_at == 0.0 or deadline < transfer.timer_at:
                self._push(transfer, deadline)  # first wait, or it got shorter

    def _push(self, transfer: EngineTransfer, when: float) -> None:
        transfer.timer_at = when
        self._seq += 1
        heapq.heappush(self._heap, (when, self._seq, transfer))

    def _expire(self) -> None:
        now = self.clock()
        heap = self._heap
        while heap and heap[0][0] <= now:
            when, _, transfer = heapq.heappop(heap)
            if transfer.closed or when != transfer.timer_at:
                continue  # finished, or superseded by an earlier entry
            if now - transfer.started >= self.max_transfer_seconds:
                self._apply(
                    transfer, Step((_TOO_LONG,), State.FAILED, "transfer lifetime exceeded"), now
                )
            elif now < transfer.deadline:
                self._push(transfer, transfer.deadline)  # progress moved it: sleep again
            else:
                transfer.timer_at = 0.0
                try:
                    self._apply(transfer, transfer.session.timeout(), now)
                except Exception as exc:
                    self._crashed(transfer, exc)

    def _send(self, transfer: EngineTransfer, packet: Any, peer: Peer) -> None:
        try:
            transfer.sock.sendto(encode(packet), peer)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.ENOBUFS):
                self._note("tftp: send to {peer} failed: {reason}", transfer, reason=str(exc))
            return
        if type(packet) is Error:
            transfer.errors_sent += 1

    def _close(self, transfer: EngineTransfer, step: Step, *, direct: bool = False) -> None:
        if transfer.closed:
            return
        transfer.closed = True
        session = transfer.session
        transfer.bytes_sent = session.bytes_sent
        transfer.bytes_acked = session.bytes_acked
        transfer.retransmits = session.retransmits
        transfer.send_syscalls = transfer.sender.syscalls
        transfer.send_dropped = transfer.sender.dropped
        if self._by_fd.pop(transfer.fd, None) is not None:
            with contextlib.suppress(OSError, ValueError):
                self._poller.unregister(transfer.fd)
        transfer.sock.close()
        try:
            transfer.source.close()
        except Exception as exc:  # a dynamic source's close must not kill the loop
            self._note("tftp: closing {file} failed: {reason}", transfer, reason=str(exc))
        if direct:
            transfer.on_finished(transfer, step)
        else:
            self._deliver(transfer.on_finished, transfer, step)

    def _crashed(self, transfer: EngineTransfer, exc: Exception) -> None:
        # A bug must cost one transfer, never the loop: a prompt error 0 to the client.
        self._note(
            "tftp: internal error on {file} for {peer}: {reason}", transfer, reason=repr(exc)
        )
        if not transfer.closed:
            self._send(transfer, _INTERNAL, transfer.peer)
            self._close(transfer, Step((), State.FAILED, f"internal error: {exc!r}"))

    def _note(self, fmt: str, transfer: EngineTransfer, **fields: Any) -> None:
        if self._log is not None:
            peer = f"{transfer.peer[0]}:{transfer.peer[1]}"
            self._deliver(self._log, fmt, peer=peer, file=transfer.filename, **fields)


_TERMINAL = frozenset({State.DONE, State.FAILED, State.ABORTED})
