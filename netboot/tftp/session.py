"""One read transfer as a pure state machine: fed packets and timer ticks, returns packets.

No sockets and no clock. The adapter (server.py) calls `start()` once, `receive(packet)`
for every datagram from the client's TID, and `timeout()` whenever `timeout_seconds`
elapse without the session making progress; each returns a `Step` naming the packets
to send and the state afterwards.

Protocol behaviour lives here:

* RFC 2347 option negotiation (`negotiate`): blksize (RFC 2348), tsize and timeout
  (RFC 2349), windowsize (RFC 7440); unknown or invalid options are left out of the OACK,
  which is how RFC 2347 section "Negotiation Protocol" says a server declines them.
* Lock-step DATA/ACK (RFC 1350 section 6) generalised to RFC 7440 windows; a window of
  1 is plain RFC 1350.
* Block numbers are 16 bits on the wire and wrap from 65535 to 0 (the convention of
  tftp-hpa, curl, iPXE and EDK2), tracked internally as unbounded integers.
* Duplicate or stale ACKs are ignored, never answered with a retransmission: RFC 1350
  section 6 ("Sorcerer's Apprentice Syndrome", fixed by RFC 1123 section 4.2.3.1).
  Only timer expiry retransmits.
* The final block is shorter than blksize; a file whose size is an exact multiple of
  blksize (or is empty) ends with a zero-length DATA (RFC 1350 section 6).
* The file is read one window at a time through a `BlockReader(offset, length)`: one
  call per window, sliced into blocks without copying; a real file is read ahead in
  64 KiB pread(2)s (`ReadAhead`), so most windows cost no system call at all.
"""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import BinaryIO

from netboot.tftp.codec import Ack, Data, Error, ErrorCode, OptionAck, Packet

__all__ = [
    "DEFAULT_BLKSIZE",
    "DEFAULT_MAX_BLKSIZE",
    "DEFAULT_MAX_WINDOWSIZE",
    "DEFAULT_TIMEOUTS",
    "BlockReader",
    "ReadAhead",
    "ReadSession",
    "State",
    "Step",
    "TransferOptions",
    "negotiate",
    "reader_for",
    "source_size",
]

DEFAULT_BLKSIZE = 512  # RFC 1350
DEFAULT_MAX_BLKSIZE = 1468  # 1468 + 4 (TFTP) + 8 (UDP) + 20 (IPv4) = 1500, one Ethernet MTU
DEFAULT_MAX_WINDOWSIZE = 16
DEFAULT_TIMEOUTS = (1.0, 2.0, 4.0, 8.0, 8.0)  # wait before each retransmit, then give up

BLKSIZE_RANGE = (8, 65464)  # RFC 2348
TIMEOUT_RANGE = (1, 255)  # RFC 2349
WINDOWSIZE_RANGE = (1, 65535)  # RFC 7440

BlockReader = Callable[[int, int], bytes | memoryview]
"""(offset, length) -> up to `length` bytes; fewer only at end of file."""


@dataclass(frozen=True, slots=True)
class TransferOptions:
    """The negotiated parameters of one transfer, plus the OACK that announces them."""

    blksize: int = DEFAULT_BLKSIZE
    windowsize: int = 1
    timeout: int | None = None  # RFC 2349 seconds; None -> the server's backoff schedule
    tsize: int | None = None
    oack: dict[str, str] = field(default_factory=dict)  # empty -> no OACK, start with DATA


def _integer(value: str, low: int, high: int | None = None) -> int | None:
    """Parse a decimal option value; None if it is not a plain integer >= low (<= high)."""
    if not (value.isascii() and value.isdigit()):
        return None
    number = int(value)
    if number < low or (high is not None and number > high):
        return None
    return number


def negotiate(
    requested: Mapping[str, str],
    *,
    file_size: int | None,
    max_blksize: int = DEFAULT_MAX_BLKSIZE,
    max_windowsize: int = DEFAULT_MAX_WINDOWSIZE,
) -> TransferOptions:
    """Decide the RFC 2347 reply to a request's options (keys already lowercased)."""
    if not BLKSIZE_RANGE[0] <= max_blksize <= BLKSIZE_RANGE[1]:
        raise ValueError(f"max_blksize {max_blksize} outside {BLKSIZE_RANGE}")
    if not WINDOWSIZE_RANGE[0] <= max_windowsize <= WINDOWSIZE_RANGE[1]:
        raise ValueError(f"max_windowsize {max_windowsize} outside {WINDOWSIZE_RANGE}")
    blksize, windowsize, timeout, tsize = DEFAULT_BLKSIZE, 1, None, None
    oack: dict[str, str] = {}
    for name, value in requested.items():  # OACK keeps the client's order
        if name == "blksize":
            # RFC 2348: values below 8 are invalid (ignored); the server may answer
            # with a smaller value than asked, which is how larger ones are clamped.
            asked = _integer(value, BLKSIZE_RANGE[0])
            if asked is not None:
                blksize = min(asked, max_blksize)
                oack[name] = str(blksize)
        elif name == "tsize":
            # RFC 2349: a read request carries tsize 0; the OACK carries the real size.
            if _integer(value, 0) is not None and file_size is not None:
                tsize = file_size
                oack[name] = str(tsize)
        elif name == "timeout":
            # RFC 2349: 1..255 seconds, and the server must echo the value unchanged.
            timeout = _integer(value, *TIMEOUT_RANGE)
            if timeout is not None:
                oack[name] = str(timeout)
        elif name == "windowsize":
            # RFC 7440 section 3: the server may answer with a smaller window.
            asked = _integer(value, *WINDOWSIZE_RANGE)
            if asked is not None:
                windowsize = min(asked, max_windowsize)
                oack[name] = str(windowsize)
        # Anything else (utimeout, multicast, rollover, ...) is silently declined.
    return TransferOptions(blksize, windowsize, timeout, tsize, oack)


