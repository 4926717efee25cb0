"""The C data phase (tftp/_fastpath.c) against the Python engine as its oracle.

Each scenario is a scripted client on a loopback socket. It runs three times: on the
Python epoll loop (engine.py + session.py, the reference), on the C fast path with an
unconnected socket, and on the C fast path with the socket connected to the client and
its SO_REUSEPORT twin for strangers (what the server does); all must put the same
packets on the wire, end in the same state with the same reason,
and report the same counters. Each scenario also asserts its own facts (content,
states), so an error shared by both sides still fails.
"""

from __future__ import annotations

import os
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netboot.tftp import fastpath
from netboot.tftp.codec import (
    Ack,
    Data,
    Error,
    OptionAck,
    Packet,
    decode,
    encode,
)
from netboot.tftp.engine import EngineTransfer, TransferEngine
from netboot.tftp.session import ReadAhead, ReadSession, State, Step, negotiate

WAIT = 5.0  # seconds a client waits for a packet it expects


def test_the_extension_is_built() -> None:
    # CI installs with `pip install -e .`, which compiles it: fail loudly if it did not.
    assert fastpath.available(), fastpath.UNAVAILABLE


class Client:
    """The scripted client's view: receive decoded packets, send packets."""

    def __init__(self, family: socket.AddressFamily, host: str) -> None:
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.server: tuple | None = None
        self.trace: list[Packet] = []

    def recv(self, timeout: float = WAIT) -> Packet:
        self.sock.settimeout(timeout)
        data, addr = self.sock.recvfrom(70000)
        self.server = addr
        packet = decode(data)
        self.trace.append(packet)
        return packet

    def quiet(self, seconds: float) -> bool:
        """True if nothing arrives within `seconds` (what arrives is traced)."""
        try:
            self.recv(seconds)
        except TimeoutError:
            return True
        return False

    def send(self, packet: Packet | bytes) -> None:
        assert self.server is not None
        self.sock.sendto(packet if isinstance(packet, bytes) else encode(packet), self.server)


@dataclass
class Outcome:
    trace: list[Packet]
    state: State
    reason: str
    counters: dict[str, int]
    logged: list[str] = field(default_factory=list)
    extra: object = None


Script = Callable[[Client, EngineTransfer, TransferEngine], object]


def run(
    fast: bool,
    tmp_path: Path,
    content: bytes,
    script: Script,
    *,
    requested: dict[str, str] | None = None,
    blksize: int = 512,
    timeouts: tuple[float, ...] = (5.0, 5.0, 5.0),
    max_seconds: float = 60.0,
    use_gso: bool = True,
    family: socket.AddressFamily = socket.AF_INET,
    read_from: Path | None = None,
    connect: bool = False,
) -> Outcome:
    host = "127.0.0.1" if family == socket.AF_INET else "::1"
    finished: list[Step] = []
    done = threading.Event()
    logged: list[str] = []

    def on_finished(_transfer: EngineTransfer, step: Step) -> None:
        finished.append(step)
        done.set()

    engine = TransferEngine(
        deliver=lambda fn, *a, **kw: fn(*a, **kw),
        log=lambda fmt, **fields: logged.append(fmt.format(**fields)),
        max_transfer_seconds=max_seconds,
        fastpath=fast,
    )
    assert engine.fastpath is fast
    path = tmp_path / "file.bin"
    path.write_bytes(content)
    source = path.open("rb", buffering=0)
    # `read_from` (a directory, for read errors) replaces what the transfer reads.
    fd = os.open(read_from, os.O_RDONLY) if read_from else source.fileno()
    options = negotiate(
        requested or {}, file_size=len(content), max_blksize=65464, max_windowsize=64
    )
    if not requested:
        options = type(options)(blksize=blksize)
    session = ReadSession(ReadAhead(fd), options, timeouts=timeouts)
    client = Client(family, host)
    sock = socket.socket(family, socket.SOCK_DGRAM)
    if connect:
        fastpath.reuse_port(sock)  # as the server does for the fast path
    sock.bind((host, 0))
    sock.setblocking(False)
    transfer = EngineTransfer(
        sock,
        client.sock.getsockname(),
        session,
        source,
        path.name,
        on_finished,
        use_gso=use_gso,
        file_fd=fd,
    )
    engine.start()
    try:
        engine.submit(transfer)
        extra = script(client, transfer, engine)
        assert done.wait(WAIT), "the transfer did not end"
        client.quiet(0.1)  # anything sent after the end is part of the trace too
    finally:
        engine.stop()
        client.sock.close()
        if read_from:
            os.close(fd)
    (step,) = finished
    counters = {
        "bytes_sent": transfer.bytes_sent,
        "bytes_acked": transfer.bytes_acked,
        "retransmits": transfer.retransmits,
        "send_syscalls": transfer.send_syscalls,
        "errors_sent": transfer.errors_sent,
    }
    assert source.closed and transfer.sock.fileno() == -1
    return Outcome(client.trace, step.state, step.reason, counters, logged, extra)


