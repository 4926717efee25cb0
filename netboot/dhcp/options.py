"""DHCPv4 option table: code -> (name, typed codec), and encode/decode/name helpers.

One declarative table in the spirit of scapy's DHCPOptions: RFC 2132 basics plus the
PXE (RFC 4578), relay (RFC 3046), search list (RFC 3397) and iPXE/pxelinux extras a
boot server deals with. The wire codec (codec.py) keeps values raw; this module turns
them into Python values and back. Unknown codes pass through as raw bytes.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address
from types import MappingProxyType
from typing import Any

__all__ = ["OPTIONS", "OptionError", "OptionType", "code_of", "decode", "encode", "name"]


class OptionError(ValueError):
    """An option value that does not fit its declared type."""


@dataclass(frozen=True, slots=True)
class OptionType:
    """How one kind of option value goes to and from the wire."""

    name: str
    encode: Callable[[Any], bytes]
    decode: Callable[[bytes], Any]


# --- scalar and list codecs -------------------------------------------------------


def _encode_ip(value: IPv4Address | str | int) -> bytes:
    try:
        return IPv4Address(value).packed
    except ValueError as exc:
        raise OptionError(str(exc)) from None


def _decode_ip(raw: bytes) -> IPv4Address:
    if len(raw) != 4:
        raise OptionError(f"an address is 4 octets, got {len(raw)}")
    return IPv4Address(raw)


def _encode_ips(values: Iterable[IPv4Address | str | int]) -> bytes:
    if isinstance(values, str | int | IPv4Address):
        raise OptionError("an address list needs a sequence of addresses, not one")
    raw = b"".join(_encode_ip(value) for value in values)
    if not raw:
        raise OptionError("an address list needs at least one address")  # RFC 2132 §3.5
    return raw


def _decode_ips(raw: bytes) -> tuple[IPv4Address, ...]:
    if not raw or len(raw) % 4:
        raise OptionError(f"an address list is a non-empty multiple of 4 octets, got {len(raw)}")
    return tuple(IPv4Address(raw[i : i + 4]) for i in range(0, len(raw), 4))


def _integer(fmt: str, label: str) -> OptionType:
    packer = struct.Struct(fmt)

    def encode_int(value: int) -> bytes:
        try:
            return packer.pack(value)
        except struct.error as exc:
            raise OptionError(f"{label}: {exc}") from None

    def decode_int(raw: bytes) -> int:
        if len(raw) != packer.size:
            raise OptionError(f"{label} is {packer.size} octets, got {len(raw)}")
        return packer.unpack(raw)[0]

    return OptionType(label, encode_int, decode_int)


def _encode_u8s(values: Iterable[int]) -> bytes:
    if isinstance(values, int | str):
        raise OptionError(f"u8 list needs a sequence of ints, got {type(values).__name__}")
    try:
        return bytes(values)
    except (ValueError, TypeError) as exc:
        raise OptionError(f"u8 list: {exc}") from None


def _decode_u8s(raw: bytes) -> tuple[int, ...]:
    return tuple(raw)


def _encode_u16s(values: Iterable[int]) -> bytes:
    try:
        values = tuple(values)
        return struct.pack(f"!{len(values)}H", *values)
    except (struct.error, TypeError) as exc:
        raise OptionError(f"u16 list: {exc}") from None


def _decode_u16s(raw: bytes) -> tuple[int, ...]:
    if not raw or len(raw) % 2:
        raise OptionError(f"a u16 list is a non-empty even number of octets, got {len(raw)}")
    return struct.unpack(f"!{len(raw) // 2}H", raw)


def _encode_text(value: str) -> bytes:
    if not isinstance(value, str):
        raise OptionError(f"text option needs str, got {type(value).__name__}")
    return value.encode("utf-8")


def _decode_text(raw: bytes) -> str:
    # RFC 2132 §2: text is not NUL-terminated, but some firmware sends one anyway.
    try:
        return raw.rstrip(b"\0").decode("utf-8")
    except UnicodeDecodeError as exc:
        raise OptionError(f"text option is not UTF-8: {exc}") from None


def _encode_raw(value: bytes) -> bytes:
    if not isinstance(value, bytes | bytearray | memoryview):
        raise OptionError(f"raw option needs bytes, got {type(value).__name__}")
    return bytes(value)


def _decode_raw(raw: bytes) -> bytes:
    return bytes(raw)


# --- RFC 3046 §2.0 relay agent sub-options: code, length, value ----------------


def _encode_suboptions(items: Sequence[tuple[int, bytes]]) -> bytes:
    out = bytearray()
    for code, value in items:
        if not 0 <= code <= 255 or len(value) > 255:
            raise OptionError(f"sub-option {code} of {len(value)} octets does not fit")
        out += bytes((code, len(value))) + value
    return bytes(out)


def _decode_suboptions(raw: bytes) -> tuple[tuple[int, bytes], ...]:
    items, pos = [], 0
    while pos < len(raw):
        if pos + 1 >= len(raw) or pos + 2 + raw[pos + 1] > len(raw):
            raise OptionError(f"truncated sub-option {raw[pos]} at {pos}")
        stop = pos + 2 + raw[pos + 1]
        items.append((raw[pos], bytes(raw[pos + 2 : stop])))
        pos = stop
    return tuple(items)


# --- RFC 3397 §2 domain search list: RFC 1035 §3.1 names, §4.1.4 compression ---
# Pointers are offsets into the whole (RFC 3396-concatenated) option value.


def _encode_domains(names: Sequence[str]) -> bytes:
    if isinstance(names, str):
        raise OptionError("domain search list needs a sequence of names, not one str")
    out = bytearray()
    suffix_at: dict[tuple[str, ...], int] = {}
    for domain in names:
        if not isinstance(domain, str):
            raise OptionError(f"domain name must be str, got {type(domain).__name__}")
        stripped = domain.rstrip(".")
        labels = stripped.split(".") if stripped else []
        if len(stripped) + 2 > 255:  # RFC 1035 §3.1: 255 octets including length octets
            raise OptionError(f"domain name too long: {domain!r}")
        for i, label in enumerate(labels):
            key = tuple(part.lower() for part in labels[i:])
            if key in suffix_at:
                out += struct.pack("!H", 0xC000 | suffix_at[key])
                break
            if len(out) < 0x4000:  # a pointer has 14 bits of offset
                suffix_at[key] = len(out)
            try:
                encoded = label.encode("ascii")
            except UnicodeEncodeError:
                raise OptionError(f"non-ASCII label in {domain!r} (use IDNA A-labels)") from None
            if not 0 < len(encoded) <= 63:
                raise OptionError(f"label of {len(encoded)} octets in {domain!r}")
            out.append(len(encoded))
            out += encoded
        else:
            out.append(0)
    return bytes(out)


def _decode_domains(raw: bytes) -> tuple[str, ...]:
    names, pos = [], 0
    while pos < len(raw):
        domain, pos = _read_name(raw, pos)
        names.append(domain)
    return tuple(names)


def _read_name(raw: bytes, pos: int) -> tuple[str, int]:
    """One name starting at pos; returns it and the offset after it in the stream."""
    labels: list[str] = []
    resume = -1  # where the stream continues once a pointer was followed
    lowest = pos  # pointers must go strictly below this: no loops
    length = 1
    while True:
        if pos >= len(raw):
            raise OptionError(f"domain name runs past the option at {pos}")
        size = raw[pos]
        if size == 0:
            return ".".join(labels), (resume if resume >= 0 else pos + 1)
        if size & 0xC0 == 0xC0:
            if pos + 1 >= len(raw):
                raise OptionError(f"truncated compression pointer at {pos}")
            target = ((size & 0x3F) << 8) | raw[pos + 1]
            if target >= lowest:
                raise OptionError(f"compression pointer at {pos} does not point backwards")
            if resume < 0:
                resume = pos + 2
            pos = lowest = target
            continue
        if size & 0xC0:
            raise OptionError(f"reserved label type {size:#x} at {pos}")
        if pos + 1 + size > len(raw):
            raise OptionError(f"label runs past the option at {pos}")
        length += size + 1
        if length > 255:
            raise OptionError("domain name longer than 255 octets")
        try:
            labels.append(raw[pos + 1 : pos + 1 + size].decode("ascii"))
        except UnicodeDecodeError:
            raise OptionError(f"non-ASCII label at {pos}") from None
        pos += 1 + size


IP = OptionType("ip", _encode_ip, _decode_ip)
IP_LIST = OptionType("ip list", _encode_ips, _decode_ips)
U8 = _integer("!B", "u8")
U16 = _integer("!H", "u16")
U32 = _integer("!I", "u32")
S32 = _integer("!i", "s32")
U8_LIST = OptionType("u8 list", _encode_u8s, _decode_u8s)
U16_LIST = OptionType("u16 list", _encode_u16s, _decode_u16s)
TEXT = OptionType("str", _encode_text, _decode_text)
RAW = OptionType("bytes", _encode_raw, _decode_raw)
SUBOPTIONS = OptionType("sub-options", _encode_suboptions, _decode_suboptions)
DOMAIN_LIST = OptionType("domain search list", _encode_domains, _decode_domains)

# code -> (name, type). RFC 2132 unless noted.
OPTIONS: Mapping[int, tuple[str, OptionType]] = MappingProxyType(
    {
        1: ("subnet_mask", IP),  # §3.3
        2: ("time_offset", S32),  # §3.4
        3: ("router", IP_LIST),  # §3.5
        4: ("time_server", IP_LIST),  # §3.6
        6: ("domain_name_server", IP_LIST),  # §3.8
        7: ("log_server", IP_LIST),  # §3.9
        12: ("hostname", TEXT),  # §3.14
        13: ("boot_file_size", U16),  # §3.15
        15: ("domain_name", TEXT),  # §3.17
        17: ("root_path", TEXT),  # §3.19
        26: ("interface_mtu", U16),  # §5.1
        28: ("broadcast_address", IP),  # §5.3
        42: ("ntp_servers", IP_LIST),  # §8.3
        43: ("vendor_specific", RAW),  # §8.4; PXE sub-options, built by the policy
        50: ("requested_ip", IP),  # §9.1
        51: ("lease_time", U32),  # §9.2
        52: ("overload", U8),  # §9.3
        53: ("message_type", U8),  # §9.6
        54: ("server_id", IP),  # §9.7
        55: ("parameter_request_list", U8_LIST),  # §9.8
        56: ("message", TEXT),  # §9.9
        57: ("max_message_size", U16),  # §9.10
        58: ("renewal_time", U32),  # §9.11
        59: ("rebinding_time", U32),  # §9.12
        60: ("vendor_class_id", TEXT),  # §9.13
        61: ("client_id", RAW),  # §9.14
        66: ("tftp_server_name", TEXT),  # §9.4
        67: ("bootfile_name", TEXT),  # §9.5
        77: ("user_class", RAW),  # RFC 3004 framed, or iPXE's bare "iPXE"
        80: ("rapid_commit", RAW),  # RFC 4039, empty
        82: ("relay_agent_information", SUBOPTIONS),  # RFC 3046
        93: ("client_arch", U16_LIST),  # RFC 4578 §2.1
        94: ("client_ndi", U8_LIST),  # RFC 4578 §2.2: type, major, minor
        97: ("client_machine_id", RAW),  # RFC 4578 §2.3: type 0 + 16-octet UUID
        118: ("subnet_selection", IP),  # RFC 3011
        119: ("domain_search", DOMAIN_LIST),  # RFC 3397
        121: ("classless_static_route", RAW),  # RFC 3442
        150: ("tftp_server_address", IP_LIST),  # RFC 5859
        175: ("ipxe_encapsulated", RAW),  # iPXE feature flags (etherboot sub-options)
        208: ("pxelinux_magic", RAW),  # RFC 5071 §4
        209: ("pxelinux_config_file", TEXT),  # RFC 5071 §5
        210: ("pxelinux_path_prefix", TEXT),  # RFC 5071 §6
        211: ("pxelinux_reboot_time", U32),  # RFC 5071 §7
    }
)
_CODES = MappingProxyType({entry[0]: code for code, entry in OPTIONS.items()})


def name(code: int) -> str:
    """Table name of `code`, or "option_<code>" for one the table does not know."""
    entry = OPTIONS.get(code)
    return entry[0] if entry else f"option_{code}"


def code_of(option_name: str) -> int:
    """Inverse of name(); raises KeyError for an unknown name."""
    return _CODES[option_name]


def encode(code: int, value: Any) -> bytes:
    """Typed value -> raw option value (no code/length octets). Raises OptionError."""
    entry = OPTIONS.get(code)
    return (entry[1] if entry else RAW).encode(value)


def decode(code: int, raw: bytes) -> Any:
    """Raw option value -> typed value; unknown codes give bytes. Raises OptionError."""
    entry = OPTIONS.get(code)
    return (entry[1] if entry else RAW).decode(raw)
