"""The RTM_NEWNEIGH request we frame by hand, decoded by pyroute2 (the oracle)."""

from __future__ import annotations

import socket
import struct

from pyroute2.netlink import NLM_F_ACK, NLM_F_CREATE, NLM_F_REPLACE, NLM_F_REQUEST
from pyroute2.netlink.rtnl import RTM_NEWNEIGH
from pyroute2.netlink.rtnl.ndmsg import ndmsg

from netboot.dhcp.arp import neigh_request, netlink_errors


def test_neigh_request_decodes_with_pyroute2_to_what_was_asked():
    data = neigh_request(77, 5, "10.66.0.123", "52:54:00:ab:cd:ef")
    msg = ndmsg(data)
    msg.decode()
    assert msg["header"]["length"] == len(data)
    assert msg["header"]["type"] == RTM_NEWNEIGH
    assert msg["header"]["flags"] == NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE
    assert msg["header"]["sequence_number"] == 77
    assert (msg["family"], msg["ifindex"], msg["state"]) == (socket.AF_INET, 5, 0x02)
    assert msg.get_attr("NDA_DST") == "10.66.0.123"
    assert msg.get_attr("NDA_LLADDR") == "52:54:00:ab:cd:ef"


def test_netlink_errors_reports_refusals_and_skips_acks():
    def error(seq: int, errno: int) -> bytes:
        body = struct.pack("=i", -errno) + bytes(16)  # errno + the request's header
        return struct.pack("=IHHII", 16 + len(body), 2, 0, seq, 0) + body

    assert netlink_errors(error(1, 0) + error(2, 19) + error(3, 0)) == [(2, 19)]
    assert netlink_errors(b"") == [] and netlink_errors(b"\x00" * 7) == []
    assert netlink_errors(struct.pack("=IHHII", 0, 2, 0, 9, 0)) == []  # a zero length stops
