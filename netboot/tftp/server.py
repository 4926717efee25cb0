"""Twisted adapter for the read-only TFTP server: sockets, timers, logs and counters.

`TFTPServerProtocol` listens on the well-known port (RFC 1350 section 4: requests go to
port 69). For each RRQ it resolves and opens the file, negotiates the options, opens a
fresh ephemeral UDP socket on the same address - the server's transfer ID - and hands
socket, file and `ReadSession` (session.py, which holds all protocol decisions) to the
`TransferEngine` (engine.py): the data phase runs on the engine's own epoll loop and
thread, not through the reactor per block. The engine hands each finished transfer back
through `reactor.callFromThread`; counters and log lines are written here, in the
reactor thread, when a transfer ends. Nothing here imports the global reactor except
`main()`.

Typed failures are mapped to TFTP errors here and only here (`_ERRORS`): paths.FileNotFound
-> 1, paths.AccessViolation -> 2, WRQ -> 2 "read-only server", unsupported mode -> 4,
session cap reached -> 0 "server busy", anything unexpected -> 0 "internal error".

Dynamic files: `open_file(name, peer) -> BinaryIO | None` is consulted before the
filesystem. `name` is the normalised root-relative name (paths.normalise: backslashes
to "/", no leading "/", never ".." or NUL) and `peer` the client's (host, port). Return
a binary file object (seekable, or at least readable from the start in order: the
session seeks to block offsets) to serve it, or None to fall through to `root`. The
server closes the object when the transfer ends. Raise paths.FileNotFound or
AccessViolation to refuse with the matching TFTP error.

Mode: "octet" is served byte for byte; "netascii" is translated on the fly (RFC 764
line ends, netascii.py) and does not answer tsize.

Limits: blksize is clamped to the MTU of the route to the client (udp.path_mtu), so a
DATA datagram is never IP-fragmented; at most `max_sessions` transfers run at once
(the next request gets error 0 "server busy"); a transfer that has not finished after
`max_transfer_seconds` is ended with error 0, so a client that trickles ACKs cannot hold
a slot forever. DATA windows go out through udp.DataSender (with UDP GSO one sendmsg
per window); files are read ahead 64 KiB per pread (session.ReadAhead).
"""

from __future__ import annotations

import argparse
import socket
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger

from netboot.tftp import fastpath as _fastpath
from netboot.tftp.codec import (
    Error,
    ErrorCode,
    MalformedPacket,
    Packet,
    ReadRequest,
    WriteRequest,
    decode,
    encode,
)
from netboot.tftp.engine import EngineTransfer, TransferEngine
from netboot.tftp.netascii import NetasciiReader
from netboot.tftp.paths import AccessViolation, FileNotFound, PathError, normalise, resolve
from netboot.tftp.session import (
    DEFAULT_MAX_BLKSIZE,
    DEFAULT_MAX_WINDOWSIZE,
    DEFAULT_TIMEOUTS,
    ReadAhead,
    ReadSession,
    State,
    Step,
    negotiate,
    reader_for,
    source_size,
)
from netboot.tftp.udp import max_blksize_for_mtu, path_mtu

__all__ = ["FileProvider", "TFTPServerProtocol", "TFTPStats", "listen_tftp", "main"]

Peer = tuple[Any, ...]  # (host, port) for IPv4; Twisted adds flow info and scope for IPv6
FileProvider = Callable[[str, Peer], BinaryIO | None]

SUPPORTED_MODES = frozenset({"octet", "netascii"})

# The one boundary where typed failures become TFTP errors (RFC 1350 appendix).
_ERRORS: dict[type[Exception], Error] = {
    FileNotFound: Error(ErrorCode.FILE_NOT_FOUND, "file not found"),
    AccessViolation: Error(ErrorCode.ACCESS_VIOLATION, "access violation"),
}
_READ_ONLY = Error(ErrorCode.ACCESS_VIOLATION, "read-only server")
_BAD_MODE = Error(ErrorCode.ILLEGAL_OPERATION, "unsupported mode")
_BUSY = Error(ErrorCode.NOT_DEFINED, "server busy: too many transfers, retry later")
_INTERNAL = Error(ErrorCode.NOT_DEFINED, "internal error")


