"""netboot.dhcp.options: typed encode/decode per table entry, RFC 3397 search lists,
and the promise that bad values raise OptionError and nothing else."""

from __future__ import annotations

import contextlib
from ipaddress import IPv4Address

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netboot.dhcp import options
from netboot.dhcp.options import OPTIONS, OptionError, code_of, decode, encode, name

IP = IPv4Address

# RFC 3397 §3, the worked example: "eng.apple.com." then "marketing.apple.com.",
# the second ending in a pointer to offset 4 ("apple").
RFC3397_EXAMPLE = b"\x03eng\x05apple\x03com\x00\x09marketing\xc0\x04"


def test_table_covers_the_options_a_boot_server_handles() -> None:
    required = {1, 3, 6, 12, 15, 28, 42, 43, 50, 51, 52, 53, 54, 55, 57, 58, 59, 60, 61}
    required |= {66, 67, 77, 82, 93, 94, 97, 119, 175}
    assert required <= OPTIONS.keys()


def test_names_and_codes_are_inverse() -> None:
    assert name(67) == "bootfile_name" and code_of("bootfile_name") == 67
    assert name(93) == "client_arch" and code_of("client_arch") == 93
    assert all(code_of(name(code)) == code for code in OPTIONS)
    assert name(200) == "option_200"


TYPED = [
    (1, IP("255.255.255.0"), b"\xff\xff\xff\x00"),
    (2, -3600, b"\xff\xff\xf1\xf0"),
    (3, (IP("10.0.0.1"),), b"\x0a\x00\x00\x01"),
    (6, (IP("10.0.0.1"), IP("9.9.9.9")), b"\x0a\x00\x00\x01\x09\x09\x09\x09"),
    (12, "node-1", b"node-1"),
    (51, 3600, b"\x00\x00\x0e\x10"),
    (53, 5, b"\x05"),
    (55, (1, 3, 6, 66, 67), b"\x01\x03\x06\x42\x43"),
    (57, 1472, b"\x05\xc0"),
    (60, "PXEClient:Arch:00007:UNDI:003000", b"PXEClient:Arch:00007:UNDI:003000"),
    (61, b"\x01\x52\x54\x00\x12\x34\x56", b"\x01\x52\x54\x00\x12\x34\x56"),
    (67, "http://10.0.0.1/boot.ipxe", b"http://10.0.0.1/boot.ipxe"),
    (82, ((1, b"eth0"), (2, b"\x01")), b"\x01\x04eth0\x02\x01\x01"),
    (93, (7,), b"\x00\x07"),
    (93, (0, 16), b"\x00\x00\x00\x10"),
    (94, (1, 3, 0), b"\x01\x03\x00"),
    (119, ("eng.apple.com", "marketing.apple.com"), RFC3397_EXAMPLE),
    (175, b"\x13\x01\x01", b"\x13\x01\x01"),
    (200, b"unknown", b"unknown"),
]


@pytest.mark.parametrize("code, value, raw", TYPED, ids=[f"{c}-{name(c)}" for c, _, _ in TYPED])
def test_typed_values_encode_to_wire_and_back(code: int, value: object, raw: bytes) -> None:
    assert encode(code, value) == raw
    assert decode(code, raw) == value


def test_encoders_accept_the_forms_callers_have_at_hand() -> None:
    assert encode(54, "192.168.50.1") == encode(54, IP("192.168.50.1")) == b"\xc0\xa8\x32\x01"
    assert encode(3, ["10.0.0.1"]) == b"\x0a\x00\x00\x01"
    assert encode(93, iter([7])) == b"\x00\x07"
    assert encode(119, ["lab.example.", "example"]) == b"\x03lab\x07example\x00\xc0\x04"


def test_text_decode_drops_a_trailing_nul_some_firmware_sends() -> None:
    assert decode(12, b"node-1\x00") == "node-1"


def test_domain_search_compression_is_case_insensitive_and_root_is_allowed() -> None:
    assert encode(119, ["a.LAB", "b.lab"]) == b"\x01a\x03LAB\x00\x01b\xc0\x02"
    assert decode(119, b"\x00") == ("",)


BAD_WIRE = [
    (1, b"\x01\x02\x03", "4 octets"),
    (3, b"", "non-empty multiple of 4"),
    (6, b"\x01" * 5, "non-empty multiple of 4"),
    (57, b"\x05", "u16 is 2 octets"),
    (51, b"\x00\x00\x0e", "u32 is 4 octets"),
    (93, b"\x00", "even number"),
    (93, b"", "even number"),
    (12, b"\xff\xfe", "not UTF-8"),
    (82, b"\x01\x05ab", "truncated sub-option 1"),
    (82, b"\x01", "truncated sub-option 1"),
    (119, b"\xc0\x00", "does not point backwards"),
    (119, b"\x01a\xc0\x00", "does not point backwards"),  # a loop back to itself
    (119, b"\x01a\x00\xc0\x05", "does not point backwards"),
    (119, b"\x03ab", "runs past"),
    (119, b"\x01a", "runs past"),
    (119, b"\x01a\xc0", "truncated compression pointer"),
    (119, b"\x41a\x00", "reserved label type"),
    (119, b"\x01\xff\x00", "non-ASCII"),
    (119, (b"\x3f" + b"a" * 63) * 4 + b"\x00", "longer than 255"),
]


@pytest.mark.parametrize("code, raw, complaint", BAD_WIRE)
def test_malformed_values_raise_option_error(code: int, raw: bytes, complaint: str) -> None:
    with pytest.raises(OptionError, match=complaint):
        decode(code, raw)


BAD_VALUES = [
    (1, "not-an-address"),
    (3, []),
    (3, "10.0.0.1"),
    (57, 70000),
    (51, -1),
    (55, 5),
    (55, [256]),
    (93, [70000]),
    (12, b"bytes"),
    (61, "text"),
    (82, [(1, b"x" * 256)]),
    (119, "one.name"),
    (119, ["a" * 64 + ".com"]),
    (119, ["a..com"]),
    (119, ["ü.com"]),
    (119, [5]),
    (119, [("a" * 60 + ".") * 5]),
]


@pytest.mark.parametrize("code, value", BAD_VALUES)
def test_unencodable_values_raise_option_error(code: int, value: object) -> None:
    with pytest.raises(OptionError):
        encode(code, value)


labels = st.text("abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=12)
domain_names = st.lists(labels, min_size=1, max_size=4).map(".".join)


@given(st.lists(domain_names, max_size=6))
def test_domain_search_lists_round_trip(names: list[str]) -> None:
    assert decode(119, encode(119, names)) == tuple(names)


@given(st.sampled_from(sorted(OPTIONS)), st.binary(max_size=300))
def test_decoding_random_bytes_raises_only_option_error(code: int, raw: bytes) -> None:
    with contextlib.suppress(OptionError):
        options.decode(code, raw)
