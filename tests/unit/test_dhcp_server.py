"""The DHCP controller with a fake transport and a real SQLite file: the lease is durable
before the ACK is sent, replies go where RFC 2131 §4.1 says, malformed input changes
nothing, options honour 55/57 and overload when they must."""

from __future__ import annotations

import sqlite3
from ipaddress import IPv4Address
from pathlib import Path

import pytest
from twisted.internet.task import Clock

from netboot.dhcp.codec import FLAG_BROADCAST, MessageType, Packet
from netboot.dhcp.server import DHCPServer
from netboot.dhcp.settings import parse_dhcp
from netboot.store.leases import LeaseStore
from netboot.store.sqlite import open_store
from tests.unit.fixtures_dhcp import IPXE_BIOS_DISCOVER, IPXE_MAC, OVMF_DISCOVER, packet

SERVER = IPv4Address("10.0.0.1")
RAW = {
    "interfaces": ["br0"],
    "subnet": "10.0.0.0/24",
    "range_start": "10.0.0.10",
    "range_end": "10.0.0.20",
    "lease_seconds": 600,
    "domain_search": ["maas.lan", "lab.example"],
    "ntp_servers": ["10.0.0.1"],
}


class Recorder:
    """send(data, dest); on each send reads the lease table through a separate
    connection, i.e. what a restarted server would see at that instant."""

    interface = "br0"

    def __init__(self, db_path: Path) -> None:
        self.db_path = db_path
        self.sent: list[tuple[Packet, tuple[str, int], list[tuple]]] = []
        self.raw: list[bytes] = []

    def __call__(self, data: bytes, dest: tuple[str, int]) -> None:
        self.raw.append(data)
        db = sqlite3.connect(self.db_path)
        try:
            rows = db.execute("SELECT mac, ip, state FROM leases").fetchall()
        finally:
            db.close()
        self.sent.append((Packet.from_bytes(data), dest, rows))


class FakeNeighbours:
    def __init__(self) -> None:
        self.added: list[tuple[str, str, str]] = []

    def add(self, interface: str, ip: str, mac: str) -> bool:
        self.added.append((interface, ip, mac))
        return True


def make_server(tmp_path: Path, raw=RAW, now=1000.0) -> tuple[DHCPServer, Recorder]:
    path = tmp_path / "db"
    open_store(path).close()  # migrations
    clock = Clock()
    clock.advance(now)
    server = DHCPServer(
        parse_dhcp(raw, SERVER),
        "http://10.0.0.1:5248",
        LeaseStore(path),
        clock,
        clock.seconds,
        neighbours=FakeNeighbours(),
        commit_mode="inline",
    )
    return server, Recorder(path)


@pytest.fixture
def server(tmp_path: Path):
    srv, rec = make_server(tmp_path)
    srv.send = rec
    yield srv
    srv.leases.close()


def feed(server, pkt: Packet | bytes, src=("0.0.0.0", 68), pxe_port=False) -> None:
    data = pkt if isinstance(pkt, bytes) else pkt.to_bytes()
    server.handle(data, src, "br0", server.send, pxe_port)


def dora(server, mac=IPXE_MAC, extra=()):
    feed(server, packet(((53, b"\x01"), *extra), mac=mac, flags=FLAG_BROADCAST))
    offer = server.send.sent[-1][0]
    feed(
        server,
        packet(
            ((53, b"\x03"), (54, SERVER.packed), (50, offer.yiaddr.packed), *extra),
            mac=mac,
            flags=FLAG_BROADCAST,
        ),
    )
    return offer, server.send.sent[-1][0]


def test_ipxe_discover_gets_offer_with_script_url_and_no_pxedhcp_wait(server):
    feed(server, IPXE_BIOS_DISCOVER)
    [(reply, dest, rows)] = server.send.sent
    assert dest == ("255.255.255.255", 68)
    assert reply.message_type == MessageType.OFFER
    assert reply.yiaddr == IPv4Address("10.0.0.10")
    assert reply.option(67) == f"http://10.0.0.1:5248/boot/ipxe/{IPXE_MAC}".encode()
    assert reply.option(175) == b"\xb0\x01\x01"  # iPXE: do not wait for proxyDHCP
    assert reply.option(51) == (30).to_bytes(4, "big")  # boot clients: short lease
    assert rows == []  # an OFFER commits nothing


