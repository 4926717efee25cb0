"""The Twisted adapter with a fake clock and fake UDP ports: timers, lifetime, session cap."""

from __future__ import annotations

from pathlib import Path

import pytest
from twisted.internet.task import Clock

from netboot.tftp.codec import Ack, Data, Error, ErrorCode, ReadRequest, decode, encode
from netboot.tftp.server import TFTPServerProtocol

CLIENT = ("10.0.0.50", 2000)


class FakePort:
    def __init__(self, reactor: FakeReactor, protocol) -> None:
        self.reactor = reactor
        self.protocol = protocol
        self.open = True

    def write(self, data: bytes, addr) -> None:
        self.reactor.sent.append((self, decode(data), addr))

    def stopListening(self) -> None:  # noqa: N802 (twisted API name)
        self.open = False


class FakeReactor(Clock):
    """IReactorTime from task.Clock plus a listenUDP that records what is sent."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[tuple[FakePort, object, tuple]] = []
        self.ports: list[FakePort] = []

    def listenUDP(self, port, protocol, interface=""):  # noqa: N802 (twisted API name)
        fake = FakePort(self, protocol)
        protocol.makeConnection(fake)
        self.ports.append(fake)
        return fake


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "a.bin").write_bytes(bytes(range(256)) * 10)  # 2560 bytes: 6 blocks of 512
    return tmp_path


def server(root: Path, reactor: FakeReactor, **opts) -> TFTPServerProtocol:
    proto = TFTPServerProtocol(root, reactor, "10.0.0.1", clamp_to_mtu=False, **opts)
    proto.makeConnection(FakePort(reactor, proto))
    return proto


def rrq(proto: TFTPServerProtocol, name: str = "a.bin", peer=CLIENT) -> None:
    proto.datagramReceived(encode(ReadRequest(name, "octet")), peer)


def test_retransmits_on_the_backoff_schedule_then_gives_up(root: Path) -> None:
    reactor = FakeReactor()
    proto = server(root, reactor, timeouts=(1.0, 2.0, 4.0))
    rrq(proto)
    assert [p for _, p, _ in reactor.sent] == [Data(1, bytes(range(256)) * 2)]
    for wait in (1.0, 2.0):
        reactor.advance(wait)
    assert len(reactor.sent) == 3 and all(p.block == 1 for _, p, _ in reactor.sent)
    reactor.advance(4.0)
    assert reactor.sent[-1][1] == Error(ErrorCode.NOT_DEFINED, "timed out")
    assert proto.active_transfers == 0 and proto.stats.transfers_failed == 1
    assert not reactor.ports[0].open


def test_progress_moves_the_deadline_without_a_new_timer_per_ack(root: Path) -> None:
    reactor = FakeReactor()
    proto = server(root, reactor, timeouts=(1.0, 1.0))
    rrq(proto)
    transfer = reactor.ports[0].protocol
    for block in range(1, 4):
        reactor.advance(0.6)  # each ACK comes before the wait runs out
        transfer.datagramReceived(encode(Ack(block)), CLIENT)
    assert len(reactor.getDelayedCalls()) == 1  # one timer, rescheduled lazily
    assert [p.block for _, p, _ in reactor.sent] == [1, 2, 3, 4]  # no spurious resend
    reactor.advance(1.0)
    assert reactor.sent[-1][1].block == 4  # now the wait for ACK 4 expired: resend


def test_transfer_lifetime_is_capped_even_while_the_client_progresses(root: Path) -> None:
    (root / "slow.bin").write_bytes(bytes(512 * 40))
    reactor = FakeReactor()
    proto = server(root, reactor, timeouts=(1.0,), max_transfer_seconds=5.0)
    rrq(proto, "slow.bin")
    transfer = reactor.ports[0].protocol
    for block in range(1, 12):  # one ACK every 0.9 s: always in time, never finished
        reactor.advance(0.9)
        transfer.datagramReceived(encode(Ack(block)), CLIENT)
    assert reactor.sent[-1][1] == Error(ErrorCode.NOT_DEFINED, "transfer took too long")
    assert proto.active_transfers == 0 and proto.stats.transfers_failed == 1


def test_session_cap_refuses_with_a_clear_error_and_counts(root: Path) -> None:
    reactor = FakeReactor()
    proto = server(root, reactor, max_sessions=1)
    rrq(proto, peer=("10.0.0.50", 1))
    rrq(proto, peer=("10.0.0.51", 2))
    busy = [p for port, p, _ in reactor.sent if port.protocol is proto]
    assert busy == [Error(ErrorCode.NOT_DEFINED, "server busy: too many transfers, retry later")]
    assert proto.stats.refused_busy == 1


def test_retransmitted_rrq_does_not_start_a_second_transfer(root: Path) -> None:
    reactor = FakeReactor()
    proto = server(root, reactor)
    rrq(proto)
    rrq(proto)
    assert proto.active_transfers == 1 and len(reactor.ports) == 1
