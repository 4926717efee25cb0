"""Fuzz the DHCP controller (hypothesis + scapy): whatever arrives, the server never
raises and never hits an internal error; a datagram that does not decode changes no
state, gets no reply, and leaves a log line saying why it was dropped."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.all import BOOTP, DHCP, fuzz
from twisted.logger import globalLogPublisher

from netboot.dhcp.codec import MalformedPacket, Packet
from tests.unit.fixtures_dhcp import IPXE_BIOS_DISCOVER, OVMF_DISCOVER
from tests.unit.test_dhcp_server import make_server

SEEDS = [IPXE_BIOS_DISCOVER, OVMF_DISCOVER]


def _mutate(seed: bytes, edits: list[tuple[int, int, int]], cut: int | None) -> bytes:
    data = bytearray(seed)
    for kind, pos, value in edits:
        pos %= max(len(data), 1)
        if kind == 0:
            data[pos] = value
        elif kind == 1:
            data.insert(pos, value)
        elif data:
            del data[pos]
    return bytes(data[:cut] if cut is not None else data)


mutated = st.builds(
    _mutate,
    st.sampled_from(SEEDS),
    st.lists(st.tuples(st.integers(0, 2), st.integers(0, 600), st.integers(0, 255)), max_size=8),
    st.one_of(st.none(), st.integers(0, 400)),
)


def _scapy_fuzzed(seed: int) -> bytes:
    random.seed(seed)  # scapy's fuzz() draws from `random`
    opts = [("message-type", random.choice([1, 3, 4, 7, 8])), "end"]
    return bytes(fuzz(BOOTP(op=1) / DHCP(options=opts)))


datagrams = st.one_of(
    mutated.map(lambda d: ("bytes", d)),
    st.binary(max_size=700).map(lambda d: ("bytes", d)),
    st.integers(0, 2**32 - 1).map(lambda seed: ("scapy", seed)),
)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv, rec = make_server(tmp_path_factory.mktemp("fuzz"))
    srv.send = rec
    yield srv
    srv.leases.close()


@settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(item=datagrams)
def test_no_datagram_crashes_the_server_or_changes_state_when_malformed(server, item):
    kind, value = item
    data = _scapy_fuzzed(value) if kind == "scapy" else value
    rec = server.send
    sent_before, table_before = len(rec.sent), dict(server.table.by_key)
    rows_before = server.leases.load()
    malformed_before = server.stats["dropped_malformed"]
    lines: list[str] = []

    def observe(event: dict) -> None:
        lines.append(str(event.get("log_format", "")))

    globalLogPublisher.addObserver(observe)
    try:
        server.handle(data, ("10.0.0.99", 68), "br0", rec, False)
    finally:
        globalLogPublisher.removeObserver(observe)
    assert server.stats["errors"] == 0  # no internal exception, whatever the input
    try:
        Packet.from_bytes(data)
    except MalformedPacket:
        assert len(rec.sent) == sent_before
        assert server.table.by_key == table_before
        assert server.leases.load() == rows_before
        assert server.stats["dropped_malformed"] == malformed_before + 1
        assert any("drop malformed" in line for line in lines)
