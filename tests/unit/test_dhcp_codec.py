"""netboot.dhcp.codec: golden wire fixtures both ways, scapy as an independent oracle,
a malformed corpus, and property tests (round trip; random bytes never crash)."""

from __future__ import annotations

import contextlib
import pickle
from ipaddress import IPv4Address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.fields import StrField
from scapy.layers.dhcp import BOOTP, DHCP, DHCPOptions, DHCPRevOptions

from netboot.dhcp.codec import (
    ACK,
    DISCOVER,
    NAK,
    OFFER,
    MalformedPacket,
    MessageType,
    Packet,
    make_reply,
)
from tests.unit.fixtures_dhcp import (
    IPXE_BIOS_DISCOVER,
    IPXE_FEATURES,
    IPXE_MAC,
    IPXE_OFFER,
    IPXE_PRL,
    IPXE_UUID_WIRE,
    OVMF_DISCOVER,
    OVMF_PRL,
    OVMF_UUID_WIRE,
    packet,
)

SERVER = IPv4Address("192.168.50.1")
BASE = IPXE_BIOS_DISCOVER[:240]  # valid fixed header + magic cookie, no options
ZERO = IPv4Address(0)


# --- golden fixtures ------------------------------------------------------------


def test_ipxe_bios_discover_decodes_to_the_fields_ipxe_sends() -> None:
    p = Packet.from_bytes(IPXE_BIOS_DISCOVER)
    assert (p.op, p.htype, p.hlen, p.hops) == (1, 1, 6, 0)
    assert (p.xid, p.secs, p.flags) == (0x5A1E2B3C, 4, 0x8000)
    assert (p.ciaddr, p.yiaddr, p.siaddr, p.giaddr) == (ZERO, ZERO, ZERO, ZERO)
    assert p.mac == IPXE_MAC
    assert p.chaddr == bytes.fromhex("525400123456") + bytes(10)
    assert p.sname == bytes(64) and p.file == bytes(128)
    assert p.message_type == DISCOVER
    assert p.options == (
        (53, b"\x01"),
        (57, b"\x05\xc0"),
        (93, b"\x00\x00"),
        (94, b"\x01\x02\x01"),
        (60, b"PXEClient:Arch:00000:UNDI:002001"),
        (77, b"iPXE"),
        (55, bytes(IPXE_PRL)),
        (175, IPXE_FEATURES),
        (61, b"\x01" + bytes.fromhex("525400123456")),
        (97, b"\x00" + IPXE_UUID_WIRE),
    )


def test_ovmf_discover_decodes_without_client_id_or_user_class() -> None:
    p = Packet.from_bytes(OVMF_DISCOVER)
    assert p.mac == "52:54:00:ab:cd:ef"
    assert p.xid == 0x0BADF00D
    assert [code for code, _ in p.options] == [53, 57, 55, 97, 94, 93, 60]
    assert p.option(93) == b"\x00\x07"
    assert p.option(55) == bytes(OVMF_PRL)
    assert p.option(97) == b"\x00" + OVMF_UUID_WIRE
    assert p.option(61) is None and p.option(77) is None


@pytest.mark.parametrize("wire", [IPXE_BIOS_DISCOVER, OVMF_DISCOVER, IPXE_OFFER])
def test_golden_packets_reencode_byte_for_byte(wire: bytes) -> None:
    assert Packet.from_bytes(wire).to_bytes() == wire


def test_offer_from_make_reply_matches_golden_bytes() -> None:
    request = Packet.from_bytes(IPXE_BIOS_DISCOVER)
    offer = make_reply(
        request,
        message_type=OFFER,
        yiaddr="192.168.50.100",
        siaddr=SERVER,
        options=[
            (54, SERVER.packed),
            (51, (3600).to_bytes(4, "big")),
            (1, IPv4Address("255.255.255.0").packed),
            (3, SERVER.packed),
            (67, b"undionly.kpxe"),
        ],
    )
    assert offer.to_bytes() == IPXE_OFFER


