"""The Twisted adapter with an injected engine (fake clock, no thread): session cap,
retransmitted requests, and the counters and slot freed when a transfer ends."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from netboot.tftp.codec import Ack, Data, Error, ErrorCode, ReadRequest, decode, encode
from netboot.tftp.engine import TransferEngine
from netboot.tftp.server import TFTPServerProtocol

HOST = "127.0.0.1"


class FakeTransport:
    """The listening port: records what the server writes from it."""

    def __init__(self) -> None:
        self.sent: list[tuple[object, tuple]] = []

    def write(self, data: bytes, addr) -> None:
        self.sent.append((decode(data), addr))


class FakeClock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "a.bin").write_bytes(bytes(range(256)) * 10)  # 2560 bytes: 6 blocks of 512
    return tmp_path


@pytest.fixture
def engine() -> Iterator[TransferEngine]:
    engine = TransferEngine(deliver=lambda fn, *a, **kw: fn(*a, **kw), clock=FakeClock())
    try:
        yield engine
    finally:
        engine.stop()


@pytest.fixture
def client() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((HOST, 0))
    sock.settimeout(5)
    try:
        yield sock
    finally:
        sock.close()


def server(root: Path, engine: TransferEngine, **opts) -> TFTPServerProtocol:
    proto = TFTPServerProtocol(root, None, HOST, clamp_to_mtu=False, engine=engine, **opts)
    proto.makeConnection(FakeTransport())
    return proto


def rrq(proto: TFTPServerProtocol, peer, name: str = "a.bin") -> None:
    proto.datagramReceived(encode(ReadRequest(name, "octet")), peer)


def test_session_cap_refuses_with_a_clear_error_and_counts(root: Path, engine) -> None:
    proto = server(root, engine, max_sessions=1)
    rrq(proto, ("127.0.0.1", 1))
    rrq(proto, ("127.0.0.1", 2))
    busy = Error(ErrorCode.NOT_DEFINED, "server busy: too many transfers, retry later")
    assert proto.transport.sent == [(busy, ("127.0.0.1", 2))]
    assert proto.stats.refused_busy == 1 and proto.stats.errors_sent == 1


def test_retransmitted_rrq_does_not_start_a_second_transfer(root: Path, engine) -> None:
    proto = server(root, engine)
    rrq(proto, ("127.0.0.1", 1))
    rrq(proto, ("127.0.0.1", 1))
    engine.run_once(0)
    assert proto.active_transfers == 1 and engine.active == 1


def test_finished_transfer_frees_its_slot_and_adds_its_counters(
    root: Path, engine, client: socket.socket
) -> None:
    proto = server(root, engine, max_sessions=1)
    peer = client.getsockname()
    rrq(proto, peer)
    engine.run_once(0)
    blocks = []
    while True:
        data, addr = client.recvfrom(2000)
        packet = decode(data)
        assert isinstance(packet, Data)
        blocks.append(packet.block)
        client.sendto(encode(Ack(packet.block)), addr)
        engine.run_once(0.5)  # the ACK: answered with the next block, or the end
        if not packet.payload:
            break
    assert blocks == [1, 2, 3, 4, 5, 6]
    assert proto.active_transfers == 0 and engine.active == 0
    stats = proto.stats
    assert (stats.transfers_ok, stats.bytes_sent, stats.send_syscalls) == (1, 2560, 6)
    rrq(proto, ("127.0.0.1", 3))  # the slot is free again
    assert proto.active_transfers == 1 and proto.transport.sent == []


class _Reactor:
    def callFromThread(self, fn, *args, **kwargs) -> None:  # noqa: N802 (twisted API)
        fn(*args, **kwargs)


def test_without_the_extension_the_server_says_so_and_uses_the_python_loop(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from twisted.logger import capturedLogs

    from netboot.tftp import fastpath

    monkeypatch.setattr(fastpath, "_fastpath", None)
    monkeypatch.setattr(fastpath, "UNAVAILABLE", "C extension not importable: (test)")
    with capturedLogs() as events:
        proto = TFTPServerProtocol(root, _Reactor(), HOST, clamp_to_mtu=False)
    try:
        assert proto.engine.fastpath is False
        warnings = [e for e in events if "Python loop" in e["log_format"]]
        assert len(warnings) == 1 and warnings[0]["why"] == "C extension not importable: (test)"
    finally:
        proto.engine.stop()


def test_with_the_extension_the_servers_own_engine_uses_it(root: Path) -> None:
    proto = TFTPServerProtocol(root, _Reactor(), HOST, clamp_to_mtu=False)
    try:
        assert proto.engine.fastpath is True
    finally:
        proto.engine.stop()
