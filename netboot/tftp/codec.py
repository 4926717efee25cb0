"""TFTP wire codec: bytes <-> one frozen value object per opcode.

RFC 1350 section 5 defines the five original packets (RRQ, WRQ, DATA, ACK, ERROR);
RFC 2347 adds option pairs after the mode of a request and the OACK packet (opcode 6).
No sockets, no clock, no filesystem: `decode` either returns a complete packet or
raises `MalformedPacket(reason, offset)`; `encode` is its exact inverse.

Strings (filename, mode, option names and values, error messages) are NUL-terminated
octets on the wire. They are decoded as UTF-8 with ``surrogateescape`` so that any
octet string survives a round trip and maps onto a POSIX filename unchanged. The mode
and option names are case-insensitive (RFC 1350 section 5, RFC 2347) and are lowercased
on decode; option values are kept as sent.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from enum import IntEnum

__all__ = [
    "Ack",
    "Data",
    "Error",
    "ErrorCode",
    "MalformedPacket",
    "Opcode",
    "OptionAck",
    "Packet",
    "ReadRequest",
    "WriteRequest",
    "decode",
    "encode",
]


class Opcode(IntEnum):
    """RFC 1350 section 5 opcodes, plus OACK from RFC 2347."""

    RRQ = 1
    WRQ = 2
    DATA = 3
    ACK = 4
    ERROR = 5
    OACK = 6


class ErrorCode(IntEnum):
    """RFC 1350 appendix "Error Codes" (0-7) plus RFC 2347 code 8."""

    NOT_DEFINED = 0
    FILE_NOT_FOUND = 1
    ACCESS_VIOLATION = 2
    DISK_FULL = 3
    ILLEGAL_OPERATION = 4
    UNKNOWN_TID = 5
    FILE_EXISTS = 6
    NO_SUCH_USER = 7
    OPTION_REFUSED = 8  # RFC 2347: client or server refuses option negotiation


class MalformedPacket(ValueError):
    """The datagram is not a valid TFTP packet; `offset` is where decoding stopped."""

    def __init__(self, reason: str, offset: int) -> None:
        super().__init__(f"{reason} [offset={offset}]")
        self.reason = reason
        self.offset = offset


@dataclass(frozen=True, slots=True)
class ReadRequest:
    """RRQ (RFC 1350 section 5) with RFC 2347 options, keys lowercased."""

    filename: str
    mode: str
    options: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class WriteRequest:
    """WRQ (RFC 1350 section 5) with RFC 2347 options, keys lowercased."""

    filename: str
    mode: str
    options: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Data:
    """DATA: block number (wraps at 65536) and payload (< blksize means last block)."""

    block: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class Ack:
    """ACK of one DATA block; block 0 acknowledges an OACK (RFC 2347)."""

    block: int


@dataclass(frozen=True, slots=True)
class Error:
    """ERROR: terminates the transfer (RFC 1350 section 7)."""

    code: int
    message: str


@dataclass(frozen=True, slots=True)
class OptionAck:
    """OACK (RFC 2347): the options the server accepted, with their final values."""

    options: dict[str, str] = field(default_factory=dict)


Packet = ReadRequest | WriteRequest | Data | Ack | Error | OptionAck

_U16 = struct.Struct("!H")
_U16_PAIR = struct.Struct("!HH")


# --- decoding ---------------------------------------------------------------------------


def _cstring(data: bytes, offset: int, what: str) -> tuple[str, int]:
    """Read one NUL-terminated string starting at `offset`; return it and the next offset."""
    end = data.find(b"\0", offset)
    if end < 0:
        raise MalformedPacket(f"{what} is not NUL-terminated", offset)
    return data[offset:end].decode("utf-8", "surrogateescape"), end + 1


def _option_pairs(data: bytes, offset: int, *, allow_padding: bool) -> dict[str, str]:
    """RFC 2347 option list: name NUL value NUL, repeated to the end of the datagram."""
    options: dict[str, str] = {}
    while offset < len(data):
        # Firmware quirk: some PXE ROMs pad the request with NULs after the last string.
        if allow_padding and not data[offset:].strip(b"\0"):
            break
        start = offset
        name, offset = _cstring(data, offset, "option name")
        if not name:
            raise MalformedPacket("empty option name", start)
        value, offset = _cstring(data, offset, f"value of option {name!r}")
        name = name.lower()
        if name in options:
            raise MalformedPacket(f"duplicate option {name!r}", start)
        options[name] = value
    return options


def _decode_request(data: bytes, opcode: Opcode) -> ReadRequest | WriteRequest:
    filename, offset = _cstring(data, 2, "filename")
    mode_at = offset
    mode, offset = _cstring(data, offset, "mode")
    if not mode:
        raise MalformedPacket("empty mode", mode_at)
    options = _option_pairs(data, offset, allow_padding=True)
    cls = ReadRequest if opcode is Opcode.RRQ else WriteRequest
    return cls(filename, mode.lower(), options)


def _decode_error(data: bytes) -> Error:
    if len(data) < 4:
        raise MalformedPacket("ERROR shorter than 4 bytes", len(data))
    (code,) = _U16.unpack_from(data, 2)
    message, offset = _cstring(data, 4, "error message")
    if offset != len(data):
        raise MalformedPacket("trailing bytes after error message", offset)
    return Error(code, message)


def decode(data: bytes) -> Packet:
    """Decode one datagram. Raises MalformedPacket; never returns a partial packet."""
    if len(data) == 4 and data[0] == 0 and data[1] == Opcode.ACK:
        return Ack((data[2] << 8) | data[3])  # fast path: most datagrams a server sees
    if len(data) < 2:
        raise MalformedPacket("datagram shorter than an opcode", len(data))
    (raw_opcode,) = _U16.unpack_from(data, 0)
    try:
        opcode = Opcode(raw_opcode)
    except ValueError:
        raise MalformedPacket(f"unknown opcode {raw_opcode}", 0) from None

    if opcode in (Opcode.RRQ, Opcode.WRQ):
        return _decode_request(data, opcode)
    if opcode is Opcode.DATA:
        if len(data) < 4:
            raise MalformedPacket("DATA shorter than 4 bytes", len(data))
        (block,) = _U16.unpack_from(data, 2)
        return Data(block, bytes(data[4:]))
    if opcode is Opcode.ACK:
        if len(data) != 4:
            raise MalformedPacket(f"ACK must be 4 bytes, got {len(data)}", min(len(data), 4))
        (block,) = _U16.unpack_from(data, 2)
        return Ack(block)
    if opcode is Opcode.ERROR:
        return _decode_error(data)
    return OptionAck(_option_pairs(data, 2, allow_padding=False))


# --- encoding ---------------------------------------------------------------------------


def _encode_cstring(text: str, what: str) -> bytes:
    raw = text.encode("utf-8", "surrogateescape")
    if b"\0" in raw:
        raise ValueError(f"{what} contains NUL: {text!r}")
    return raw + b"\0"


def _encode_options(options: dict[str, str]) -> bytes:
    out = bytearray()
    for name, value in options.items():
        if not name:
            raise ValueError("empty option name")
        out += _encode_cstring(name, "option name")
        out += _encode_cstring(value, f"value of option {name!r}")
    return bytes(out)


def _check_u16(value: int, what: str) -> int:
    if not 0 <= value <= 0xFFFF:
        raise ValueError(f"{what} {value} does not fit in 16 bits")
    return value


def encode(packet: Packet) -> bytes:
    """Encode a packet to wire bytes. Raises ValueError for unencodable field values."""
    match packet:
        case ReadRequest() | WriteRequest():
            opcode = Opcode.RRQ if isinstance(packet, ReadRequest) else Opcode.WRQ
            if not packet.mode:
                raise ValueError("empty mode")
            return (
                _U16.pack(opcode)
                + _encode_cstring(packet.filename, "filename")
                + _encode_cstring(packet.mode, "mode")
                + _encode_options(packet.options)
            )
        case Data(block, payload):
            return _U16_PAIR.pack(Opcode.DATA, _check_u16(block, "block")) + bytes(payload)
        case Ack(block):
            return _U16_PAIR.pack(Opcode.ACK, _check_u16(block, "block"))
        case Error(code, message):
            return _U16_PAIR.pack(Opcode.ERROR, _check_u16(code, "error code")) + (
                _encode_cstring(message, "error message")
            )
        case OptionAck(options):
            return _U16.pack(Opcode.OACK) + _encode_options(options)
    raise TypeError(f"not a TFTP packet: {packet!r}")