def _fmt(peer: Peer) -> str:
    return f"{peer[0]}:{peer[1]}"


@dataclass(slots=True)
class TFTPStats:
    """Counters for metrics export. bytes_sent counts DATA payload incl. retransmissions.

    Per-transfer figures (bytes, send calls, drops, error 5s) are added when the
    transfer ends, in the reactor thread: a running transfer is not counted yet.
    """

    transfers_ok: int = 0
    transfers_failed: int = 0
    transfers_aborted: int = 0  # client sent ERROR, e.g. a PXE ROM's tsize probe
    bytes_sent: int = 0
    errors_sent: int = 0
    refused_busy: int = 0  # requests turned away by the session cap
    send_syscalls: int = 0  # sendmsg calls for DATA (fewer than packets with UDP GSO)
    send_dropped: int = 0  # windows cut short by a full socket buffer
    fastpath_transfers: int = 0  # of those finished, how many ran in C (fastpath.py)


class TFTPServerProtocol(DatagramProtocol):
    """Accepts requests on the listening port; runs one `_Transfer` per RRQ.

    `reactor` must provide IReactorUDP (transfer ports) and IReactorTime (timers, clock).
    """

    log = Logger()

    def __init__(
        self,
        root: Path,
        reactor: Any,
        bind_address: str,
        *,
        max_sessions: int = 64,
        max_blksize: int = DEFAULT_MAX_BLKSIZE,
        max_windowsize: int = DEFAULT_MAX_WINDOWSIZE,
        timeouts: Sequence[float] = DEFAULT_TIMEOUTS,
        open_file: FileProvider | None = None,
        max_transfer_seconds: float = 1800.0,
        clamp_to_mtu: bool = True,
        use_gso: bool = True,
        fastpath: bool = True,
        engine: TransferEngine | None = None,
    ) -> None:
        if max_sessions < 1:
            raise ValueError("max_sessions must be at least 1")
        # Validate the limits against the RFC ranges once, at construction.
        negotiate({}, file_size=None, max_blksize=max_blksize, max_windowsize=max_windowsize)
        self.root = Path(root)
        self.reactor = reactor
        self.bind_address = bind_address
        self.max_sessions = max_sessions
        self.max_blksize = max_blksize
        self.max_windowsize = max_windowsize
        self.timeouts = tuple(timeouts)
        self.open_file = open_file
        self.max_transfer_seconds = max_transfer_seconds
        self.clamp_to_mtu = clamp_to_mtu
        self.use_gso = use_gso
        self.stats = TFTPStats()
        self._transfers: dict[Peer, EngineTransfer] = {}
        # The data phase runs on the engine's own loop (engine.py); an injected engine
        # (tests: fake clock, no thread) is driven by its owner.
        self._own_engine = engine is None
        self.engine = engine or TransferEngine(
            deliver=reactor.callFromThread,
            log=self.log.info,
            max_transfer_seconds=max_transfer_seconds,
            fastpath=fastpath,
        )
        if fastpath and not self.engine.fastpath and self._own_engine:
            self.log.warn(
                "tftp: serving files from the Python loop: {why}", why=_fastpath.UNAVAILABLE
            )

    # --- requests on the well-known port ----------------------------------------------

    def datagramReceived(self, data: bytes, addr: Peer) -> None:
        try:
            packet = decode(data)
        except MalformedPacket as exc:
            self.log.info(
                "tftp: dropped malformed request from {peer}: {reason}",
                peer=_fmt(addr),
                file=None,
                reason=str(exc),
            )
            return
        if isinstance(packet, ReadRequest):
            self._on_read_request(packet, addr)
        elif isinstance(packet, WriteRequest):
            self._refuse(addr, packet.filename, _READ_ONLY, "write request")
        else:
            self.log.debug(
                "tftp: dropped {kind} sent to the request port by {peer}",
                kind=type(packet).__name__,
                peer=_fmt(addr),
                file=None,
                reason="not a request",
            )

    def _on_read_request(self, request: ReadRequest, peer: Peer) -> None:
        if peer in self._transfers:
            # The client retransmitted its RRQ; the running session's timer covers it.
            return
        if len(self._transfers) >= self.max_sessions:
            self.stats.refused_busy += 1
            self._refuse(peer, request.filename, _BUSY, f"session cap {self.max_sessions} reached")
            return
        if request.mode not in SUPPORTED_MODES:
            self._refuse(peer, request.filename, _BAD_MODE, f"mode {request.mode!r}")
            return
        try:
            source = self._open(request.filename, peer)
        except PathError as exc:
            error = next((e for cls, e in _ERRORS.items() if isinstance(exc, cls)), _INTERNAL)
            self._refuse(peer, request.filename, error, exc.reason)
            return
        except Exception:
            self.log.failure(
                "tftp: opening {file} for {peer}", file=request.filename, peer=_fmt(peer)
            )
            self._refuse(peer, request.filename, _INTERNAL, "open failed")
            return
        netascii = request.mode == "netascii"
        options = negotiate(
            request.options,
            file_size=None if netascii else source_size(source),
            max_blksize=self._max_blksize_for(peer),
            max_windowsize=self.max_windowsize,
        )
        reader = reader_for(source)
        # A real file sent as-is can run on the C fast path (fastpath.py).
        file_fd = reader.fd if isinstance(reader, ReadAhead) and not netascii else None
        if netascii:
            reader = NetasciiReader(reader)
        session = ReadSession(reader, options, timeouts=self.timeouts)
        try:
            # The fast path connects the socket, with an SO_REUSEPORT twin for strangers.
            sock = self._transfer_socket(reuse_port=file_fd is not None and self.engine.fastpath)
        except OSError as exc:
            source.close()
            self._refuse(peer, request.filename, _INTERNAL, f"no transfer port: {exc}")
            return
        transfer = EngineTransfer(
            sock,
            peer,
            session,
            source,
            request.filename,
            self._engine_finished,
            use_gso=self.use_gso,
            file_fd=file_fd,
        )
        self._transfers[peer] = transfer
        if self._own_engine and not self.engine.running:
            self.engine.start()  # on the first transfer: no thread until TFTP is used
        self.engine.submit(transfer)

    def _transfer_socket(self, *, reuse_port: bool = False) -> socket.socket:
        """A fresh UDP port on the listening address: the server's TID for one transfer."""
        family = socket.AF_INET6 if ":" in self.bind_address else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            if reuse_port:
                _fastpath.reuse_port(sock)
            sock.bind((self.bind_address, 0))
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        return sock

    def _max_blksize_for(self, peer: Peer) -> int:
        """The configured maximum, lowered to what one datagram carries on the route."""
        if not self.clamp_to_mtu:
            return self.max_blksize
        host = str(peer[0])
        mtu = path_mtu(host)
        if mtu is None:
            return self.max_blksize
        return min(self.max_blksize, max_blksize_for_mtu(mtu, ipv6=":" in host))

    def _open(self, requested: str, peer: Peer) -> BinaryIO:
        name = normalise(requested)
        if self.open_file is not None:
            source = self.open_file(name, peer)
            if source is not None:
                return source
        path = resolve(self.root, requested)
        try:
            return path.open("rb")
        except PermissionError:
            raise AccessViolation(requested, "permission denied") from None
        except FileNotFoundError:
            raise FileNotFound(requested, "vanished before open") from None

    def _refuse(self, peer: Peer, filename: str, error: Error, reason: str) -> None:
        self.log.info(
            "tftp: refused {file} to {peer}: {reason}",
            peer=_fmt(peer),
            file=filename,
            reason=reason,
            code=error.code,
        )
        self.send(self.transport, error, peer)

    # --- transfers (run by the engine) ------------------------------------------------

    def send(self, transport: Any, packet: Packet, peer: Peer) -> None:
        """Write one packet and count it; a socket error is logged, not raised."""
        try:
            transport.write(encode(packet), peer)
        except OSError as exc:
            self.log.warn("tftp: send to {peer} failed: {reason}", peer=_fmt(peer), reason=exc)
            return
        if isinstance(packet, Error):
            self.stats.errors_sent += 1

    def _engine_finished(self, transfer: EngineTransfer, step: Step) -> None:
        # Runs in the reactor thread (delivered by the engine): counters and the log line.
        self._transfers.pop(transfer.peer, None)
        options = transfer.session.options
        stats = self.stats
        stats.bytes_sent += transfer.bytes_sent
        stats.errors_sent += transfer.errors_sent
        stats.send_syscalls += transfer.send_syscalls
        stats.send_dropped += transfer.send_dropped
        stats.fastpath_transfers += transfer.fast
        fields = dict(
            peer=_fmt(transfer.peer),
            file=transfer.filename,
            bytes=transfer.bytes_acked,
            blksize=options.blksize,
            windowsize=options.windowsize,
            seconds=self.engine.clock() - transfer.started,
            retransmits=transfer.retransmits,
            reason=step.reason,
            loop="C" if transfer.fast else "python",
        )
        if step.state is State.DONE:
            stats.transfers_ok += 1
            self.log.info(
                "tftp: sent {file} to {peer}: {bytes} bytes, blksize {blksize}, "
                "{seconds:.3f} s, {retransmits} timeouts, {loop} loop",
                **fields,
            )
        elif step.state is State.ABORTED:
            stats.transfers_aborted += 1
            self.log.info("tftp: {peer} aborted {file}: {reason}", **fields)
        else:
            stats.transfers_failed += 1
            self.log.warn("tftp: sending {file} to {peer} failed: {reason}", **fields)

    def stopProtocol(self) -> None:  # noqa: N802 (twisted API name)
        if self._own_engine:
            self.engine.stop()  # ends the running transfers: "server stopped"

    @property
    def active_transfers(self) -> int:
        return len(self._transfers)