def both(tmp_path: Path, content: bytes, script: Script, **kw) -> Outcome:
    """Run on all three paths, assert they agree, return the connected C path's outcome."""
    for name in ("py", "c", "c-connected"):
        (tmp_path / name).mkdir()
    reference = run(False, tmp_path / "py", content, script, **kw)
    unconnected = run(True, tmp_path / "c", content, script, **kw)
    ours = run(True, tmp_path / "c-connected", content, script, connect=True, **kw)
    for out in (unconnected, ours):
        assert out.trace == reference.trace
        assert (out.state, out.reason) == (reference.state, reference.reason)
        assert out.counters == reference.counters
        assert out.extra == reference.extra
    return ours


def fetch(
    client: Client,
    windowsize: int = 1,
    first: Packet | None = None,
    blksize: int = 512,
    start: int = 1,
) -> bytes:
    """A well-behaved client: ACK each window's last block; returns the file (from
    block `start`)."""
    got = bytearray()
    packet = first or client.recv()
    if isinstance(packet, OptionAck):
        blksize = int(packet.options.get("blksize", blksize))
        client.send(Ack(0))
        packet = client.recv()
    expected = start
    in_window = 0
    while True:
        assert isinstance(packet, Data), packet
        assert packet.block == expected & 0xFFFF
        got += packet.payload
        expected += 1
        in_window += 1
        last = len(packet.payload) < blksize
        if last or in_window == windowsize:
            client.send(Ack(packet.block))
            in_window = 0
        if last:
            return bytes(got)
        packet = client.recv()


CONTENT = bytes(range(256)) * 300  # 76,800 octets


@pytest.mark.parametrize("size", [0, 1, 511, 512, 513, 1536, 70_001])
def test_lock_step_without_options_sends_the_file(tmp_path: Path, size: int) -> None:
    content = CONTENT[:size] if size <= len(CONTENT) else (CONTENT * 2)[:size]

    def script(client: Client, _t, _e) -> bytes:
        return fetch(client)

    out = both(tmp_path, content, script)
    assert out.extra == content and out.state is State.DONE and out.reason == "complete"
    assert out.counters["bytes_acked"] == size
    blocks = size // 512 + 1  # a multiple of 512 ends with an empty block
    assert sum(isinstance(p, Data) for p in out.trace) == blocks


@pytest.mark.parametrize("use_gso", [True, False])
@pytest.mark.parametrize("windowsize", [1, 4, 16])
def test_oack_then_windows(tmp_path: Path, windowsize: int, use_gso: bool) -> None:
    requested = {"blksize": "1468", "tsize": "0", "windowsize": str(windowsize)}

    def script(client: Client, _t, _e) -> bytes:
        return fetch(client, windowsize)

    out = both(tmp_path, CONTENT, script, requested=requested, use_gso=use_gso)
    assert out.extra == CONTENT
    assert out.trace[0] == OptionAck(requested | {"tsize": str(len(CONTENT))})
    if use_gso and windowsize > 1:
        # One sendmsg per window on loopback (GSO): far fewer calls than blocks.
        assert out.counters["send_syscalls"] < len(CONTENT) // 1468