def test_scapy_builds_the_same_bytes_as_the_golden_ipxe_discover() -> None:
    built = BOOTP(
        op=1,
        xid=0x5A1E2B3C,
        secs=4,
        flags=0x8000,
        chaddr=bytes.fromhex("525400123456"),
    ) / DHCP(
        options=[
            ("message-type", "discover"),
            ("max_dhcp_size", 1472),
            ("pxe_client_architecture", b"\x00\x00"),
            ("pxe_client_network_interface", b"\x01\x02\x01"),
            ("vendor_class_id", b"PXEClient:Arch:00000:UNDI:002001"),
            ("user_class", b"iPXE"),
            ("param_req_list", list(IPXE_PRL)),
            (175, IPXE_FEATURES),
            ("client_id", b"\x01" + bytes.fromhex("525400123456")),
            ("pxe_client_machine_identifier", b"\x00" + IPXE_UUID_WIRE),
            "end",
        ]
    )
    assert bytes(built) == IPXE_BIOS_DISCOVER


# --- framing rules --------------------------------------------------------------


def test_missing_end_is_tolerated() -> None:
    assert Packet.from_bytes(BASE + b"\x35\x01\x01").options == ((53, b"\x01"),)


def test_bytes_after_end_are_ignored_even_if_garbage() -> None:
    assert Packet.from_bytes(BASE + b"\x35\x01\x01\xff\x0c\x10ab").options == ((53, b"\x01"),)


def test_pad_octets_are_skipped() -> None:
    wire = BASE + b"\x00\x00\x35\x01\x03\x00\x0c\x02ab\xff"
    assert Packet.from_bytes(wire).options == ((53, b"\x03"), (12, b"ab"))


def test_repeated_option_instances_concatenate_at_first_position() -> None:
    # RFC 3396 §7
    wire = BASE + b"\x0c\x02ab\x35\x01\x01\x0c\x02cd\xff"
    assert Packet.from_bytes(wire).options == ((12, b"abcd"), (53, b"\x01"))


def test_long_option_is_split_into_255_octet_instances_and_rejoined() -> None:
    value = bytes(range(256)) * 2 + b"tail"  # 516 octets
    wire = packet(((53, b"\x01"), (43, value))).to_bytes()
    body = wire[240:]
    assert body[3:5] == b"\x2b\xff" and body[260:262] == b"\x2b\xff"
    assert body[517:519] == b"\x2b\x06" and body[525] == 0xFF
    assert Packet.from_bytes(wire).option(43) == value


def test_short_packets_are_padded_to_the_bootp_minimum() -> None:
    wire = packet(((53, b"\x01"),)).to_bytes()
    assert len(wire) == 300
    assert wire[240:244] == b"\x35\x01\x01\xff" and wire[244:] == bytes(56)


def test_option_overload_reads_file_then_sname_and_clears_them() -> None:
    # RFC 2131 §4.1, RFC 3396 §5: options field, then file, then sname.
    sname = (b"\x0f\x03lab\x0c\x02de\xff").ljust(64, b"\0")
    file = (b"\x0c\x03abc\xff").ljust(128, b"\0")
    wire = BASE[:44] + sname + file + BASE[236:] + b"\x35\x01\x01\x34\x01\x03\xff"
    p = Packet.from_bytes(wire)
    assert p.options == ((53, b"\x01"), (12, b"abcde"), (15, b"lab"))
    assert p.sname == bytes(64) and p.file == bytes(128)
    assert Packet.from_bytes(p.to_bytes()) == p


def test_option_overload_1_leaves_sname_alone_and_ignores_52_in_file() -> None:
    file = (b"\x34\x01\x02\x0c\x01x\xff").ljust(128, b"\0")
    sname = b"tftp.lab".ljust(64, b"\0")
    wire = BASE[:44] + sname + file + BASE[236:] + b"\x34\x01\x01\xff"
    p = Packet.from_bytes(wire)
    assert p.options == ((12, b"x"),)
    assert p.sname == sname and p.file == bytes(128)


def test_decode_accepts_bytearray_and_memoryview() -> None:
    expected = Packet.from_bytes(IPXE_BIOS_DISCOVER)
    assert Packet.from_bytes(bytearray(IPXE_BIOS_DISCOVER)) == expected
    assert Packet.from_bytes(memoryview(IPXE_BIOS_DISCOVER)) == expected


