"""Conflict and rogue-server guards without the network: ARP replies are matched to
outstanding probes only; offers from other servers become alarms, ours do not."""

from __future__ import annotations

import struct

from twisted.internet.task import Clock

from netboot.dhcp.arp import ArpProber
from netboot.dhcp.rogue import RogueDetector, RogueOffer

IP = int.from_bytes(bytes([10, 0, 0, 10]), "big")
CLIENT = "52:54:00:00:00:01"


def arp_reply(sender_mac: str, sender_ip: int) -> bytes:
    sha = bytes.fromhex(sender_mac.replace(":", ""))
    arp = struct.pack(
        "!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 2, sha, sender_ip.to_bytes(4, "big"), bytes(6),
        bytes(4),
    )  # fmt: skip
    return b"\xff" * 6 + sha + b"\x08\x06" + arp


def prober(conflicts: list, now: list[float]) -> ArpProber:
    p = ArpProber(Clock(), [], lambda *c: conflicts.append(c), clock=lambda: now[0])
    p._pending[IP] = ("br0", CLIENT, now[0] + 1.0)  # as probe() records it
    return p


def test_a_reply_from_someone_else_within_the_window_is_a_conflict():
    conflicts, now = [], [100.0]
    p = prober(conflicts, now)
    p.frame("br0", arp_reply("aa:bb:cc:dd:ee:ff", IP))
    assert conflicts == [("br0", IP, "aa:bb:cc:dd:ee:ff")]


def test_replies_from_the_client_itself_late_or_for_other_addresses_are_ignored():
    conflicts, now = [], [100.0]
    p = prober(conflicts, now)
    p.frame("br0", arp_reply(CLIENT, IP))  # the client already holds it: fine
    p.frame("br0", arp_reply("aa:bb:cc:dd:ee:ff", IP + 1))  # not probed
    p.frame("br1", arp_reply("aa:bb:cc:dd:ee:ff", IP))  # another interface
    p.frame("br0", b"\x00" * 20)  # runt
    now[0] = 102.0
    p.frame("br0", arp_reply("aa:bb:cc:dd:ee:ff", IP))  # after the window
    assert conflicts == []


def test_offers_from_other_servers_raise_alarms_and_ours_do_not():
    alarms = []
    detector = RogueDetector(
        Clock(), ["br0"], {"10.0.0.1"}, 300, alarms.append, lambda: 5.0, probe=lambda i: []
    )
    detector._report(
        [
            ("br0", RogueOffer("10.0.0.1", "02:00:00:00:00:01", "10.0.0.50"), None),
            ("br0", RogueOffer("10.0.0.2", "02:00:00:00:00:02", "10.0.0.60"), None),
            ("br0", None, "PermissionError()"),
        ]
    )
    [alarm] = alarms
    assert (alarm.kind, alarm.server_ip, alarm.server_mac, alarm.interface, alarm.time) == (
        "rogue-dhcp",
        "10.0.0.2",
        "02:00:00:00:00:02",
        "br0",
        5.0,
    )
    assert "10.0.0.60" in alarm.message
