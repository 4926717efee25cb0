"""DHCPv4 wire codec: bytes <-> Packet and back, nothing else.

RFC 2131 §2 (message format), RFC 2132 §3 (option framing), RFC 3396 (long options).
Option values stay raw bytes in wire order; options.py gives them types and facts.py
gives them meaning. No sockets, no clock, no policy. Decoding is strict: any framing
error raises MalformedPacket(reason, offset), never a half-parsed Packet.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from ipaddress import IPv4Address

from netboot.dhcp.quickinit import quick_init

__all__ = [
    "ACK",
    "BOOTREPLY",
    "BOOTREQUEST",
    "DECLINE",
    "DISCOVER",
    "FLAG_BROADCAST",
    "INFORM",
    "MAGIC_COOKIE",
    "NAK",
    "OFFER",
    "RELEASE",
    "REQUEST",
    "MalformedPacket",
    "MessageType",
    "Packet",
    "encode_reply",
    "make_reply",
    "to_bytes_overloaded",
]


class MessageType(IntEnum):
    """Option 53 values (RFC 2132 §9.6)."""

    DISCOVER = 1
    OFFER = 2
    REQUEST = 3
    DECLINE = 4
    ACK = 5
    NAK = 6
    RELEASE = 7
    INFORM = 8


DISCOVER = MessageType.DISCOVER
OFFER = MessageType.OFFER
REQUEST = MessageType.REQUEST
DECLINE = MessageType.DECLINE
ACK = MessageType.ACK
NAK = MessageType.NAK
RELEASE = MessageType.RELEASE
INFORM = MessageType.INFORM

BOOTREQUEST = 1
BOOTREPLY = 2
FLAG_BROADCAST = 0x8000  # RFC 2131 §2, figure 2
MAGIC_COOKIE = b"\x63\x82\x53\x63"  # RFC 2131 §3: 99.130.83.99

# RFC 2131 §2 figure 1: op htype hlen hops xid secs flags ciaddr yiaddr siaddr giaddr
# chaddr(16) sname(64) file(128) = 236 octets, then the cookie and the options.
_HEADER = struct.Struct("!BBBBIHHIIII16s64s128s")
_COOKIE_AT = _HEADER.size  # 236
_OPTIONS_AT = _COOKIE_AT + len(MAGIC_COOKIE)  # 240
_SNAME_AT, _FILE_AT = 44, 108
_CHADDR_LEN, _SNAME_LEN, _FILE_LEN = 16, 64, 128
_MIN_PACKET = 300  # RFC 1542 §3.2.1: BOOTP messages are at least 300 octets

_END = 255  # RFC 2132 §3.2
_OPT_OVERLOAD = 52  # RFC 2132 §9.3
_OPT_MESSAGE_TYPE = 53  # RFC 2132 §9.6
_MAX_OPTION_LEN = 255

_ZERO_IP = IPv4Address(0)
_EMPTY_SNAME = bytes(_SNAME_LEN)
_EMPTY_FILE = bytes(_FILE_LEN)
_pack_tl = struct.Struct("!BB").pack  # option code + length octets


class MalformedPacket(ValueError):
    """A datagram that is not a well-formed DHCPv4 message."""

    def __init__(self, reason: str, offset: int) -> None:
        super().__init__(reason, offset)
        self.reason = reason
        self.offset = offset

    def __str__(self) -> str:
        return f"{self.reason} [offset={self.offset}]"


_IPS: dict[int, IPv4Address] = {0: _ZERO_IP}
_IPS_MAX = 4096


def _ip(value: int) -> IPv4Address:
    # Most addresses in client messages are 0.0.0.0 or a relay's giaddr: share one
    # immutable object per value (building an IPv4Address costs ~1 us; a lookup ~50 ns).
    ip = _IPS.get(value)
    if ip is None:
        if len(_IPS) >= _IPS_MAX:
            _IPS.clear()
            _IPS[0] = _ZERO_IP
        ip = _IPS[value] = IPv4Address(value)
    return ip


@quick_init
@dataclass(frozen=True, slots=True)
class Packet:
    """One DHCPv4 message. chaddr, sname and file are always their full raw widths.

    options holds (code, raw value) in wire order without pad/end; a decoded packet
    has repeated codes concatenated (RFC 3396 §7) and option 52 resolved away: the
    options it pointed at are merged in and the consumed sname/file read as zeros.
    """

    op: int
    htype: int
    hlen: int
    hops: int
    xid: int
    secs: int
    flags: int
    ciaddr: IPv4Address
    yiaddr: IPv4Address
    siaddr: IPv4Address
    giaddr: IPv4Address
    chaddr: bytes
    sname: bytes
    file: bytes
    options: tuple[tuple[int, bytes], ...]

    @classmethod
    def from_bytes(cls, data: bytes) -> Packet:
        """Decode one datagram; raises MalformedPacket on any framing error."""
        if type(data) is not bytes:
            data = bytes(data)
        size = len(data)
        if size < _OPTIONS_AT:
            raise MalformedPacket(f"packet too short: {size} < {_OPTIONS_AT} octets", size)
        (op, htype, hlen, hops, xid, secs, flags, ci, yi, si, gi, chaddr, sname, file) = (
            _HEADER.unpack_from(data)
        )
        if hlen > _CHADDR_LEN:
            raise MalformedPacket(f"hlen {hlen} exceeds the 16-octet chaddr", 2)
        if data[_COOKIE_AT:_OPTIONS_AT] != MAGIC_COOKIE:
            raise MalformedPacket("bad magic cookie", _COOKIE_AT)

        found: dict[int, bytes] = {}
        _scan(data, _OPTIONS_AT, size, found)
        overload = found.pop(_OPT_OVERLOAD, None)
        if overload is not None:
            # RFC 2131 §4.1 / RFC 3396 §5: options field first, then file, then sname.
            if len(overload) != 1 or overload[0] not in (1, 2, 3):
                raise MalformedPacket(
                    f"bad option overload value {overload.hex() or 'empty'}",
                    _offset_of(data, _OPT_OVERLOAD),
                )
            if overload[0] & 1:
                _scan(data, _FILE_AT, _COOKIE_AT, found)
                file = _EMPTY_FILE
            if overload[0] & 2:
                _scan(data, _SNAME_AT, _FILE_AT, found)
                sname = _EMPTY_SNAME
            # 52 is framing, not content; one inside file/sname is not honoured.
            found.pop(_OPT_OVERLOAD, None)

        return cls(
            op,
            htype,
            hlen,
            hops,
            xid,
            secs,
            flags,
            _ip(ci),
            _ip(yi),
            _ip(si),
            _ip(gi),
            chaddr,
            sname,
            file,
            tuple(found.items()),
        )

    def to_bytes(self) -> bytes:
        """Encode: header, cookie, options, END, zero-padded to 300 octets.

        Raises ValueError for a field that cannot be put on the wire.
        """
        if len(self.chaddr) != _CHADDR_LEN:
            raise ValueError(f"chaddr must be {_CHADDR_LEN} octets, got {len(self.chaddr)}")
        if len(self.sname) != _SNAME_LEN:
            raise ValueError(f"sname must be {_SNAME_LEN} octets, got {len(self.sname)}")
        if len(self.file) != _FILE_LEN:
            raise ValueError(f"file must be {_FILE_LEN} octets, got {len(self.file)}")
        try:
            header = _HEADER.pack(
                self.op,
                self.htype,
                self.hlen,
                self.hops,
                self.xid,
                self.secs,
                self.flags,
                int(self.ciaddr),
                int(self.yiaddr),
                int(self.siaddr),
                int(self.giaddr),
                self.chaddr,
                self.sname,
                self.file,
            )
        except struct.error as exc:
            raise ValueError(f"header field out of range: {exc}") from None
        parts = [header, MAGIC_COOKIE]
        append = parts.append
        for code, value in self.options:
            if not 0 < code < _END or code == _OPT_OVERLOAD:
                raise ValueError(f"option code {code} cannot be encoded as an option")
            size = len(value)
            if size <= _MAX_OPTION_LEN:
                append(_pack_tl(code, size))
                append(value)
                continue
            # RFC 3396 §6: split a long value into consecutive instances of the option.
            for start in range(0, size, _MAX_OPTION_LEN):
                chunk = value[start : start + _MAX_OPTION_LEN]
                append(_pack_tl(code, len(chunk)))
                append(chunk)
        append(b"\xff")
        wire = b"".join(parts)
        if len(wire) < _MIN_PACKET:
            wire += bytes(_MIN_PACKET - len(wire))
        return wire

    def option(self, code: int) -> bytes | None:
        """Raw value of option `code`, or None when absent."""
        for have, value in self.options:
            if have == code:
                return value
        return None

    @property
    def mac(self) -> str:
        """Hardware address as lowercase colon hex, from chaddr[:hlen]."""
        return self.chaddr[: self.hlen].hex(":")

    @property
    def message_type(self) -> int | None:
        """Option 53, or None when absent or not exactly one octet."""
        value = self.option(_OPT_MESSAGE_TYPE)
        if value is None or len(value) != 1:
            return None
        return value[0]


def _scan(data: bytes, pos: int, end: int, found: dict[int, bytes]) -> None:
    """Add each option in data[pos:end] to `found`, in wire order.

    RFC 2132 §3: pad (0) is one octet, END (255) stops the scan. A missing END is
    tolerated (many clients and relays omit it); a length past `end` is not.
    RFC 3396 §7: instances of one code are concatenated, at the first one's position.
    """
    # Constants are literals here: this loop is the decoder's hot path.
    while pos < end:
        code = data[pos]
        if code == 0:  # pad
            pos += 1
            continue
        if code == 255:  # end
            break
        stop = pos + 2
        if stop > end or (stop := stop + data[pos + 1]) > end:
            raise MalformedPacket(f"truncated option {code}", pos)
        if code in found:
            found[code] += data[pos + 2 : stop]
        else:
            found[code] = data[pos + 2 : stop]
        pos = stop


def _offset_of(data: bytes, wanted: int) -> int:
    """Offset of the first option `wanted` in an options field already scanned."""
    pos = _OPTIONS_AT
    while data[pos] != wanted:
        pos += 1 if data[pos] == 0 else 2 + data[pos + 1]
    return pos


def _fixed(value: bytes, width: int, field: str) -> bytes:
    if len(value) > width:
        raise ValueError(f"{field} is {len(value)} octets, the field holds {width}")
    return value.ljust(width, b"\0")


def make_reply(
    request: Packet,
    *,
    message_type: int,
    yiaddr: IPv4Address | str | int,
    siaddr: IPv4Address | str | int,
    options: Sequence[tuple[int, bytes]],
    file: bytes = b"",
    sname: bytes = b"",
) -> Packet:
    """A BOOTREPLY to `request`, fields per RFC 2131 §4.3.1 table 3.

    xid, flags, giaddr, htype, hlen and chaddr come from the request; hops and secs
    are 0; ciaddr is echoed only in an ACK. Option 53 goes first, then `options` in
    the order given (which must not contain 53 itself).
    """
    for code, _ in options:
        if code == _OPT_MESSAGE_TYPE:
            raise ValueError("option 53 is set from message_type; do not pass it in options")
    return Packet(
        BOOTREPLY,  # op
        request.htype,
        request.hlen,
        0,  # hops
        request.xid,
        0,  # secs
        request.flags,
        request.ciaddr if message_type == ACK else _ZERO_IP,
        yiaddr if isinstance(yiaddr, IPv4Address) else IPv4Address(yiaddr),
        siaddr if isinstance(siaddr, IPv4Address) else IPv4Address(siaddr),
        request.giaddr,
        request.chaddr,
        _fixed(sname, _SNAME_LEN, "sname") if sname else _EMPTY_SNAME,
        _fixed(file, _FILE_LEN, "file") if file else _EMPTY_FILE,
        ((_OPT_MESSAGE_TYPE, bytes((message_type,))), *options),
    )


def _pack_field(opts: Sequence[tuple[int, bytes]], width: int, field: str) -> bytes:
    """Options laid into the file or sname field (RFC 2131 §4.1), END-terminated."""
    parts = []
    for code, value in opts:
        for start in range(0, max(len(value), 1), _MAX_OPTION_LEN):
            chunk = value[start : start + _MAX_OPTION_LEN]
            parts.append(_pack_tl(code, len(chunk)) + chunk)
    raw = b"".join(parts) + b"\xff"
    if len(raw) > width:
        raise ValueError(f"options for the {field} field take {len(raw)} octets of {width}")
    return raw.ljust(width, b"\0")


def to_bytes_overloaded(
    packet: Packet,
    file_options: Sequence[tuple[int, bytes]],
    sname_options: Sequence[tuple[int, bytes]],
) -> bytes:
    """Encode ``packet`` with option 52 (RFC 2132 §9.3) carrying the extra options in
    the file and/or sname fields, which must be unused (all zero) in ``packet``."""
    overload = (1 if file_options else 0) | (2 if sname_options else 0)
    if not overload:
        return packet.to_bytes()
    if (file_options and packet.file != _EMPTY_FILE) or (
        sname_options and packet.sname != _EMPTY_SNAME
    ):
        raise ValueError("cannot overload a file/sname field that is in use")
    file = _pack_field(file_options, _FILE_LEN, "file") if file_options else packet.file
    sname = _pack_field(sname_options, _SNAME_LEN, "sname") if sname_options else packet.sname
    body = Packet(
        packet.op,
        packet.htype,
        packet.hlen,
        packet.hops,
        packet.xid,
        packet.secs,
        packet.flags,
        packet.ciaddr,
        packet.yiaddr,
        packet.siaddr,
        packet.giaddr,
        packet.chaddr,
        sname,
        file,
        packet.options,
    ).to_bytes()
    # Option 52 goes right after the cookie: the client must see it before the rest.
    return body[:_OPTIONS_AT] + bytes((_OPT_OVERLOAD, 1, overload)) + body[_OPTIONS_AT:]


_REPLY_TAIL = b"\xff"


def encode_reply(
    request: Packet,
    message_type: int,
    yiaddr: int,
    siaddr: int,
    flags: int,
    file: bytes,
    options: bytes,
) -> bytes:
    """The hot-path encoder of a BOOTREPLY (RFC 2131 §4.3.1 table 3), straight to bytes.

    ``options`` is the already framed options field (code, length, value ...) without
    53 and END; ``file`` at most 128 octets. Same wire result as make_reply(...)
    .to_bytes() with those options, without building intermediate objects.
    """
    header = _HEADER.pack(
        BOOTREPLY,
        request.htype,
        request.hlen,
        0,
        request.xid,
        0,
        flags,
        int(request.ciaddr) if message_type == ACK else 0,
        yiaddr,
        siaddr,
        int(request.giaddr),
        request.chaddr,
        _EMPTY_SNAME,
        file.ljust(_FILE_LEN, b"\0") if file else _EMPTY_FILE,
    )
    wire = b"".join((header, MAGIC_COOKIE, bytes((53, 1, message_type)), options, _REPLY_TAIL))
    if len(wire) < _MIN_PACKET:
        wire += bytes(_MIN_PACKET - len(wire))
    return wire
