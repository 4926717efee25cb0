"""The data phase of a plain file transfer in C, one thread per transfer, GIL released.

Lock-step TFTP (windowsize 1: PXE ROMs, pxelinux, grub) is bound by the server's CPU per
ACK round trip. In CPython a block costs 16-22 us (epoll, recvfrom, decode, the session
step, sendmsg); the C servers spend 9-13 us. `_fastpath.c` runs the same protocol as
session.py + engine.py (they stay the reference, and the tests hold the two to the same
packets) in a C loop with the GIL released: one blocking recvfrom (with a receive
timeout instead of a poll) and one sendmsg per lock-step block, 64 KiB pread
read-ahead, UDP GSO for windows. Each transfer gets its own thread (as
atftpd does), so lock-step clients use every core of the machine, not one loop's core.

Eligible: an octet-mode transfer of a regular file (`EngineTransfer.file_fd` set by the
server). Dynamic files (rendered per node, in memory) and netascii stay on the Python
engine loop. If the extension is not built, `available()` is False, `UNAVAILABLE` says
why, and every transfer runs on the Python loop (the server logs this once at start).
"""

from __future__ import annotations

import contextlib
import socket
from typing import TYPE_CHECKING, Any

from netboot.tftp.codec import OptionAck, encode
from netboot.tftp.session import State, Step

if TYPE_CHECKING:
    from netboot.tftp.engine import EngineTransfer

try:
    from netboot.tftp import _fastpath
except ImportError as exc:  # not built (e.g. a source tree without `pip install`)
    _fastpath = None
    UNAVAILABLE: str | None = f"C extension netboot.tftp._fastpath not importable: {exc}"
else:
    UNAVAILABLE = None

__all__ = ["UNAVAILABLE", "available", "serve"]

_STATES = {"done": State.DONE, "failed": State.FAILED, "aborted": State.ABORTED}


def available() -> bool:
    return _fastpath is not None


def reuse_port(sock: socket.socket) -> None:
    """Mark a transfer socket, before its bind, for `_connect` (the server does this for
    transfers the fast path will run)."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)


def _connect(transfer: EngineTransfer) -> socket.socket | None:
    """Connect the transfer socket to the client, with a stranger socket beside it.

    A connected socket saves a route lookup per send and per receive (~3% of a lock-step
    round trip); the stranger socket (same address and port, SO_REUSEPORT, unconnected)
    receives what the connected one no longer does, datagrams from other ports, so the
    C loop can still answer them with error 5 (RFC 1350 section 4). Only for sockets
    bound with `reuse_port`; if anything fails the transfer runs unconnected, as the
    Python loop does. Linux gives a connected socket its 4-tuple's datagrams even in a
    SO_REUSEPORT group (since 5.3).
    """
    sock = transfer.sock
    if not sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT):
        return None
    stranger = socket.socket(sock.family, socket.SOCK_DGRAM)
    try:
        stranger.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        stranger.bind(sock.getsockname())
        stranger.setblocking(False)
        sock.connect(transfer.peer)
    except OSError:
        stranger.close()
        return None
    return stranger


def connect_for_python_loop(transfer: EngineTransfer) -> None:
    """A socket bound for the fast path that the Python loop runs instead (no thread
    could be started): connect it, so that no other transfer's stranger socket that
    shares its port through SO_REUSEPORT can receive this client's datagrams. Other
    ports then get ICMP port unreachable from the kernel instead of error 5."""
    sock = transfer.sock
    if sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT):
        with contextlib.suppress(OSError):
            sock.connect(transfer.peer)


def serve(transfer: EngineTransfer, stop: bytearray) -> tuple[Step, dict[str, Any]]:
    """Run `transfer` to its end on the calling thread (see module docstring).

    `stop`: a one-byte flag another thread sets to end the transfer ("server stopped").
    Returns the final Step (the packets are already sent) and the C loop's counters:
    bytes_sent, bytes_acked, retransmits, syscalls, dropped, errors_sent, malformed,
    send_failures, last_errno. Raises RuntimeError if the extension is missing.
    """
    if _fastpath is None:
        raise RuntimeError(UNAVAILABLE)
    session = transfer.session
    options = session.options
    oack = encode(OptionAck(dict(options.oack))) if options.oack else b""
    family = transfer.sock.family
    stranger = _connect(transfer)
    try:
        state, reason, client_error, counters = _fastpath.serve(
            transfer.fd,
            transfer.file_fd,
            int(family),
            transfer.peer,
            stop,
            options.blksize,
            options.windowsize,
            session.timeouts,
            transfer.max_seconds,
            oack,
            transfer.sender.use_gso,
            stranger is not None,
            stranger.fileno() if stranger is not None else -1,
        )
    finally:
        if stranger is not None:
            stranger.close()
    if client_error is not None:
        # The client's ERROR after its opcode: code, message, NUL (codec's decoding).
        code = int.from_bytes(client_error[:2], "big")
        message = client_error[2:-1].decode("utf-8", "surrogateescape")
        reason = f"client error {code}: {message}"
    return Step((), _STATES[state], reason), counters