def test_block_numbers_wrap_past_65535(tmp_path: Path) -> None:
    content = bytes(range(251)) * 2400  # 602,400 octets = 75,300 blocks of 8
    requested = {"blksize": "8", "windowsize": "64"}

    def script(client: Client, _t, _e) -> bytes:
        return fetch(client, 64)

    out = both(tmp_path, content, script, requested=requested)
    assert out.extra == content
    blocks = [p.block for p in out.trace if isinstance(p, Data)]
    assert blocks[65534:65537] == [65535, 0, 1]


def test_an_ack_inside_the_window_restarts_it_after_that_block(tmp_path: Path) -> None:
    requested = {"windowsize": "4"}

    def script(client: Client, _t, _e) -> list[int]:
        client.recv()
        client.send(Ack(0))
        first = [client.recv().block for _ in range(4)]
        client.send(Ack(2))  # blocks 3 and 4 "lost": the window restarts at 3
        second = [client.recv().block for _ in range(4)]
        client.send(Error(0, "enough"))
        return first + second

    out = both(tmp_path, CONTENT, script, requested=requested)
    assert out.extra == [1, 2, 3, 4, 3, 4, 5, 6]
    assert out.state is State.ABORTED and out.reason == "client error 0: enough"


def test_duplicate_acks_are_ignored(tmp_path: Path) -> None:
    def script(client: Client, _t, _e) -> bytes:
        first = client.recv()
        client.send(Ack(1))
        client.send(Ack(1))  # Sorcerer's Apprentice: must not resend block 2
        client.send(Ack(0))  # stale
        return first.payload + fetch(client, start=2)

    out = both(tmp_path, CONTENT[:2000], script)
    assert out.extra == CONTENT[:2000]
    assert [p.block for p in out.trace] == [1, 2, 3, 4]


def test_retransmits_then_gives_up(tmp_path: Path) -> None:
    def script(client: Client, _t, _e) -> None:
        for _ in range(4):
            client.recv()

    out = both(tmp_path, CONTENT, script, timeouts=(0.05, 0.05, 0.05))
    assert out.trace == [Data(1, CONTENT[:512])] * 3 + [Error(0, "timed out")]
    assert (out.state, out.reason) == (State.FAILED, "no ACK after 3 timeouts")
    assert out.counters["retransmits"] == 3


def test_an_unanswered_oack_is_resent(tmp_path: Path) -> None:
    requested = {"blksize": "1024"}

    def script(client: Client, _t, _e) -> None:
        client.recv()
        client.recv()  # the OACK again, after the first wait
        client.send(Ack(1))  # not ACK 0: ignored
        client.send(Ack(0))
        fetch(client, blksize=1024)

    out = both(tmp_path, CONTENT[:3000], script, requested=requested, timeouts=(0.2, 5.0, 5.0))
    assert out.trace[:2] == [OptionAck({"blksize": "1024"})] * 2
    assert out.state is State.DONE


def test_a_foreign_tid_gets_error_5_and_the_transfer_goes_on(tmp_path: Path) -> None:
    def script(client: Client, transfer: EngineTransfer, _e) -> object:
        first = client.recv()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as stranger:
            stranger.bind(("127.0.0.1", 0))
            stranger.settimeout(WAIT)
            port = transfer.sock.getsockname()
            stranger.sendto(encode(Ack(1)), port)
            data, source = stranger.recvfrom(100)
        client.send(Ack(1))
        # Error 5 comes from the transfer's port (a connected transfer: from its twin).
        return decode(data), source == port, first.payload + fetch(client, start=2)

    out = both(tmp_path, CONTENT[:1500], script)
    assert out.extra == (Error(5, "unknown transfer ID"), True, CONTENT[:1500])
    assert out.state is State.DONE and out.counters["errors_sent"] == 1


