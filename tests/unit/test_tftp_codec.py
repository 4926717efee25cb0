"""TFTP codec: annotated golden datagrams both ways, a malformed corpus, property tests."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netboot.tftp.codec import (
    Ack,
    Data,
    Error,
    ErrorCode,
    MalformedPacket,
    OptionAck,
    ReadRequest,
    WriteRequest,
    decode,
    encode,
)

# --- golden datagrams (RFC 1350 section 5, RFC 2347) ---------------------------------

GOLDEN = [
    pytest.param(
        b"\x00\x01"  # opcode 1: RRQ
        b"pxelinux.0\x00"  # filename
        b"octet\x00",  # mode
        ReadRequest("pxelinux.0", "octet", {}),
        id="rrq-plain",
    ),
    pytest.param(
        b"\x00\x01"  # RRQ
        b"/boot/ipxe.efi\x00"
        b"octet\x00"
        b"blksize\x001468\x00"  # RFC 2348
        b"tsize\x000\x00",  # RFC 2349
        ReadRequest("/boot/ipxe.efi", "octet", {"blksize": "1468", "tsize": "0"}),
        id="rrq-options",
    ),
    pytest.param(
        b"\x00\x02upload.bin\x00netascii\x00",
        WriteRequest("upload.bin", "netascii", {}),
        id="wrq",
    ),
    pytest.param(b"\x00\x03\x00\x01abc", Data(1, b"abc"), id="data-1"),
    pytest.param(b"\x00\x03\xff\xff", Data(65535, b""), id="data-empty-last"),
    pytest.param(b"\x00\x04\x00\x00", Ack(0), id="ack-0-for-oack"),
    pytest.param(b"\x00\x04\x12\x34", Ack(0x1234), id="ack"),
    pytest.param(
        b"\x00\x05\x00\x01file not found\x00",
        Error(ErrorCode.FILE_NOT_FOUND, "file not found"),
        id="error-1",
    ),
    pytest.param(
        b"\x00\x06blksize\x001468\x00tsize\x001048576\x00",
        OptionAck({"blksize": "1468", "tsize": "1048576"}),
        id="oack",
    ),
]


@pytest.mark.parametrize(("wire", "packet"), GOLDEN)
def test_golden_datagram_decodes_to_packet(wire: bytes, packet: object) -> None:
    assert decode(wire) == packet


@pytest.mark.parametrize(("wire", "packet"), GOLDEN)
def test_golden_packet_encodes_to_datagram(wire: bytes, packet: object) -> None:
    assert encode(packet) == wire


def test_mode_and_option_names_are_lowercased_values_kept() -> None:
    # RFC 1350 section 5 and RFC 2347: mode and option names are case-insensitive.
    wire = b"\x00\x01X\x00OCTET\x00BlkSize\x001024\x00Tsize\x000\x00"
    assert decode(wire) == ReadRequest("X", "octet", {"blksize": "1024", "tsize": "0"})


def test_request_padded_with_nuls_is_accepted() -> None:
    # Firmware quirk: some PXE ROMs pad the RRQ with NULs after the last string.
    wire = b"\x00\x01pxelinux.0\x00octet\x00tsize\x000\x00\x00\x00\x00"
    assert decode(wire) == ReadRequest("pxelinux.0", "octet", {"tsize": "0"})


def test_non_utf8_filename_survives_a_round_trip() -> None:
    wire = b"\x00\x01caf\xe9\xff.bin\x00octet\x00"
    packet = decode(wire)
    assert isinstance(packet, ReadRequest)
    assert encode(packet) == wire


def test_error_codes_match_rfc_table() -> None:
    assert [int(code) for code in ErrorCode] == list(range(9))
    assert ErrorCode.ACCESS_VIOLATION == 2
    assert ErrorCode.OPTION_REFUSED == 8


# --- malformed corpus ----------------------------------------------------------------

MALFORMED = [
    pytest.param(b"", 0, id="empty"),
    pytest.param(b"\x00", 1, id="one-byte"),
    pytest.param(b"\x00\x00", 0, id="opcode-0"),
    pytest.param(b"\x00\x07rest", 0, id="opcode-7"),
    pytest.param(b"\x00\x01pxelinux.0", 2, id="rrq-filename-unterminated"),
    pytest.param(b"\x00\x01pxelinux.0\x00", 13, id="rrq-no-mode"),
    pytest.param(b"\x00\x01f\x00\x00", 4, id="rrq-empty-mode"),
    pytest.param(b"\x00\x01f\x00octet\x00blksize\x00", 18, id="option-without-value"),
    pytest.param(b"\x00\x01f\x00octet\x00blksize\x00512", 18, id="option-value-unterminated"),
    pytest.param(b"\x00\x01f\x00octet\x00\x00512\x00", 10, id="empty-option-name-with-value"),
    pytest.param(b"\x00\x01f\x00octet\x00tsize\x000\x00TSIZE\x001\x00", 18, id="duplicate-option"),
    pytest.param(b"\x00\x03\x00", 3, id="data-short"),
    pytest.param(b"\x00\x04\x00", 3, id="ack-short"),
    pytest.param(b"\x00\x04\x00\x01\x00", 4, id="ack-long"),
    pytest.param(b"\x00\x05\x00", 3, id="error-short"),
    pytest.param(b"\x00\x05\x00\x01oops", 4, id="error-unterminated"),
    pytest.param(b"\x00\x05\x00\x01oops\x00junk", 9, id="error-trailing-bytes"),
    pytest.param(b"\x00\x06blksize\x00", 10, id="oack-odd-strings"),
    pytest.param(b"\x00\x06blksize\x00512\x00\x00", 14, id="oack-padding-not-allowed"),
]


@pytest.mark.parametrize(("wire", "offset"), MALFORMED)
def test_malformed_datagram_raises_with_offset(wire: bytes, offset: int) -> None:
    with pytest.raises(MalformedPacket) as caught:
        decode(wire)
    assert caught.value.offset == offset
    assert f"[offset={offset}]" in str(caught.value)


@pytest.mark.parametrize(
    "packet",
    [
        ReadRequest("a\x00b", "octet"),
        ReadRequest("a", ""),
        ReadRequest("a", "octet", {"": "1"}),
        ReadRequest("a", "octet", {"tsize": "0\x00"}),
        Data(65536, b""),
        Ack(-1),
        Error(70000, "x"),
    ],
)
def test_unencodable_packet_raises_value_error(packet: object) -> None:
    with pytest.raises(ValueError):
        encode(packet)


# --- properties ----------------------------------------------------------------------

_text = st.text(st.characters(exclude_characters="\x00", exclude_categories=("Cs",)))
_lower = _text.map(str.lower).filter(lambda s: s == s.lower())
_u16 = st.integers(0, 0xFFFF)
_options = st.dictionaries(_lower.filter(bool), _text, max_size=5)

packets = st.one_of(
    st.builds(ReadRequest, _text, _lower.filter(bool), _options),
    st.builds(WriteRequest, _text, _lower.filter(bool), _options),
    st.builds(Data, _u16, st.binary(max_size=1500)),
    st.builds(Ack, _u16),
    st.builds(Error, _u16, _text),
    st.builds(OptionAck, _options),
)


@given(packets)
def test_every_packet_survives_encode_then_decode(packet: object) -> None:
    assert decode(encode(packet)) == packet


@given(st.binary(max_size=600))
def test_random_bytes_decode_or_raise_malformed_packet(data: bytes) -> None:
    try:
        packet = decode(data)
    except MalformedPacket:
        return
    assert isinstance(packet, ReadRequest | WriteRequest | Data | Ack | Error | OptionAck)


@given(st.integers(0, 8), st.binary(max_size=600))
def test_random_bodies_after_a_plausible_opcode_decode_or_raise(opcode: int, body: bytes) -> None:
    with contextlib.suppress(MalformedPacket):
        decode(opcode.to_bytes(2, "big") + body)


@given(st.binary(min_size=0, max_size=200).filter(lambda b: b"\0" not in b))
def test_any_filename_octets_round_trip(name: bytes) -> None:
    wire = b"\x00\x01" + name + b"\x00octet\x00"
    assert encode(decode(wire)) == wire
