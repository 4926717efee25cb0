"""netboot.dhcp.facts: what each firmware's request says about it (LAB-NOTES table),
UUID byte order, both iPXE user-class forms, and malformed values read as absent."""

from __future__ import annotations

import uuid
from ipaddress import IPv4Address

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netboot.dhcp.codec import Packet
from netboot.dhcp.facts import ClientFacts, facts_from_packet, is_ipxe_user_class, smbios_uuid
from tests.unit.fixtures_dhcp import (
    IPXE_BIOS_DISCOVER,
    IPXE_MAC,
    IPXE_PRL,
    IPXE_UUID,
    IPXE_UUID_WIRE,
    OVMF_DISCOVER,
    OVMF_MAC,
    OVMF_PRL,
    OVMF_UUID,
    packet,
)

ZERO = IPv4Address(0)


def test_ipxe_bios_discover_facts() -> None:
    facts = facts_from_packet(Packet.from_bytes(IPXE_BIOS_DISCOVER))
    assert facts == ClientFacts(
        mac=IPXE_MAC,
        message_type=1,
        client_id=b"\x01" + bytes.fromhex("525400123456"),
        arch=0,
        vendor_class="PXEClient:Arch:00000:UNDI:002001",
        user_class=b"iPXE",
        is_ipxe=True,
        is_pxe=True,
        is_http_client=False,
        uuid=IPXE_UUID,
        requested_ip=None,
        server_id=None,
        hostname=None,
        param_request=IPXE_PRL,
        max_message_size=1472,
        relay_agent_info=None,
        giaddr=ZERO,
        ciaddr=ZERO,
        subnet_selection=None,
        client_machine_id=b"\x00" + IPXE_UUID_WIRE,
    )


def test_ovmf_discover_facts_have_no_client_id_and_are_not_ipxe() -> None:
    facts = facts_from_packet(Packet.from_bytes(OVMF_DISCOVER))
    assert (facts.mac, facts.arch, facts.uuid) == (OVMF_MAC, 7, OVMF_UUID)
    assert facts.client_id is None and facts.user_class is None
    assert (facts.is_pxe, facts.is_ipxe, facts.is_http_client) == (True, False, False)
    assert facts.param_request == OVMF_PRL


def test_debian_installer_udhcpc_is_neither_pxe_nor_ipxe() -> None:
    facts = facts_from_packet(
        packet(((53, b"\x01"), (60, b"d-i"), (61, b"\x01RT\x00\x124V"), (55, b"\x01\x03\x06")))
    )
    assert (facts.arch, facts.vendor_class) == (None, "d-i")
    assert not facts.is_pxe and not facts.is_ipxe
    assert facts.param_request == (1, 3, 6)


@pytest.mark.parametrize(
    "arch_wire, vendor_class, arch, is_pxe, is_http",
    [
        (b"\x00\x00", b"PXEClient:Arch:00000:UNDI:002001", 0, True, False),
        (b"\x00\x07", b"PXEClient:Arch:00007:UNDI:003000", 7, True, False),
        (b"\x00\x10", b"HTTPClient:Arch:00016:UNDI:003001", 16, False, True),
        (b"\x00\x07\x00\x09", b"PXEClient", 7, True, False),  # first of the list
    ],
)
def test_arch_and_firmware_class(
    arch_wire: bytes, vendor_class: bytes, arch: int, is_pxe: bool, is_http: bool
) -> None:
    facts = facts_from_packet(packet(((53, b"\x01"), (93, arch_wire), (60, vendor_class))))
    assert (facts.arch, facts.is_pxe, facts.is_http_client) == (arch, is_pxe, is_http)


def test_uuid_first_three_fields_are_byte_swapped_to_dmi_order() -> None:
    # Linux product_uuid 00112233-4455-6677-8899-aabbccddeeff goes on the wire as
    # 33221100 5544 7766 8899 aabbccddeeff (SMBIOS little-endian first three fields).
    wire = bytes.fromhex("0033221100554477668899aabbccddeeff")
    assert smbios_uuid(wire) == "00112233-4455-6677-8899-aabbccddeeff"
    facts = facts_from_packet(packet(((53, b"\x01"), (97, wire))))
    assert facts.uuid == "00112233-4455-6677-8899-aabbccddeeff"