def listen_tftp(
    reactor: Any, root: Path, address: str, port: int = 69, *, reuse_port: bool = False, **opts: Any
) -> IListeningPort:
    """Listen for TFTP requests on address:port; `opts` go to TFTPServerProtocol.

    `reuse_port` binds with SO_REUSEPORT so worker processes (workers.py) can share the
    port: the kernel spreads requests over them by the client's address and port.
    The protocol is reachable as the returned port's `.protocol` (for its `stats`).
    """
    protocol = TFTPServerProtocol(Path(root), reactor, address, **opts)
    if not reuse_port:
        return reactor.listenUDP(port, protocol, interface=address)
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((address, port))
        sock.setblocking(False)
        return reactor.adoptDatagramPort(sock.fileno(), family, protocol)
    except OSError as exc:
        raise CannotListenError(address, port, exc) from None
    finally:
        sock.close()  # adoptDatagramPort dup()s the descriptor


def main(argv: Sequence[str] | None = None) -> None:
    """Stand-alone server (tests, benchmarks): prints 'listening PORT' once bound."""
    parser = argparse.ArgumentParser(prog="python -m netboot.tftp.server")
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--address", required=True)
    parser.add_argument("--port", type=int, default=69)
    parser.add_argument("--max-sessions", type=int, default=64)
    parser.add_argument("--max-blksize", type=int, default=DEFAULT_MAX_BLKSIZE)
    parser.add_argument("--max-windowsize", type=int, default=DEFAULT_MAX_WINDOWSIZE)
    parser.add_argument("--no-gso", action="store_true", help="one sendmsg per DATA packet")
    parser.add_argument(
        "--no-fastpath", action="store_true", help="every transfer on the Python loop"
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="processes sharing the port (SO_REUSEPORT)"
    )
    args = parser.parse_args(argv)
    if args.workers > 1 and args.port == 0:
        parser.error("--workers needs a fixed --port")

    from twisted.internet import reactor
    from twisted.logger import globalLogBeginner, textFileLogObserver

    from netboot.tftp.workers import WorkerPool, worker_argv

    globalLogBeginner.beginLoggingTo([textFileLogObserver(sys.stderr)], redirectStandardIO=False)
    opts = dict(
        max_sessions=args.max_sessions,
        max_blksize=args.max_blksize,
        max_windowsize=args.max_windowsize,
        use_gso=not args.no_gso,
        fastpath=not args.no_fastpath,
    )
    port = listen_tftp(
        reactor, args.root, args.address, args.port, reuse_port=args.workers > 1, **opts
    )
    if args.workers > 1:
        pool = WorkerPool(worker_argv(args.root, args.address, args.port, **opts), args.workers - 1)
        pool.startService()
        reactor.addSystemEventTrigger("before", "shutdown", pool.stopService)
    print(f"listening {port.getHost().port}", flush=True)
    reactor.run()


if __name__ == "__main__":
    main()
