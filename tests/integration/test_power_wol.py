"""Wake-on-LAN magic packets leave on the right interface: captured with raw sockets in
lab namespaces. The lab namespace plays the appliance: its bridge (the provisioning
segment, host A behind it) and a second link to another segment (host B). A packet
meant for one segment must not show up on the other.
"""

from __future__ import annotations

import select
import socket
import struct
import time
from collections.abc import Iterator

import pytest
from pyroute2 import NetNS
from pyroute2.netns import popns, pushns

from netboot.lab.netns import LabNetwork
from netboot.power.base import PowerError
from netboot.power.wol import WakeOnLanDriver, magic_packet

MAC = "52:54:00:0b:0c:0d"
ETH_P_ALL = 0x0003


class Segments:
    def __init__(self, lab: LabNetwork) -> None:
        self.lab = lab
        self.a = lab.add_host("10.66.0.50/24")  # behind the bridge nbbr0
        # A second segment: lab <-> host B over a veth pair, 10.77.0.0/24.
        self.b_name = f"{lab.name}-b"
        lab._create(self.b_name)
        with NetNS(lab.name) as ns:
            ns.link(
                "add",
                ifname="nbseg2",
                kind="veth",
                peer={"ifname": "eth0", "net_ns_fd": self.b_name},
            )
            idx = ns.link_lookup(ifname="nbseg2")[0]
            ns.addr("add", index=idx, address="10.77.0.1", prefixlen=24)
            ns.link("set", index=idx, state="up")
        with NetNS(self.b_name) as ns:
            idx = ns.link_lookup(ifname="eth0")[0]
            ns.addr("add", index=idx, address="10.77.0.2", prefixlen=24)
            ns.link("set", index=idx, state="up")


@pytest.fixture
def segments(lab: LabNetwork) -> Iterator[Segments]:
    yield Segments(lab)


def sniffer(namespace: str) -> socket.socket:
    """A raw AF_PACKET socket on eth0 inside ``namespace`` (it stays in that namespace)."""
    pushns(namespace)
    try:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        sock.bind(("eth0", 0))
    finally:
        popns()
    return sock


def magic_frames(sock: socket.socket, wait: float, first: bool = True) -> list[bytes]:
    """Ethernet frames carrying a UDP/9 magic packet, seen within ``wait`` seconds
    (returning at the first one unless ``first`` is false)."""
    found = []
    deadline = time.monotonic() + wait
    while (left := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select([sock], [], [], left)
        if not ready:
            break
        frame = sock.recv(2048)
        if len(frame) < 14 + 20 + 8 or frame[12:14] != b"\x08\x00" or frame[23] != 17:
            continue
        ihl = (frame[14] & 0x0F) * 4
        dport = struct.unpack("!H", frame[14 + ihl + 2 : 14 + ihl + 4])[0]
        if dport == 9:
            found.append(frame)
            if first:
                break
    return found


def send_from_appliance(lab: LabNetwork, driver: WakeOnLanDriver, params: dict) -> None:
    pushns(lab.name)  # the socket is created, bound and used inside the lab namespace
    try:
        out = []
        driver.on(params).addBoth(out.append)
    finally:
        popns()
    if out and out[0] is not None:
        out[0].raiseException()


def test_magic_packet_goes_out_on_the_provisioning_interface_only(segments):
    on_a, on_b = sniffer(segments.a.name), sniffer(segments.b_name)
    try:
        driver = WakeOnLanDriver(None, interfaces=("nbbr0",))
        send_from_appliance(segments.lab, driver, {"mac_address": MAC.upper()})
        frames = magic_frames(on_a, 5)
        assert frames, "host A on the provisioning bridge saw no magic packet"
        frame = frames[0]
        assert frame[:6] == b"\xff" * 6  # Ethernet broadcast
        ihl = (frame[14] & 0x0F) * 4
        assert frame[30:34] == socket.inet_aton("255.255.255.255")
        assert frame[14 + ihl + 8 :][:102] == magic_packet(MAC)
        assert magic_frames(on_b, 1, first=False) == []
    finally:
        on_a.close()
        on_b.close()


def test_a_nodes_own_interface_overrides_the_default(segments):
    on_a, on_b = sniffer(segments.a.name), sniffer(segments.b_name)
    try:
        driver = WakeOnLanDriver(None, interfaces=("nbbr0",))
        send_from_appliance(segments.lab, driver, {"mac_address": MAC, "interface": "nbseg2"})
        assert magic_frames(on_b, 5)
        assert magic_frames(on_a, 1, first=False) == []
    finally:
        on_a.close()
        on_b.close()


def test_directed_broadcast_is_routed_to_its_subnet(segments):
    on_a, on_b = sniffer(segments.a.name), sniffer(segments.b_name)
    try:
        driver = WakeOnLanDriver(None)  # no provisioning interface known
        send_from_appliance(
            segments.lab, driver, {"mac_address": MAC, "broadcast_ip": "10.77.0.255"}
        )
        frames = magic_frames(on_b, 5)
        assert frames and frames[0][30:34] == socket.inet_aton("10.77.0.255")
        assert magic_frames(on_a, 1, first=False) == []
    finally:
        on_a.close()
        on_b.close()


def test_a_missing_interface_is_a_clear_error(segments):
    driver = WakeOnLanDriver(None, interfaces=("nbnothere",))
    with pytest.raises(PowerError, match="nbnothere: no such interface"):
        send_from_appliance(segments.lab, driver, {"mac_address": MAC})