def test_ovmf_discover_gets_tftp_loader_in_file_field(server):
    feed(server, OVMF_DISCOVER)
    [(reply, _, _)] = server.send.sent
    assert reply.file.rstrip(b"\0") == b"snponly.efi"
    assert reply.siaddr == SERVER
    assert reply.option(60) is None  # no PXEClient echo: OVMF would wait for BINL on 4011


def test_ack_is_sent_only_after_the_lease_is_committed(server):
    _, ack = dora(server)
    assert ack.message_type == MessageType.ACK
    [*_, (_, _, rows_at_send)] = server.send.sent
    assert rows_at_send == [(IPXE_MAC, "10.0.0.10", "active")]


def test_options_follow_the_parameter_request_list_order(server):
    prl = (55, bytes([119, 42, 15, 3, 1, 6]))
    feed(server, packet(((53, b"\x01"), prl), flags=FLAG_BROADCAST))
    reply = server.send.sent[-1][0]
    codes = [c for c, _ in reply.options]
    assert codes[:5] == [53, 54, 51, 58, 59]
    assert codes[5:10] == [119, 42, 15, 1, 6]  # requested, in order (3: no router set)
    assert reply.option(28) is None  # not requested, not a default


def test_a_long_reply_overloads_file_and_sname_to_fit_576_octets(tmp_path: Path):
    raw = {**RAW, "domain_search": [f"zone{i}.rack{i}.example{i}.org" for i in range(12)]}
    srv, rec = make_server(tmp_path, raw)
    srv.send = rec
    feed(srv, packet(((53, b"\x01"), (55, bytes([119, 15, 6, 1, 42])))))
    [(reply, _, _)] = rec.sent
    assert reply.option(119) is not None and reply.option(42) is not None
    assert srv.stats["overloaded"] == 1
    assert len(reply.to_bytes()) > 576 - 28  # it did not fit in the options field alone
    assert len(rec.raw[-1]) <= 576 - 28  # and the datagram sent still fits


def test_same_client_gets_the_same_address_again_and_lease_is_renewed(server):
    _, first = dora(server)
    _, second = dora(server)
    assert first.yiaddr == second.yiaddr


def test_client_identifier_not_chaddr_keys_the_lease(server):
    cid = (61, b"\xffmy-client-id")
    _, first = dora(server, mac="52:54:00:00:00:01", extra=(cid,))
    _, moved = dora(server, mac="52:54:00:00:00:02", extra=(cid,))
    assert first.yiaddr == moved.yiaddr  # same client, new NIC: same lease
    _, other = dora(server, mac="52:54:00:00:00:01")
    assert other.yiaddr != first.yiaddr


def test_request_for_taken_address_is_naked_with_a_reason(server):
    dora(server, mac="aa:bb:cc:dd:ee:ff")
    feed(server, packet(((53, b"\x03"), (50, bytes([10, 0, 0, 10])))))
    reply, dest, _ = server.send.sent[-1]
    assert reply.message_type == MessageType.NAK
    assert dest == ("255.255.255.255", 68)
    assert b"held by another client" in reply.option(56)


def test_unicast_reply_to_a_client_without_address_installs_a_neighbour_entry(server):
    feed(server, packet(((53, b"\x01"),), flags=0))
    reply, dest, _ = server.send.sent[-1]
    assert dest == (str(reply.yiaddr), 68)
    assert server.neighbours.added == [("br0", str(reply.yiaddr), IPXE_MAC)]


def test_renewing_client_is_answered_unicast_at_ciaddr(server):
    _, ack = dora(server)
    feed(server, packet(((53, b"\x03"),), ciaddr=ack.yiaddr), src=(str(ack.yiaddr), 68))
    reply, dest, _ = server.send.sent[-1]
    assert reply.message_type == MessageType.ACK and reply.ciaddr == ack.yiaddr
    assert dest == (str(ack.yiaddr), 68)