def test_data_from_the_client_is_an_illegal_operation(tmp_path: Path) -> None:
    def script(client: Client, _t, _e) -> None:
        client.recv()
        client.send(Data(1, b"upload?"))
        client.recv()

    out = both(tmp_path, CONTENT, script)
    assert out.trace[-1] == Error(4, "unexpected Data")
    assert (out.state, out.reason) == (State.FAILED, "unexpected Data from client")


def test_malformed_packets_are_dropped(tmp_path: Path) -> None:
    def script(client: Client, _t, _e) -> bytes:
        first = client.recv()
        for junk in (
            b"\x00",
            b"\x00\x04\x00",
            b"\x00\x04\x00\x01\x00",
            b"\x00\x09ab",
            b"\x00\x05\x00\x01no-nul",
        ):
            client.send(junk)
        client.send(Ack(1))
        return first.payload + fetch(client, start=2)

    out = both(tmp_path, CONTENT[:1200], script)
    assert out.extra == CONTENT[:1200] and out.state is State.DONE
    assert any("malformed" in line for line in out.logged)


def test_the_client_error_ends_the_transfer(tmp_path: Path) -> None:
    def script(client: Client, _t, _e) -> None:
        client.recv()
        client.send(Error(3, "disk full \xe9"))

    out = both(tmp_path, CONTENT, script)
    assert (out.state, out.reason) == (State.ABORTED, "client error 3: disk full \xe9")
    assert out.counters["errors_sent"] == 0


def test_the_lifetime_cap_ends_a_slow_transfer(tmp_path: Path) -> None:
    def script(client: Client, _t, _e) -> None:
        client.recv()
        client.recv()

    out = both(tmp_path, CONTENT, script, max_seconds=0.2, timeouts=(0.3, 0.3, 0.3))
    assert out.trace == [Data(1, CONTENT[:512]), Error(0, "transfer took too long")]
    assert (out.state, out.reason) == (State.FAILED, "transfer lifetime exceeded")


def test_stop_ends_a_running_transfer(tmp_path: Path) -> None:
    def script(client: Client, _t, engine: TransferEngine) -> None:
        client.recv()
        engine.stop()

    out = both(tmp_path, CONTENT, script)
    assert out.trace == [Data(1, CONTENT[:512])]
    assert (out.state, out.reason) == (State.FAILED, "server stopped")


def test_a_read_error_fails_the_transfer_with_error_0(tmp_path: Path) -> None:
    def script(client: Client, _t, _e) -> None:
        client.recv()

    out = both(tmp_path, b"", script, read_from=tmp_path)  # a directory: EISDIR
    assert out.trace == [Error(0, "read error")]
    assert out.state is State.FAILED and out.reason.startswith("read error at block 1: [Errno")


def test_ipv6(tmp_path: Path) -> None:
    def script(client: Client, _t, _e) -> bytes:
        return fetch(client, 8)

    out = both(tmp_path, CONTENT, script, requested={"windowsize": "8"}, family=socket.AF_INET6)
    assert out.extra == CONTENT