@given(st.binary(min_size=16, max_size=16))
def test_uuid_matches_the_standard_library_little_endian_reading(guid: bytes) -> None:
    expected = str(uuid.UUID(bytes_le=guid))
    assert smbios_uuid(b"\x00" + guid) in (expected, None)


@pytest.mark.parametrize(
    "wire",
    [
        b"\x00" + bytes(16),  # SMBIOS: not present
        b"\x00" + b"\xff" * 16,  # SMBIOS: not set
        b"\x01" + bytes(range(16)),  # type other than 0
        b"\x00" + bytes(range(15)),  # short
        bytes(range(16)),  # type octet missing
    ],
)
def test_unusable_uuids_read_as_absent(wire: bytes) -> None:
    assert facts_from_packet(packet(((53, b"\x01"), (97, wire)))).uuid is None


@pytest.mark.parametrize(
    "user_class, ipxe",
    [
        (b"iPXE", True),  # what iPXE actually sends: not RFC 3004 framed
        (b"\x04iPXE", True),  # RFC 3004 framed
        (b"\x03foo\x04iPXE", True),  # framed, second instance
        (b"gPXE", False),
        (b"iPXE2", False),
        (b"\x04iPX", False),  # framing runs past the end
        (b"\x05iPXE2", False),
        (b"\x00\x04iPXE", False),  # zero-length instance: not RFC 3004
        (b"", False),
    ],
)
def test_ipxe_user_class_in_either_form(user_class: bytes, ipxe: bool) -> None:
    assert is_ipxe_user_class(user_class) is ipxe
    facts = facts_from_packet(packet(((53, b"\x01"), (77, user_class))))
    assert facts.is_ipxe is ipxe and facts.user_class == user_class


def test_request_fields_and_relay_context() -> None:
    facts = facts_from_packet(
        packet(
            (
                (53, b"\x03"),
                (50, b"\x0a\x00\x00\x05"),
                (54, b"\x0a\x00\x00\x01"),
                (12, b"node-1"),
                (57, b"\x02\x40"),
                (82, b"\x01\x04eth0"),
            ),
            giaddr=IPv4Address("10.0.1.1"),
            ciaddr=IPv4Address("10.0.0.5"),
        )
    )
    assert (facts.message_type, facts.requested_ip, facts.server_id) == (
        3,
        IPv4Address("10.0.0.5"),
        IPv4Address("10.0.0.1"),
    )
    assert (facts.hostname, facts.max_message_size) == ("node-1", 576)
    assert facts.relay_agent_info == b"\x01\x04eth0"
    assert (facts.giaddr, facts.ciaddr) == (IPv4Address("10.0.1.1"), IPv4Address("10.0.0.5"))


def test_malformed_option_values_read_as_absent() -> None:
    facts = facts_from_packet(
        packet(
            (
                (53, b"\x01\x01"),
                (93, b"\x00\x07\x00"),  # odd length
                (50, b"\x0a\x00\x00"),
                (54, b""),
                (12, b"\xff\xfe"),  # not UTF-8
                (57, b"\x05"),
            )
        )
    )
    assert facts.message_type is None and facts.arch is None
    assert facts.requested_ip is None and facts.server_id is None
    assert facts.hostname is None and facts.max_message_size is None
    assert facts.param_request == ()


def test_vendor_class_is_latin1_so_any_octets_decode() -> None:
    facts = facts_from_packet(packet(((53, b"\x01"), (60, b"PXEClient\xff"))))
    assert facts.vendor_class == "PXEClient\xff" and facts.is_pxe


@given(
    st.lists(
        st.tuples(st.sampled_from([12, 50, 53, 54, 55, 57, 60, 61, 77, 82, 93, 97]), st.binary()),
        unique_by=lambda option: option[0],
    )
)
def test_facts_never_raise_on_option_content(opts: list[tuple[int, bytes]]) -> None:
    facts = facts_from_packet(packet(tuple(opts)))
    assert facts.mac == IPXE_MAC
