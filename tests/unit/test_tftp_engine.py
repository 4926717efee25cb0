"""The transfer engine (tftp/engine.py) on real loopback sockets with an injected clock.

The loop is driven one `run_once(0)` at a time (no thread) except in the last test; the
client is a plain UDP socket on 127.0.0.1. Timers are checked against a fake clock, so
no test waits for real time to pass.
"""

from __future__ import annotations

import io
import socket
import time
from collections.abc import Iterator

import pytest

from netboot.tftp.codec import Ack, Data, Error, ErrorCode, OptionAck, decode, encode
from netboot.tftp.engine import EngineTransfer, TransferEngine
from netboot.tftp.session import ReadSession, State, Step, TransferOptions

HOST = "127.0.0.1"
CONTENT = bytes(range(256)) * 10  # 2560 bytes: 5 blocks of 512 and a zero-length 6th


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Harness:
    """One engine, its fake clock, a client socket, and what the engine reported."""

    def __init__(self, **engine_opts) -> None:
        self.clock = FakeClock()
        self.logged: list[tuple[str, dict]] = []
        self.finished: list[tuple[EngineTransfer, Step]] = []
        self.engine = TransferEngine(
            deliver=lambda fn, *a, **kw: fn(*a, **kw),
            log=lambda fmt, **fields: self.logged.append((fmt, fields)),
            clock=self.clock,
            **engine_opts,
        )
        self.client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.client.bind((HOST, 0))
        self.client.setblocking(False)

    def submit(
        self, source=None, *, reader=None, timeouts=(1.0, 2.0, 4.0), **options
    ) -> EngineTransfer:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((HOST, 0))
        sock.setblocking(False)
        source = source if source is not None else io.BytesIO(CONTENT)
        session = ReadSession(reader or source, TransferOptions(**options), timeouts=timeouts)
        transfer = EngineTransfer(
            sock,
            self.client.getsockname(),
            session,
            source,
            "a.bin",
            lambda t, step: self.finished.append((t, step)),
        )
        self.engine.submit(transfer)
        self.step()
        return transfer

    def step(self) -> None:
        for _ in range(3):  # a few passes: a datagram sent just now is ready on loopback
            self.engine.run_once(0)

    def received(self) -> list[object]:
        packets = []
        while True:
            try:
                data, _ = self.client.recvfrom(65536)
            except BlockingIOError:
                return packets
            packets.append(decode(data))

    def reply(self, transfer: EngineTransfer, packet: object, sock=None) -> None:
        (sock or self.client).sendto(encode(packet), transfer.sock.getsockname())
        self.step()

    def close(self) -> None:
        self.client.close()
        self.engine.stop()


@pytest.fixture
def harness() -> Iterator[Harness]:
    h = Harness()
    try:
        yield h
    finally:
        h.close()


def test_lock_step_transfer_completes_and_closes_socket_and_source(harness: Harness) -> None:
    source = io.BytesIO(CONTENT)
    transfer = harness.submit(source)
    got = b""
    for block in range(1, 7):
        (packet,) = harness.received()
        assert packet == Data(block, CONTENT[(block - 1) * 512 : block * 512])
        got += packet.payload
        harness.reply(transfer, Ack(block))
    assert got == CONTENT
    assert [step.state for _, step in harness.finished] == [State.DONE]
    assert transfer.sock.fileno() == -1 and source.closed
    assert harness.engine.active == 0


def test_retransmits_on_the_backoff_schedule_then_gives_up(harness: Harness) -> None:
    transfer = harness.submit(timeouts=(1.0, 2.0, 4.0))
    assert harness.received() == [Data(1, CONTENT[:512])]
    harness.clock.advance(0.99)
    harness.step()
    assert harness.received() == []  # not yet
    for wait in (0.01, 2.0):  # the first wait ends at 1 s, the second 2 s later
        harness.clock.advance(wait)
        harness.step()
        assert harness.received() == [Data(1, CONTENT[:512])]
    harness.clock.advance(4.0)
    harness.step()
    assert harness.received() == [Error(ErrorCode.NOT_DEFINED, "timed out")]
    ((done, step),) = harness.finished
    assert done is transfer and step.state is State.FAILED
    assert transfer.session.retransmits == 3 and transfer.errors_sent == 1


def test_progress_moves_the_deadline_without_a_heap_entry_per_ack(harness: Harness) -> None:
    transfer = harness.submit(timeouts=(1.0, 1.0))
    for block in range(1, 4):
        harness.clock.advance(0.6)  # each ACK comes before the wait runs out
        harness.reply(transfer, Ack(block))
    assert len(harness.engine._heap) == 1  # one entry, pushed again lazily
    assert [p.block for p in harness.received()] == [1, 2, 3, 4]  # no spurious resend
    harness.clock.advance(0.99)
    harness.step()
    assert harness.received() == []
    harness.clock.advance(0.01)  # the wait for ACK 4 (1 s after ACK 3) expired: resend
    harness.step()
    assert harness.received() == [Data(4, CONTENT[1536:2048])]


def test_progress_after_a_backoff_restores_the_short_wait(harness: Harness) -> None:
    transfer = harness.submit(timeouts=(1.0, 8.0, 8.0))
    harness.clock.advance(1.0)
    harness.step()  # first expiry: resend, and the next wait is 8 s
    assert [p.block for p in harness.received()] == [1, 1]
    harness.reply(transfer, Ack(1))  # progress: back to the 1 s wait
    harness.clock.advance(1.0)
    harness.step()
    assert [p.block for p in harness.received()] == [2, 2]


