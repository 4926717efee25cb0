"""The DHCP adapter with a fake transport and a real SQLite file: the lease is durable
before the ACK is written, malformed input is dropped without state change."""

from __future__ import annotations

import sqlite3
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest

from netboot.config import DHCPConfig
from netboot.dhcp.codec import MessageType, Packet
from netboot.dhcp.server import DHCPServerProtocol
from netboot.store.sqlite import open_store
from tests.unit.fixtures_dhcp import IPXE_BIOS_DISCOVER, IPXE_MAC, OVMF_DISCOVER, packet

SERVER = IPv4Address("10.0.0.1")
CFG = DHCPConfig(
    interfaces=("br0",),
    subnet=IPv4Network("10.0.0.0/24"),
    range_start=IPv4Address("10.0.0.10"),
    range_end=IPv4Address("10.0.0.20"),
    lease_seconds=600,
    router=None,
    dns_servers=(SERVER,),
    domain="maas.lan",
)


class RecordingTransport:
    """Records datagrams; on each write, reads the lease table through a separate
    connection, i.e. what a restarted server would see at that instant."""

    def __init__(self, db_path: Path) -> None:
        self.db_path = db_path
        self.sent: list[tuple[Packet, tuple[str, int], list[tuple]]] = []

    def write(self, data: bytes, addr: tuple[str, int]) -> None:
        db = sqlite3.connect(self.db_path)
        try:
            rows = db.execute("SELECT mac, ip FROM leases").fetchall()
        finally:
            db.close()
        self.sent.append((Packet.from_bytes(data), addr, rows))


@pytest.fixture
def server(tmp_path: Path):
    store = open_store(tmp_path / "db")
    proto = DHCPServerProtocol(
        "br0", CFG, SERVER, "http://10.0.0.1:5248", store, clock=lambda: 1000.0
    )
    proto.transport = RecordingTransport(tmp_path / "db")
    yield proto
    store.close()


def test_ipxe_discover_gets_offer_with_script_url(server):
    server.datagramReceived(IPXE_BIOS_DISCOVER, ("0.0.0.0", 68))
    [(reply, addr, rows)] = server.transport.sent
    assert addr == ("255.255.255.255", 68)
    assert reply.message_type == MessageType.OFFER
    assert reply.yiaddr == IPv4Address("10.0.0.10")
    assert reply.option(67) == f"http://10.0.0.1:5248/boot/ipxe/{IPXE_MAC}".encode()
    assert rows == []  # an OFFER commits nothing


def test_ovmf_discover_gets_tftp_loader_in_file_field(server):
    server.datagramReceived(OVMF_DISCOVER, ("0.0.0.0", 68))
    [(reply, _, _)] = server.transport.sent
    assert reply.file.rstrip(b"\0") == b"snponly.efi"
    assert reply.siaddr == SERVER


def test_ack_is_sent_only_after_the_lease_is_committed(server):
    request = packet(((53, b"\x03"), (54, SERVER.packed), (50, bytes([10, 0, 0, 15]))))
    server.datagramReceived(request.to_bytes(), ("0.0.0.0", 68))
    [(reply, _, rows_at_send)] = server.transport.sent
    assert reply.message_type == MessageType.ACK
    assert rows_at_send == [(IPXE_MAC, "10.0.0.15")]


def test_request_for_taken_address_is_naked(server):
    server.store.commit_lease("aa:bb:cc:dd:ee:ff", IPv4Address("10.0.0.15"), 5000.0, "", 900.0)
    request = packet(((53, b"\x03"), (50, bytes([10, 0, 0, 15]))))
    server.datagramReceived(request.to_bytes(), ("0.0.0.0", 68))
    [(reply, _, _)] = server.transport.sent
    assert reply.message_type == MessageType.NAK


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x01" * 10,
        IPXE_BIOS_DISCOVER[:239],
        IPXE_BIOS_DISCOVER[:236] + b"BAD!",
        IPXE_BIOS_DISCOVER[:240] + b"\x35\x09\x01",
    ],
)
def test_malformed_datagrams_are_dropped_without_state_change(server, data):
    server.datagramReceived(data, ("10.0.0.99", 68))
    assert server.transport.sent == []
    assert server.stats["dropped_malformed"] == 1
    assert server.store.leases() == []


def test_replies_to_relay_go_to_giaddr_port_67(server):
    relayed = packet(((53, b"\x01"),), giaddr=IPv4Address("10.0.0.254"))
    server.datagramReceived(relayed.to_bytes(), ("10.0.0.254", 67))
    [(_, addr, _)] = server.transport.sent
    assert addr == ("10.0.0.254", 67)