def test_many_transfers_at_once_each_on_its_own_thread(tmp_path: Path) -> None:
    """Twenty lock-step clients in parallel, all complete (fast path only)."""
    path = tmp_path / "big.bin"
    content = os.urandom(200_000)
    path.write_bytes(content)
    results: dict[int, bytes] = {}
    finished: list[Step] = []
    lock = threading.Lock()

    def on_finished(_t: EngineTransfer, step: Step) -> None:
        with lock:
            finished.append(step)

    engine = TransferEngine(deliver=lambda fn, *a, **kw: fn(*a, **kw), fastpath=True)
    engine.start()
    clients = []
    try:
        for _ in range(20):
            client = Client(socket.AF_INET, "127.0.0.1")
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind(("127.0.0.1", 0))
            sock.setblocking(False)
            source = path.open("rb", buffering=0)
            session = ReadSession(ReadAhead(source.fileno()), negotiate({}, file_size=None))
            transfer = EngineTransfer(
                sock,
                client.sock.getsockname(),
                session,
                source,
                "big",
                on_finished,
                file_fd=source.fileno(),
            )
            clients.append(client)
            engine.submit(transfer)

        def pull(index: int, client: Client) -> None:
            results[index] = fetch(client)

        threads = [threading.Thread(target=pull, args=(i, c)) for i, c in enumerate(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        deadline = time.monotonic() + WAIT
        while len(finished) < 20 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        engine.stop()
        for client in clients:
            client.sock.close()
    assert [results.get(i) == content for i in range(20)] == [True] * 20
    assert [s.state for s in finished] == [State.DONE] * 20
    assert engine.active == 0


def test_a_reuse_port_socket_is_connected_to_the_client_while_it_runs(tmp_path: Path) -> None:
    def script(client: Client, transfer: EngineTransfer, _e) -> bool:
        first = client.recv()
        connected = transfer.sock.getpeername() == client.sock.getsockname()
        client.send(Ack(1))
        fetch(client, start=2) if len(first.payload) == 512 else None
        return connected

    out = run(True, tmp_path, CONTENT[:2000], script, connect=True)
    assert out.extra is True and out.state is State.DONE


_inputs = st.lists(
    st.one_of(
        st.builds(Ack, st.integers(0, 40)),
        st.builds(Ack, st.integers(0, 0xFFFF)),
        st.builds(
            Error,
            st.integers(0, 8),
            st.text(max_size=10).filter(lambda t: "\0" not in t),
        ),
        st.builds(Data, st.integers(0, 0xFFFF), st.binary(max_size=4)),
        st.binary(max_size=8),  # mostly malformed
    ),
    max_size=15,
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    inputs=_inputs,
    blksize=st.sampled_from([8, 64, 512]),
    windowsize=st.sampled_from([1, 2, 4, 16]),
    oack=st.booleans(),
    blocks=st.integers(0, 30),
    tail=st.integers(0, 63),
)
def test_random_client_packets_get_the_same_answers_from_every_loop(
    inputs: list, blksize: int, windowsize: int, oack: bool, blocks: int, tail: int
) -> None:
    """Any sequence of client packets: the same packets back from all three loops.

    The script ends with an ERROR from the client, which the server handles after every
    earlier datagram (one queue, in order), so the transfer has ended, and all its answers
    are queued at the client, before the traces are compared: no timing in the result.
    """
    content = (CONTENT * 3)[: blocks * blksize + min(tail, blksize - 1)]
    requested = {"blksize": str(blksize), "windowsize": str(windowsize)} if oack else None

    def script(client: Client, _t, _e) -> None:
        client.recv()
        for packet in inputs:
            client.send(packet)
        client.send(Error(0, "end of test"))

    with tempfile.TemporaryDirectory() as tmp:
        out = both(Path(tmp), content, script, requested=requested, blksize=blksize)
    assert out.state in (State.DONE, State.FAILED, State.ABORTED)


def test_when_no_thread_can_start_the_python_loop_serves_it_connected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[str] = []
    real_start = threading.Thread.start

    def refuse_transfer_threads(self: threading.Thread) -> None:
        if self.name == "tftp-transfer":
            raise RuntimeError("can't start new thread")
        started.append(self.name)
        real_start(self)

    monkeypatch.setattr(threading.Thread, "start", refuse_transfer_threads)

    def script(client: Client, transfer: EngineTransfer, _e) -> tuple[bool, bool, bytes]:
        first = client.recv()
        connected = transfer.sock.getpeername() == client.sock.getsockname()
        client.send(Ack(1))
        return transfer.fast, connected, first.payload + fetch(client, start=2)

    out = run(True, tmp_path, CONTENT[:3000], script, connect=True)
    assert out.extra == (False, True, CONTENT[:3000]) and out.state is State.DONE
    assert "tftp-engine" in started  # the epoll loop's thread ran it
