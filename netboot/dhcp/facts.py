"""ClientFacts: what a DHCP request says about the client, extracted once per packet.

Firmware identity (arch 93, vendor class 60, user class 77), identity keys (MAC,
client id 61, SMBIOS UUID 97), what it asks for (50, 54, 55, 57) and relay context
(giaddr, 82). Pure and total: a malformed option value reads as absent, never raises.
See LAB-NOTES "DHCP options each firmware sends" for what real firmware puts here.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Any

from netboot.dhcp import options
from netboot.dhcp.codec import Packet
from netboot.dhcp.quickinit import quick_init

__all__ = ["ClientFacts", "facts_from_packet", "is_ipxe_user_class", "smbios_uuid"]

_IPXE = b"iPXE"
# SMBIOS 3.x §7.2.1: all-FF means "not present but settable", all-00 "not present".
# Neither identifies a machine, so both read as no UUID.
_NO_UUID = (bytes(16), b"\xff" * 16)


@quick_init
@dataclass(frozen=True, slots=True)
class ClientFacts:
    """Facts from one client message; None means the option was absent or malformed."""

    mac: str
    message_type: int | None
    client_id: bytes | None  # 61, raw (type octet + identifier)
    arch: int | None  # first value of 93 (RFC 4578 §2.1): 0 BIOS, 7 x64 UEFI, 16 x64 HTTP
    vendor_class: str | None  # 60, latin-1
    user_class: bytes | None  # 77, raw
    is_ipxe: bool
    is_pxe: bool
    is_http_client: bool
    uuid: str | None  # 97, canonical lowercase, as /sys/class/dmi/id/product_uuid prints
    requested_ip: IPv4Address | None  # 50
    server_id: IPv4Address | None  # 54
    hostname: str | None  # 12
    param_request: tuple[int, ...]  # 55, empty when absent
    max_message_size: int | None  # 57
    relay_agent_info: bytes | None  # 82, raw
    giaddr: IPv4Address  # 0.0.0.0 unless relayed
    ciaddr: IPv4Address = IPv4Address(0)  # set when the client already holds an address
    subnet_selection: IPv4Address | None = None  # 118 (RFC 3011)
    client_machine_id: bytes | None = None  # 97, raw, for echoing in proxyDHCP replies


def facts_from_packet(packet: Packet) -> ClientFacts:
    """Extract ClientFacts from a decoded request. Never raises on option content."""
    found = dict(packet.options)  # decoded packets hold each code once (RFC 3396)
    get = found.get
    # Fixed-size values are decoded inline: this runs for every packet.
    arch_raw = get(93)
    vendor_raw = get(60)
    vendor_class = vendor_raw.decode("latin-1") if vendor_raw is not None else None
    user_class = get(77)
    message_type = get(53)
    max_size = get(57)
    machine_id = get(97)
    return ClientFacts(
        mac=packet.mac,
        message_type=message_type[0] if message_type and len(message_type) == 1 else None,
        client_id=get(61),
        arch=(arch_raw[0] << 8 | arch_raw[1]) if arch_raw and len(arch_raw) % 2 == 0 else None,
        vendor_class=vendor_class,
        user_class=user_class,
        is_ipxe=user_class is not None and is_ipxe_user_class(user_class),
        is_pxe=vendor_class is not None and vendor_class.startswith("PXEClient"),
        is_http_client=vendor_class is not None and vendor_class.startswith("HTTPClient"),
        uuid=smbios_uuid(machine_id) if machine_id is not None else None,
        requested_ip=_address(get(50)),
        server_id=_address(get(54)),
        hostname=_typed(found, 12) if 12 in found else None,
        param_request=tuple(get(55, b"")),
        max_message_size=(max_size[0] << 8 | max_size[1])
        if max_size and len(max_size) == 2
        else None,
        relay_agent_info=get(82),
        giaddr=packet.giaddr,
        ciaddr=packet.ciaddr,
        subnet_selection=_address(get(118)),
        client_machine_id=machine_id,
    )


_ADDRESSES: dict[bytes, IPv4Address] = {}


def _address(raw: bytes | None) -> IPv4Address | None:
    if raw is None or len(raw) != 4:
        return None
    # Server ids (54) repeat on every REQUEST: share the immutable object.
    ip = _ADDRESSES.get(raw)
    if ip is None:
        if len(_ADDRESSES) >= 4096:
            _ADDRESSES.clear()
        ip = _ADDRESSES[raw] = IPv4Address(raw)
    return ip


def is_ipxe_user_class(raw: bytes) -> bool:
    """True for iPXE's user class in either form it is seen in.

    iPXE sends the bare string "iPXE" (not RFC 3004 framed); relays, dnsmasq-style
    tooling and some builds use RFC 3004 §4 framing: instances of (length, data).
    """
    if raw == _IPXE:
        return True
    pos, found = 0, False
    while pos < len(raw):
        stop = pos + 1 + raw[pos]
        if raw[pos] == 0 or stop > len(raw):
            return False  # not RFC 3004 framing after all
        found = found or raw[pos + 1 : stop] == _IPXE
        pos = stop
    return found


def smbios_uuid(raw: bytes | None) -> str | None:
    """Option 97 (RFC 4578 §2.3: type 0 + 16 octets) -> canonical UUID string.

    Firmware copies the SMBIOS bytes, whose first three fields (time_low, time_mid,
    time_hi_and_version) are little-endian (SMBIOS 2.6+ §7.2.1); Linux's product_uuid
    prints them big-endian. Same result as str(uuid.UUID(bytes_le=...)), at a tenth
    of the cost.
    """
    if raw is None or len(raw) != 17 or raw[0] != 0:
        return None
    guid = raw[1:]
    if guid in _NO_UUID:
        return None
    digits = (guid[3::-1] + guid[5:3:-1] + guid[7:5:-1] + guid[8:]).hex()
    return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"


def _typed(found: dict[int, bytes], code: int) -> Any:
    raw = found.get(code)
    if raw is None:
        return None
    try:
        return options.decode(code, raw)
    except options.OptionError:
        return None
