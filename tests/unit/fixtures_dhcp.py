"""Golden DHCPv4 wire fixtures, annotated octet by octet, and a Packet builder for tests.

The DISCOVERs follow LAB-NOTES "DHCP options each firmware sends" (QEMU iPXE BIOS ROM,
OVMF PXE). The iPXE option 175 body is illustrative: real sub-option tags, made-up
build details.
"""

from __future__ import annotations

from ipaddress import IPv4Address

from netboot.dhcp.codec import Packet

IPXE_MAC = "52:54:00:12:34:56"
OVMF_MAC = "52:54:00:ab:cd:ef"
# DMI product_uuid as Linux prints it, and option 97's GUID as firmware sends it
# (SMBIOS: time_low, time_mid, time_hi_and_version little-endian).
IPXE_UUID = "8c1e9f2a-3b4d-4e5f-9a6b-7c8d9e0f1a2b"
IPXE_UUID_WIRE = bytes.fromhex("2a9f1e8c 4d3b 5f4e 9a6b 7c8d9e0f1a2b")
OVMF_UUID = "00112233-4455-6677-8899-aabbccddeeff"
OVMF_UUID_WIRE = bytes.fromhex("33221100 5544 7766 8899 aabbccddeeff")

IPXE_PRL = (1, 3, 6, 7, 12, 15, 17, 26, 43, 60, 66, 67, 119, *range(128, 136), 175, 203)
OVMF_PRL = (
    *(1, 2, 3, 4, 5, 6, 12, 13, 15, 17, 18, 22, 23, 28, 40, 41, 42, 43),
    *(50, 51, 54, 58, 59, 60, 66, 67, 97, *range(128, 136)),
)
IPXE_FEATURES = (
    b"\xb1\x05\x01\x1a\xf4\x10\x00"  # bus id: PCI 1af4:1000 (virtio-net)
    b"\xeb\x03\x01\x15\x01"  # iPXE version 1.21.1
    b"\x10\x01\x01"  # PXE API extensions
    b"\x13\x01\x01"  # HTTP
    b"\x11\x01\x01"  # iSCSI
    b"\x17\x01\x01"  # DNS
    b"\x18\x01\x01"  # bzImage
)


def _header(op: int, xid: bytes, secs: bytes, flags: bytes, yi: bytes, si: bytes) -> bytes:
    return b"".join(
        (
            bytes((op, 1, 6, 0)),  # op, htype ethernet, hlen 6, hops 0
            xid,
            secs,
            flags,
            b"\x00\x00\x00\x00",  # ciaddr
            yi,
            si,
            b"\x00\x00\x00\x00",  # giaddr
        )
    )


IPXE_BIOS_DISCOVER = (
    _header(1, b"\x5a\x1e\x2b\x3c", b"\x00\x04", b"\x80\x00", bytes(4), bytes(4))
    + b"\x52\x54\x00\x12\x34\x56"
    + bytes(10)  # chaddr: MAC + 10 octets of padding
    + bytes(64)  # sname
    + bytes(128)  # file
    + b"\x63\x82\x53\x63"  # magic cookie
    + b"\x35\x01\x01"  # 53 message type: DISCOVER
    + b"\x39\x02\x05\xc0"  # 57 max message size: 1472
    + b"\x5d\x02\x00\x00"  # 93 client arch: 0 (x86 BIOS)
    + b"\x5e\x03\x01\x02\x01"  # 94 client NDI: UNDI 2.1
    + b"\x3c\x20PXEClient:Arch:00000:UNDI:002001"  # 60 vendor class
    + b"\x4d\x04iPXE"  # 77 user class: raw, not RFC 3004 framed
    + b"\x37\x17"
    + bytes(IPXE_PRL)  # 55 parameter request list, 23 codes
    + b"\xaf\x1b"
    + IPXE_FEATURES  # 175 iPXE encapsulated feature flags
    + b"\x3d\x07\x01\x52\x54\x00\x12\x34\x56"  # 61 client id: type 1 + MAC
    + b"\x61\x11\x00"
    + IPXE_UUID_WIRE  # 97 machine id: type 0 + SMBIOS UUID
    + b"\xff"  # END; 379 octets, no padding needed
)

OVMF_DISCOVER = (
    _header(1, b"\x0b\xad\xf0\x0d", b"\x00\x00", b"\x80\x00", bytes(4), bytes(4))
    + b"\x52\x54\x00\xab\xcd\xef"
    + bytes(10)  # chaddr
    + bytes(64)  # sname
    + bytes(128)  # file
    + b"\x63\x82\x53\x63"  # magic cookie
    + b"\x35\x01\x01"  # 53 message type: DISCOVER
    + b"\x39\x02\x05\xc0"  # 57 max message size: 1472
    + b"\x37\x23"
    + bytes(OVMF_PRL)  # 55 parameter request list, 35 codes
    + b"\x61\x11\x00"
    + OVMF_UUID_WIRE  # 97 machine id
    + b"\x5e\x03\x01\x03\x00"  # 94 client NDI: UNDI 3.0
    + b"\x5d\x02\x00\x07"  # 93 client arch: 7 (x64 UEFI)
    + b"\x3c\x20PXEClient:Arch:00007:UNDI:003000"  # 60 vendor class; no 61, no 77
    + b"\xff"  # END; 347 octets
)

# What make_reply(IPXE_BIOS_DISCOVER, OFFER, ...) must produce, see test_dhcp_codec.
IPXE_OFFER = (
    _header(
        2, b"\x5a\x1e\x2b\x3c", b"\x00\x00", b"\x80\x00", b"\xc0\xa8\x32\x64", b"\xc0\xa8\x32\x01"
    )
    + b"\x52\x54\x00\x12\x34\x56"
    + bytes(10)  # chaddr copied from the request
    + bytes(64)  # sname
    + bytes(128)  # file: empty, the boot file goes in option 67
    + b"\x63\x82\x53\x63"  # magic cookie
    + b"\x35\x01\x02"  # 53 message type: OFFER, always first
    + b"\x36\x04\xc0\xa8\x32\x01"  # 54 server id 192.168.50.1
    + b"\x33\x04\x00\x00\x0e\x10"  # 51 lease time 3600 s
    + b"\x01\x04\xff\xff\xff\x00"  # 1 subnet mask 255.255.255.0
    + b"\x03\x04\xc0\xa8\x32\x01"  # 3 router 192.168.50.1
    + b"\x43\x0dundionly.kpxe"  # 67 boot file name
    + b"\xff"  # END at 282
    + bytes(17)  # padding to the 300-octet BOOTP minimum (RFC 1542 §3.2.1)
)


def packet(
    options: tuple[tuple[int, bytes], ...] = ((53, b"\x01"),),
    *,
    mac: str = IPXE_MAC,
    **fields: object,
) -> Packet:
    """A BOOTREQUEST from `mac` with `options`; any header field can be overridden."""
    raw_mac = bytes.fromhex(mac.replace(":", ""))
    defaults: dict[str, object] = {
        "op": 1,
        "htype": 1,
        "hlen": len(raw_mac),
        "hops": 0,
        "xid": 0x12345678,
        "secs": 0,
        "flags": 0,
        "ciaddr": IPv4Address(0),
        "yiaddr": IPv4Address(0),
        "siaddr": IPv4Address(0),
        "giaddr": IPv4Address(0),
        "chaddr": raw_mac.ljust(16, b"\0"),
        "sname": bytes(64),
        "file": bytes(128),
        "options": options,
    }
    defaults.update(fields)
    return Packet(**defaults)  # type: ignore[arg-type]