READ_AHEAD = 64 * 1024  # octets per pread(2) of a real file: 128 blocks of 512


class ReadAhead:
    """BlockReader over a file descriptor: one pread(2) per `chunk` octets, not per read.

    A lock-step transfer asks for one block at a time; serving those from a 64 KiB
    buffer takes the read system call off most ACK round trips. Reads are zero-copy
    memoryview slices of the buffer. A read outside it (the next chunk, or a resend
    reaching back before it) preads again from that offset; no shared file offset.
    """

    __slots__ = ("fd", "_chunk", "_pread", "_base", "_buffer", "_at_eof")

    def __init__(
        self, fd: int, chunk: int = READ_AHEAD, pread: Callable[[int, int, int], bytes] = os.pread
    ) -> None:
        self.fd = fd
        self._pread = pread
        self._chunk = chunk
        self._base = 0
        self._buffer = memoryview(b"")
        self._at_eof = False  # the buffer ends where the file ends

    def __call__(self, offset: int, length: int) -> memoryview:
        start = offset - self._base
        buffer = self._buffer
        if start >= 0 and (start + length <= len(buffer) or self._at_eof):
            return buffer[start : start + length]
        want = max(length, self._chunk)
        data = self._pread(self.fd, want, offset)
        self._base, self._buffer, self._at_eof = offset, memoryview(data), len(data) < want
        return self._buffer[:length]


def reader_for(source: BinaryIO | BlockReader) -> BlockReader:
    """Adapt a file object (or pass through a reader callable) to a BlockReader.

    A real file is read with os.pread through `ReadAhead`: no shared file offset, one
    system call per 64 KiB. Anything else (BytesIO, a pipe-like object) falls back to
    seek + read.
    """
    if callable(source):
        return source
    try:
        fd = source.fileno()
        os.pread(fd, 0, 0)
    except (OSError, AttributeError, io.UnsupportedOperation):
        pass
    else:
        return ReadAhead(fd)

    def read(offset: int, length: int) -> bytes:
        source.seek(offset)
        return source.read(length)

    return read


def source_size(source: BinaryIO) -> int | None:
    """Size in bytes of a regular or seekable file, or None when it cannot be known."""
    try:
        st = os.fstat(source.fileno())
        if stat.S_ISREG(st.st_mode):
            return st.st_size
    except (OSError, AttributeError, io.UnsupportedOperation):
        pass
    try:
        if source.seekable():
            position = source.tell()
            size = source.seek(0, os.SEEK_END)
            source.seek(position)
            return size
    except (OSError, AttributeError, io.UnsupportedOperation):
        pass
    return None


class State(Enum):
    NEW = "new"
    OACK_SENT = "oack-sent"  # waiting for ACK 0 (RFC 2347)
    SENDING = "sending"  # waiting for the ACK that ends the current window
    DONE = "done"  # the last block was acknowledged
    FAILED = "failed"  # gave up, or the client broke the protocol
    ABORTED = "aborted"  # the client sent ERROR (PXE ROMs do this after a tsize probe)


TERMINAL = frozenset({State.DONE, State.FAILED, State.ABORTED})


@dataclass(frozen=True, slots=True)
class Step:
    """The result of feeding the session: what to send, and where it now stands."""

    send: tuple[Packet, ...]
    state: State
    reason: str = ""

    @property
    def finished(self) -> bool:
        return self.state in TERMINAL