def test_relayed_requests_get_the_relay_subnet_replies_at_port_67_and_option_82_back(tmp_path):
    raw = {
        "interfaces": ["br0"],
        "subnets": [
            {"subnet": "10.0.0.0/24", "interface": "br0", "range_start": "10.0.0.10",
             "range_end": "10.0.0.20"},
            {"subnet": "10.9.0.0/24", "range_start": "10.9.0.10", "range_end": "10.9.0.20",
             "router": "10.9.0.1"},
        ],
    }  # fmt: skip
    srv, rec = make_server(tmp_path, raw)
    srv.send = rec
    relay_info = b"\x01\x04swp7"
    feed(srv, packet(((53, b"\x01"), (82, relay_info)), giaddr=IPv4Address("10.9.0.1")))
    reply, dest, _ = rec.sent[-1]
    assert dest == ("10.9.0.1", 67)
    assert reply.yiaddr == IPv4Address("10.9.0.10")
    assert reply.option(3) == IPv4Address("10.9.0.1").packed
    assert reply.options[-1] == (82, relay_info)


def test_release_frees_the_address_durably(server):
    _, ack = dora(server)
    feed(server, packet(((53, b"\x07"), (54, SERVER.packed)), ciaddr=ack.yiaddr))
    rows = server.leases.query(mac=IPXE_MAC)
    assert [r.state.value for r in rows] == ["released"]


def test_decline_quarantines_the_address_and_the_client_gets_another(server):
    _, ack = dora(server)
    feed(server, packet(((53, b"\x04"), (54, SERVER.packed), (50, ack.yiaddr.packed))))
    assert [r.state.value for r in server.leases.query(ip=str(ack.yiaddr))] == ["declined"]
    offer, _ = dora(server)
    assert offer.yiaddr != ack.yiaddr


def test_reclaim_expires_leases_and_ends_quarantines(server):
    _, ack = dora(server, mac="aa:bb:cc:dd:ee:01")
    server.clock.__self__.advance(700)
    assert server.reclaim() == 1
    assert [r.state.value for r in server.leases.query(ip=str(ack.yiaddr))] == ["expired"]


def test_restart_reloads_leases_from_the_store(server, tmp_path: Path):
    _, ack = dora(server)
    again, _ = make_server(tmp_path)
    assert again.table.get(b"\x01" + bytes.fromhex(IPXE_MAC.replace(":", ""))).ip == int(ack.yiaddr)


def test_proxy_mode_offers_boot_file_without_address_and_acks_on_4011(tmp_path):
    srv, rec = make_server(tmp_path, {**RAW, "mode": "proxy"})
    srv.send = rec
    feed(srv, OVMF_DISCOVER)
    offer, dest, rows = rec.sent[-1]
    assert offer.yiaddr == IPv4Address(0) and offer.siaddr == SERVER
    assert offer.option(60) == b"PXEClient" and offer.option(43) == b"\x06\x01\x08\xff"
    assert offer.file.rstrip(b"\0") == b"snponly.efi" and offer.option(51) is None
    assert offer.option(97) is not None  # the client's GUID echoed
    request = Packet.from_bytes(OVMF_DISCOVER)
    request = packet(((53, b"\x03"), *request.options[1:]), mac="52:54:00:ab:cd:ef",
                     ciaddr=IPv4Address("10.0.0.77"))  # fmt: skip
    feed(srv, request, src=("10.0.0.77", 68), pxe_port=True)
    ack, dest, rows = rec.sent[-1]
    assert ack.message_type == MessageType.ACK and dest == ("10.0.0.77", 68)
    assert rows == []  # proxyDHCP never leases
    feed(srv, packet(((53, b"\x01"),)))  # a plain OS client: the other server's job
    assert len(rec.sent) == 2


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
    feed(server, data, src=("10.0.0.99", 68))
    assert server.send.sent == []
    assert server.stats["dropped_malformed"] == 1
    assert server.leases.query() == []