def test_transfer_lifetime_is_capped_even_while_the_client_progresses() -> None:
    h = Harness(max_transfer_seconds=5.0)
    try:
        transfer = h.submit(io.BytesIO(bytes(512 * 40)), timeouts=(1.0,))
        for block in range(1, 12):  # one ACK every 0.9 s: always in time, never finished
            h.clock.advance(0.9)
            h.reply(transfer, Ack(block))
            if h.finished:
                break
        assert block == 6  # ended by the first timer check after 5 s (at 5.4 s)
        assert h.received()[-1] == Error(ErrorCode.NOT_DEFINED, "transfer took too long")
        assert [step.reason for _, step in h.finished] == ["transfer lifetime exceeded"]
    finally:
        h.close()


def test_duplicate_ack_is_not_answered(harness: Harness) -> None:
    # Sorcerer's Apprentice (RFC 1350 section 6, RFC 1123 4.2.3.1): only the timer resends.
    transfer = harness.submit()
    harness.reply(transfer, Ack(1))
    harness.reply(transfer, Ack(1))
    assert [p.block for p in harness.received()] == [1, 2]


def test_foreign_tid_gets_error_5_and_the_transfer_continues(harness: Harness) -> None:
    transfer = harness.submit()
    harness.received()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as stranger:
        stranger.bind((HOST, 0))
        stranger.settimeout(5)
        harness.reply(transfer, Ack(1), sock=stranger)
        data, _ = stranger.recvfrom(100)
    assert decode(data) == Error(ErrorCode.UNKNOWN_TID, "unknown transfer ID")
    harness.reply(transfer, Ack(1))
    assert harness.received() == [Data(2, CONTENT[512:1024])]
    assert harness.finished == []


def test_malformed_packet_is_logged_and_dropped(harness: Harness) -> None:
    transfer = harness.submit()
    harness.received()
    harness.client.sendto(b"\x00\x04\x00", transfer.sock.getsockname())  # a short ACK
    harness.step()
    assert harness.received() == [] and harness.finished == []
    assert any("malformed" in fmt for fmt, _ in harness.logged)
    harness.reply(transfer, Ack(1))
    assert harness.received() == [Data(2, CONTENT[512:1024])]


def test_window_goes_out_whole_and_an_ack_inside_it_restarts_after_it(harness: Harness) -> None:
    # RFC 7440 section 4.
    transfer = harness.submit(windowsize=4, oack={"windowsize": "4"})
    assert harness.received() == [OptionAck({"windowsize": "4"})]
    harness.reply(transfer, Ack(0))
    assert [p.block for p in harness.received()] == [1, 2, 3, 4]
    harness.reply(transfer, Ack(2))
    assert [p.block for p in harness.received()] == [3, 4, 5, 6]
    harness.reply(transfer, Ack(6))
    assert [step.state for _, step in harness.finished] == [State.DONE]


def test_client_error_aborts_the_transfer(harness: Harness) -> None:
    transfer = harness.submit(tsize=len(CONTENT), oack={"tsize": str(len(CONTENT))})
    harness.reply(transfer, Error(ErrorCode.NOT_DEFINED, "tsize probe done"))
    ((_, step),) = harness.finished
    assert step.state is State.ABORTED and "tsize probe" in step.reason


def test_a_failing_source_costs_one_transfer_not_the_loop(harness: Harness) -> None:
    def broken(offset: int, length: int) -> bytes:
        if offset:
            raise RuntimeError("bug in a dynamic file")  # not an OSError: a bug
        return CONTENT[:length]

    bad = harness.submit(reader=broken)
    assert harness.received() == [Data(1, CONTENT[:512])]
    harness.reply(bad, Ack(1))
    assert harness.received() == [Error(ErrorCode.NOT_DEFINED, "internal error")]
    assert [step.state for _, step in harness.finished] == [State.FAILED]
    assert any("internal error" in fmt for fmt, _ in harness.logged)
    good = harness.submit()
    assert harness.received() == [Data(1, CONTENT[:512])]
    assert good.closed is False


def test_stop_ends_running_transfers_as_server_stopped(harness: Harness) -> None:
    source = io.BytesIO(CONTENT)
    transfer = harness.submit(source)
    harness.engine.stop()  # the fixture stops it again: stop() is idempotent
    ((done, step),) = harness.finished
    assert done is transfer and step.reason == "server stopped"
    assert source.closed and transfer.sock.fileno() == -1


def test_threaded_loop_serves_a_real_transfer_until_stopped() -> None:
    finished: list[Step] = []
    engine = TransferEngine(deliver=lambda fn, *a, **kw: fn(*a, **kw))
    engine.start()
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.bind((HOST, 0))
    client.settimeout(5)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((HOST, 0))
    sock.setblocking(False)
    content = bytes(range(256)) * 1000
    session = ReadSession(io.BytesIO(content), TransferOptions(blksize=1024))
    try:
        engine.submit(
            EngineTransfer(
                sock,
                client.getsockname(),
                session,
                io.BytesIO(),
                "x",
                lambda t, step: finished.append(step),
            )
        )
        got = b""
        while True:
            data, addr = client.recvfrom(2000)
            packet = decode(data)
            got += packet.payload
            client.sendto(encode(Ack(packet.block)), addr)
            if len(packet.payload) < 1024:
                break
        deadline = time.monotonic() + 5
        while not finished and time.monotonic() < deadline:
            time.sleep(0.01)
        assert got == content and [s.state for s in finished] == [State.DONE]
    finally:
        client.close()
        engine.stop()