class ReadSession:
    """State machine for one RRQ. Absolute block numbers start at 1; 0 means 'none yet'."""

    def __init__(
        self,
        source: BinaryIO | BlockReader,
        options: TransferOptions,
        *,
        timeouts: Sequence[float] = DEFAULT_TIMEOUTS,
    ) -> None:
        if not timeouts:
            raise ValueError("timeouts must name at least one wait")
        self.options = options
        self.state = State.NEW
        self.reason = ""
        self.bytes_sent = 0  # DATA payload octets put on the wire, retransmissions included
        self.retransmits = 0  # timer expiries that resent something (or gave up)
        self._read = reader_for(source)
        self._timeouts = (
            tuple(float(options.timeout) for _ in timeouts)
            if options.timeout is not None
            else tuple(timeouts)
        )
        self._tries = 0  # consecutive expiries without progress
        self._acked = 0  # highest acknowledged block
        self._sent_end = 0  # highest block sent in the current window
        self._last: int | None = None  # the short (final) block, once it has been read
        self._last_len = 0

    # --- inputs -----------------------------------------------------------------------

    def start(self) -> Step:
        """First transmission: OACK if any option was accepted, else the first window."""
        if self.state is not State.NEW:
            raise RuntimeError(f"start() in state {self.state.value}")
        if self.options.oack:
            self.state = State.OACK_SENT
            return self._step((OptionAck(dict(self.options.oack)),))
        self.state = State.SENDING
        return self._send_window()

    def receive(self, packet: Packet) -> Step:
        """Feed one decoded packet that arrived from the client's transfer ID."""
        if type(packet) is Ack and self.state is State.SENDING:
            return self._on_ack(packet.block)  # the common case, first
        if self.state is State.NEW:
            raise RuntimeError("receive() before start()")
        if self.state in TERMINAL:
            return self._step(())
        match packet:
            case Error(code, message):
                return self._finish(State.ABORTED, f"client error {code}: {message}")
            case Ack(block) if self.state is State.OACK_SENT:
                if block != 0:
                    return self._step(())  # RFC 2347: only ACK 0 answers an OACK
                self.state = State.SENDING
                self._tries = 0
                return self._send_window()
            case Ack(block):
                return self._on_ack(block)
        kind = type(packet).__name__
        return self._finish(
            State.FAILED,
            f"unexpected {kind} from client",
            Error(ErrorCode.ILLEGAL_OPERATION, f"unexpected {kind}"),
        )

    def timeout(self) -> Step:
        """The retransmission timer expired: resend, or give up after the last wait."""
        if self.state in TERMINAL or self.state is State.NEW:
            return self._step(())
        self._tries += 1
        self.retransmits += 1
        if self._tries >= len(self._timeouts):
            return self._finish(
                State.FAILED,
                f"no ACK after {self._tries} timeouts",
                Error(ErrorCode.NOT_DEFINED, "timed out"),
            )
        if self.state is State.OACK_SENT:
            return self._step((OptionAck(dict(self.options.oack)),))
        return self._send_window()  # RFC 7440 section 4: resend the whole window

    # --- outputs ----------------------------------------------------------------------

    @property
    def timeouts(self) -> tuple[float, ...]:
        """The waits before each retransmission; after the last one the session gives up."""
        return self._timeouts

    @property
    def timeout_seconds(self) -> float:
        """How long the adapter should wait for progress before calling `timeout()`."""
        return self._timeouts[min(self._tries, len(self._timeouts) - 1)]

    @property
    def bytes_acked(self) -> int:
        """File octets the client has acknowledged."""
        if self._acked == 0:
            return 0
        if self._acked == self._last:
            return (self._acked - 1) * self.options.blksize + self._last_len
        return self._acked * self.options.blksize

    # --- internals --------------------------------------------------------------------

    def _on_ack(self, wire_block: int) -> Step:
        # Map the 16-bit number onto the one outstanding block it can mean; anything
        # else is a duplicate or stale ACK and is ignored (Sorcerer's Apprentice).
        block = self._acked + 1 + ((wire_block - self._acked - 1) & 0xFFFF)
        if block > self._sent_end:
            return self._step(())
        self._acked = block
        self._tries = 0
        if block == self._last:
            return self._finish(State.DONE, "complete")
        # RFC 7440 section 4: an ACK inside the window restarts the window after it.
        return self._send_window()

    def _send_window(self) -> Step:
        blksize = self.options.blksize
        acked = self._acked
        count = self.options.windowsize
        if self._last is not None and self._last - acked < count:
            count = self._last - acked
        try:
            # One read per window; blocks are zero-copy slices of it.
            chunk = self._read(acked * blksize, count * blksize)
        except OSError as exc:
            return self._finish(
                State.FAILED,
                f"read error at block {acked + 1}: {exc}",
                Error(ErrorCode.NOT_DEFINED, "read error"),
            )
        size = len(chunk)
        if size > count * blksize:
            raise RuntimeError(f"reader returned {size} > {count * blksize} bytes")
        self.bytes_sent += size
        if count == 1:  # lock-step (RFC 1350): the common case, without slicing
            block = acked + 1
            self._sent_end = block
            if size < blksize:
                self._last, self._last_len = block, size
            return Step((Data(block & 0xFFFF, chunk),), self.state, self.reason)
        view = memoryview(chunk)
        packets: list[Packet] = []
        for index in range(count):
            block = acked + 1 + index
            payload = view[index * blksize : (index + 1) * blksize]
            packets.append(Data(block & 0xFFFF, payload))  # type: ignore[arg-type]
            self._sent_end = block
            if len(payload) < blksize:
                self._last, self._last_len = block, len(payload)
                break
        return self._step(tuple(packets))

    def _finish(self, state: State, reason: str, *send: Packet) -> Step:
        self.state = state
        self.reason = reason
        return self._step(send)

    def _step(self, send: tuple[Packet, ...]) -> Step:
        return Step(send, self.state, self.reason)
