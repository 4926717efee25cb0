"""Loader choice per firmware, and the per-node iPXE script per node state."""

import pytest

from netboot.bootconfig.methods import choose_boot
from netboot.bootconfig.scripts import BootPurpose, ScriptRenderer, boot_purpose
from netboot.dhcp.codec import Packet
from netboot.dhcp.facts import facts_from_packet
from netboot.nodes.lifecycle import NodeStatus
from netboot.store.models import Node
from tests.unit.fixtures_dhcp import IPXE_BIOS_DISCOVER, OVMF_DISCOVER, packet

BASE = "http://10.0.0.1:5248"
MAC = "52:54:00:12:34:56"


def discover(arch: int | None, vendor: str | None, user_class: bytes | None = None):
    opts = [(53, b"\x01")]
    if arch is not None:
        opts.append((93, arch.to_bytes(2, "big")))
    if vendor is not None:
        opts.append((60, vendor.encode()))
    if user_class is not None:
        opts.append((77, user_class))
    return facts_from_packet(packet(tuple(opts), mac=MAC))


@pytest.mark.parametrize(
    ("arch", "vendor", "filename", "in_file"),
    [
        (0, "PXEClient:Arch:00000:UNDI:002001", "undionly.kpxe", True),
        (7, "PXEClient:Arch:00007:UNDI:003000", "snponly.efi", True),
        (9, "PXEClient:Arch:00009:UNDI:003000", "snponly.efi", True),
        (16, "HTTPClient:Arch:00016:UNDI:003000", f"{BASE}/boot/files/ipxe.efi", False),
    ],
)
def test_loader_by_architecture(arch, vendor, filename, in_file):
    answer = choose_boot(discover(arch, vendor), BASE)
    assert answer is not None
    assert (answer.filename, answer.in_file_field) == (filename, in_file)


def test_http_boot_offer_echoes_httpclient():
    answer = choose_boot(discover(16, "HTTPClient:Arch:00016:UNDI:003000"), BASE)
    assert answer.vendor_class == "HTTPClient"


def test_ipxe_client_gets_its_script_url_not_ipxe_again():
    answer = choose_boot(discover(0, "PXEClient:Arch:00000:UNDI:002001", b"iPXE"), BASE)
    assert answer.filename == f"{BASE}/boot/ipxe/{MAC}"


def test_real_firmware_fixtures():
    ipxe = choose_boot(facts_from_packet(Packet.from_bytes(IPXE_BIOS_DISCOVER)), BASE)
    ovmf = choose_boot(facts_from_packet(Packet.from_bytes(OVMF_DISCOVER)), BASE)
    assert ipxe.filename.startswith(f"{BASE}/boot/ipxe/")
    assert ovmf.filename == "snponly.efi"


def test_plain_dhcp_client_and_unknown_arch_get_no_boot_file():
    assert choose_boot(discover(None, None), BASE) is None
    assert choose_boot(discover(None, "d-i"), BASE) is None
    assert choose_boot(discover(11, "PXEClient:Arch:00011:UNDI:003000"), BASE) is None


def node(status: NodeStatus) -> Node:
    return Node(
        system_id="abc123",
        hostname="brave-otter",
        status=status,
        boot_mac=MAC,
        macs=(MAC,),
        uuid=None,
        vendor="",
        product="",
        serial="",
        cpu_count=1,
        cpu_model="",
        memory_mib=512,
        disks=(),
        token="t",
        created=0.0,
        updated=0.0,
    )


def test_boot_purpose_by_state():
    assert boot_purpose(None) is BootPurpose.ENLIST
    assert boot_purpose(node(NodeStatus.NEW)) is BootPurpose.ENLIST
    assert boot_purpose(node(NodeStatus.DEPLOYED)) is BootPurpose.LOCAL


def test_enlist_script_loads_kernel_and_initrd_over_http():
    script = ScriptRenderer().ipxe(None, MAC, BASE)
    assert script.startswith("#!ipxe\n")
    assert f"kernel {BASE}/boot/files/vmlinuz initrd=enlist.initrd" in script
    assert f"netboot.enlist_url={BASE}/api/enlist" in script
    assert f"initrd {BASE}/boot/files/enlist.initrd" in script


def test_local_boot_script_never_reenters_the_installer():
    script = ScriptRenderer().ipxe(node(NodeStatus.DEPLOYED), MAC, BASE)
    assert "sanboot" in script and "exit" in script and "vmlinuz" not in script