def test_accessors_mac_and_message_type() -> None:
    assert packet(mac="AA:BB:CC:00:11:22").mac == "aa:bb:cc:00:11:22"
    assert packet(hlen=0).mac == ""
    assert packet(((12, b"x"),)).message_type is None
    assert packet(((53, b"\x01\x02"),)).message_type is None
    assert packet(((53, b"\x08"),)).message_type == MessageType.INFORM
    assert packet(((53, b"\x01"),)).option(12) is None


def test_message_type_constants() -> None:
    assert [int(t) for t in MessageType] == [1, 2, 3, 4, 5, 6, 7, 8]
    assert (DISCOVER, OFFER, ACK, NAK) == (1, 2, 5, 6)


@pytest.mark.parametrize(
    "fields, complaint",
    [
        ({"chaddr": b"\x01" * 6}, "chaddr must be 16"),
        ({"sname": b"x"}, "sname must be 64"),
        ({"file": bytes(129)}, "file must be 128"),
        ({"xid": 2**32}, "out of range"),
        ({"options": ((52, b"\x01"),)}, "option code 52"),
        ({"options": ((0, b""),)}, "option code 0"),
        ({"options": ((255, b""),)}, "option code 255"),
    ],
)
def test_to_bytes_rejects_what_cannot_go_on_the_wire(fields: dict, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        packet(**fields).to_bytes()


# --- make_reply -----------------------------------------------------------------


def test_reply_copies_request_identity_and_zeroes_hops_and_secs() -> None:
    request = packet(xid=7, flags=0x8000, hops=2, secs=9, giaddr=IPv4Address("10.0.0.1"))
    reply = make_reply(request, message_type=OFFER, yiaddr="10.0.0.5", siaddr=SERVER, options=())
    assert (reply.op, reply.xid, reply.flags, reply.hops, reply.secs) == (2, 7, 0x8000, 0, 0)
    assert (reply.giaddr, reply.chaddr, reply.hlen) == (request.giaddr, request.chaddr, 6)
    assert (reply.yiaddr, reply.siaddr) == (IPv4Address("10.0.0.5"), SERVER)
    assert reply.options == ((53, b"\x02"),)


@pytest.mark.parametrize("message_type, echoed", [(ACK, True), (OFFER, False), (NAK, False)])
def test_reply_echoes_ciaddr_only_in_an_ack(message_type: int, echoed: bool) -> None:
    # RFC 2131 §4.3.1 table 3
    request = packet(ciaddr=IPv4Address("10.0.0.5"))
    reply = make_reply(request, message_type=message_type, yiaddr=0, siaddr=0, options=())
    assert reply.ciaddr == (request.ciaddr if echoed else ZERO)


def test_reply_puts_53_first_then_options_in_given_order_and_pads_fields() -> None:
    opts = [(67, b"boot"), (54, SERVER.packed), (1, b"\xff\xff\xff\x00")]
    reply = make_reply(
        packet(), message_type=ACK, yiaddr=0, siaddr=0, options=opts, file=b"f", sname=b"s"
    )
    assert reply.options == ((53, b"\x05"), *opts)
    assert reply.file == b"f" + bytes(127) and reply.sname == b"s" + bytes(63)


def test_reply_refuses_option_53_in_options_and_oversized_file() -> None:
    with pytest.raises(ValueError, match="option 53"):
        make_reply(packet(), message_type=ACK, yiaddr=0, siaddr=0, options=[(53, b"\x05")])
    with pytest.raises(ValueError, match="file is 129 octets"):
        make_reply(packet(), message_type=ACK, yiaddr=0, siaddr=0, options=(), file=bytes(129))


# --- malformed corpus -----------------------------------------------------------


def _with_hlen(hlen: int) -> bytes:
    return BASE[:2] + bytes((hlen,)) + BASE[3:] + b"\xff"


MALFORMED = {
    "empty": (b"", "packet too short: 0 < 240 octets", 0),
    "one octet short of the header": (BASE[:239], "packet too short: 239 < 240 octets", 239),
    "bad magic cookie": (BASE[:236] + b"\x63\x82\x53\x64\xff", "bad magic cookie", 236),
    "plain BOOTP, no cookie": (BASE[:236] + bytes(64), "bad magic cookie", 236),
    "hlen 17": (_with_hlen(17), "hlen 17 exceeds the 16-octet chaddr", 2),
    "hlen 255": (_with_hlen(255), "hlen 255 exceeds the 16-octet chaddr", 2),
    "code without length": (BASE + b"\x35", "truncated option 53", 240),
    "length past the end": (BASE + b"\x35\x05\x01", "truncated option 53", 240),
    "after pads": (BASE + b"\x00\x00\x00\x35\x05\x01", "truncated option 53", 243),
    "second option": (BASE + b"\x35\x01\x01\x0c\x10abc", "truncated option 12", 243),
    "overload 4": (BASE + b"\x34\x01\x04\xff", "bad option overload value 04", 240),
    "overload empty": (BASE + b"\x35\x01\x01\x34\x00\xff", "bad option overload value empty", 243),
    "overload 2 octets": (BASE + b"\x34\x02\x01\x01\xff", "bad option overload value 0101", 240),
    "overload, file truncated": (
        BASE[:108] + b"\x0c\x7f" + bytes(126) + BASE[236:] + b"\x34\x01\x01\xff",
        "truncated option 12",
        108,
    ),
    "overload, sname truncated": (
        BASE[:44] + b"\x00\x0f\x40" + bytes(61) + BASE[108:] + b"\x34\x01\x02\xff",
        "truncated option 15",
        45,
    ),
}


@pytest.mark.parametrize("wire, reason, offset", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_packets_raise_with_reason_and_offset(
    wire: bytes, reason: str, offset: int
) -> None:
    with pytest.raises(MalformedPacket) as caught:
        Packet.from_bytes(wire)
    assert (caught.value.reason, caught.value.offset) == (reason, offset)
    assert isinstance(caught.value, ValueError)


def test_malformed_packet_str_names_reason_and_offset() -> None:
    with pytest.raises(MalformedPacket) as caught:
        Packet.from_bytes(BASE + b"\x00\x00\x00\x35\x05\x01")
    assert str(caught.value) == "truncated option 53 [offset=243]"


def test_malformed_packet_survives_pickling_for_logging_and_process_pools() -> None:
    error = pickle.loads(pickle.dumps(MalformedPacket("bad magic cookie", 236)))
    assert (error.reason, error.offset, str(error)) == (
        "bad magic cookie",
        236,
        "bad magic cookie [offset=236]",
    )


# --- properties -----------------------------------------------------------------

u8, u16, u32 = st.integers(0, 0xFF), st.integers(0, 0xFFFF), st.integers(0, 0xFFFF_FFFF)
addresses = u32.map(IPv4Address)
codes = st.integers(1, 254).filter(lambda code: code != 52)


def packets(option_codes: st.SearchStrategy[int] = codes, max_value: int = 600):
    options = st.lists(
        st.tuples(option_codes, st.binary(max_size=max_value)),
        unique_by=lambda option: option[0],
        max_size=12,
    ).map(tuple)
    return st.builds(
        Packet,
        op=u8,
        htype=u8,
        hlen=st.integers(0, 16),
        hops=u8,
        xid=u32,
        secs=u16,
        flags=u16,
        ciaddr=addresses,
        yiaddr=addresses,
        siaddr=addresses,
        giaddr=addresses,
        chaddr=st.binary(min_size=16, max_size=16),
        sname=st.binary(min_size=64, max_size=64),
        file=st.binary(min_size=128, max_size=128),
        options=options,
    )


@given(packets())
def test_any_valid_packet_round_trips(p: Packet) -> None:
    assert Packet.from_bytes(p.to_bytes()) == p


@given(st.binary(max_size=700))
def test_random_bytes_raise_nothing_but_malformed_packet(data: bytes) -> None:
    with contextlib.suppress(MalformedPacket):
        Packet.from_bytes(data)


def _render(options: list[tuple[int, bytes]]) -> bytes:
    return b"".join(
        bytes((code,)) if code in (0, 255) else bytes((code, len(value))) + value
        for code, value in options
    )


# Option streams: mostly well-formed TLVs with pads and ENDs, random garbage appended.
streams = st.builds(
    bytes.__add__,
    st.lists(st.tuples(u8, st.binary(max_size=24)), max_size=8).map(_render),
    st.binary(max_size=3),
)
overloads = st.sampled_from(
    [b"", b"\x34\x01\x01", b"\x34\x01\x02", b"\x34\x01\x03", b"\x34\x01\x09"]
)


@given(streams, streams, overloads, streams)
def test_random_option_areas_decode_to_a_fixed_point_or_raise(
    sname: bytes, file: bytes, overload: bytes, options: bytes
) -> None:
    sname, file = sname[:64].ljust(64, b"\0"), file[:128].ljust(128, b"\0")
    wire = BASE[:44] + sname + file + BASE[236:] + overload + options
    try:
        p = Packet.from_bytes(wire)
    except MalformedPacket:
        return
    assert Packet.from_bytes(p.to_bytes()) == p


# --- scapy as an independent oracle ---------------------------------------------

# Codes scapy dissects as raw strings (typed scapy fields reject odd lengths).
SCAPY_RAW_CODES = [
    code
    for code in range(1, 255)
    if code != 52 and (code not in DHCPOptions or isinstance(DHCPOptions[code], str | StrField))
]


def _scapy_options(scapy_packet: BOOTP) -> tuple[tuple[int, bytes], ...]:
    """scapy's dissected options as (code, raw), instances joined per RFC 3396."""
    merged: dict[int, bytes] = {}
    for item in scapy_packet[DHCP].options:
        if item in ("end", "pad"):
            continue
        assert isinstance(item, tuple), f"scapy could not dissect {item!r}"
        label, *values = item
        if isinstance(label, int):
            code, raw = label, values[0]
        else:
            code, field = DHCPRevOptions[label]
            raw = b"".join(field.addfield(None, b"", v) for v in values) if field else values[0]
        merged[code] = merged.get(code, b"") + raw
    return tuple(merged.items())


def _assert_same_header(ours: Packet, theirs: BOOTP) -> None:
    assert (ours.op, ours.htype, ours.hlen, ours.hops) == (
        theirs.op,
        theirs.htype,
        theirs.hlen,
        theirs.hops,
    )
    assert (ours.xid, ours.secs, ours.flags) == (theirs.xid, theirs.secs, int(theirs.flags))
    assert [str(a) for a in (ours.ciaddr, ours.yiaddr, ours.siaddr, ours.giaddr)] == [
        theirs.ciaddr,
        theirs.yiaddr,
        theirs.siaddr,
        theirs.giaddr,
    ]
    assert (ours.chaddr, ours.sname, ours.file) == (theirs.chaddr, theirs.sname, theirs.file)


@pytest.mark.parametrize("wire", [IPXE_BIOS_DISCOVER, OVMF_DISCOVER, IPXE_OFFER])
def test_scapy_and_codec_agree_on_golden_packets(wire: bytes) -> None:
    ours, theirs = Packet.from_bytes(wire), BOOTP(wire)
    _assert_same_header(ours, theirs)
    assert ours.options == _scapy_options(theirs)


@settings(max_examples=60, deadline=None)
@given(packets(st.sampled_from(SCAPY_RAW_CODES)))
def test_packets_we_build_dissect_identically_in_scapy(p: Packet) -> None:
    theirs = BOOTP(p.to_bytes())
    _assert_same_header(p, theirs)
    assert _scapy_options(theirs) == p.options


@settings(max_examples=60, deadline=None)
@given(packets(st.sampled_from(SCAPY_RAW_CODES), max_value=255), st.booleans())
def test_packets_scapy_builds_decode_identically(p: Packet, with_end: bool) -> None:
    built = BOOTP(
        op=p.op,
        htype=p.htype,
        hlen=p.hlen,
        hops=p.hops,
        xid=p.xid,
        secs=p.secs,
        flags=p.flags,
        ciaddr=str(p.ciaddr),
        yiaddr=str(p.yiaddr),
        siaddr=str(p.siaddr),
        giaddr=str(p.giaddr),
        chaddr=p.chaddr,
        sname=p.sname,
        file=p.file,
    ) / DHCP(options=[*p.options, *(["end"] if with_end else [])])
    assert Packet.from_bytes(bytes(built)) == p
