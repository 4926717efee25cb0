"""Loader choice per firmware, and the per-node iPXE script per node state."""

import pytest

from netboot.bootconfig.methods import BootAnswer, choose_boot
from netboot.bootconfig.scripts import BootPurpose, ScriptRenderer, boot_purpose
from netboot.bootconfig.settings import BootConfig, parse_boot
from netboot.config import ConfigError
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
    assert choose_boot(discover(6, "PXEClient:Arch:00006:UNDI:003000"), BASE) is None
    assert choose_boot(discover(19, "HTTPClient:Arch:00019:UNDI:003000"), BASE) is None


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


# --- loader families from [boot] ---------------------------------------------------------

PXELINUX = BootConfig(bios_loader="pxelinux")
SHIM = BootConfig(uefi_loader="shim")


@pytest.mark.parametrize(
    ("arch", "vendor", "boot", "filename"),
    [
        (0, "PXEClient:Arch:00000:UNDI:002001", PXELINUX, "lpxelinux.0"),
        (7, "PXEClient:Arch:00007:UNDI:003000", SHIM, "bootx64.efi"),
        (9, "PXEClient:Arch:00009:UNDI:003000", SHIM, "bootx64.efi"),
        (7, "PXEClient:Arch:00007:UNDI:003000", PXELINUX, "snponly.efi"),
        (0, "PXEClient:Arch:00000:UNDI:002001", SHIM, "undionly.kpxe"),
        (11, "PXEClient:Arch:00011:UNDI:003000", BootConfig(), "grubaa64.efi"),
        (11, "PXEClient:Arch:00011:UNDI:003000", SHIM, "grubaa64.efi"),
    ],
)
def test_configured_family_picks_the_tftp_loader(arch, vendor, boot, filename):
    answer = choose_boot(discover(arch, vendor), BASE, boot)
    assert answer == BootAnswer(filename, True, None)


def test_http_boot_stays_on_ipxe_under_shim_because_signed_grub_has_no_http():
    answer = choose_boot(discover(16, "HTTPClient:Arch:00016:UNDI:003000"), BASE, SHIM)
    assert answer == BootAnswer(f"{BASE}/boot/files/ipxe.efi", False, "HTTPClient")


def test_ipxe_rom_runs_pxelinux_when_pxelinux_is_configured():
    facts = discover(0, "PXEClient:Arch:00000:UNDI:002001", b"iPXE")
    assert choose_boot(facts, BASE, PXELINUX) == BootAnswer("lpxelinux.0", True, None)
    # UEFI iPXE keeps its script: pxelinux is a BIOS loader.
    efi = discover(7, "PXEClient:Arch:00007:UNDI:003010", b"iPXE")
    assert choose_boot(efi, BASE, PXELINUX).filename == f"{BASE}/boot/ipxe/{MAC}"


def test_boot_table_rejects_unknown_keys_and_values_naming_the_key():
    assert parse_boot({}) == BootConfig("ipxe", "ipxe")
    assert parse_boot({"uefi_loader": "shim"}).uefi_loader == "shim"
    with pytest.raises(ConfigError) as bad_value:
        parse_boot({"bios_loader": "grub"})
    assert bad_value.value.key == "boot.bios_loader"
    with pytest.raises(ConfigError) as unknown:
        parse_boot({"secure_boot": True})
    assert unknown.value.key == "boot.secure_boot"


# --- purposes and the three dialects ----------------------------------------------------


@pytest.mark.parametrize(
    ("status", "purpose"),
    [
        (NodeStatus.READY, BootPurpose.ENLIST),
        (NodeStatus.DEPLOYING, BootPurpose.DEPLOY),
        (NodeStatus.DEPLOYED, BootPurpose.LOCAL),
        (NodeStatus.RESCUE_MODE, BootPurpose.RESCUE),
        (NodeStatus.BROKEN, BootPurpose.ENLIST),
    ],
)
def test_purpose_follows_the_node_status(status, purpose):
    assert boot_purpose(node(status)) is purpose


# Deploying, erasing and rescue boot the installer image instead:
# tests/unit/test_installer_boot.py and tests/unit/test_rescue.py


def test_grub_enlist_config_loads_kernel_over_tftp_with_bootif():
    cfg = ScriptRenderer().grub(None, MAC, BASE)
    assert "linux $nb_dir/vmlinuz initrd=enlist.initrd" in cfg
    assert "initrd $nb_dir/enlist.initrd" in cfg
    assert f"netboot.enlist_url={BASE}/api/enlist" in cfg
    assert "BOOTIF=01-52-54-00-12-34-56" in cfg
    loads = [line for line in cfg.splitlines() if line.startswith(("linux ", "initrd "))]
    assert all("(http" not in line and " http" not in line for line in loads)


def test_grub_dispatcher_picks_the_per_mac_file():
    cfg = ScriptRenderer().grub_dispatch()
    assert "configfile /grub/grub.cfg-${net_default_mac}" in cfg


def test_grub_local_boot_chains_the_disk_loader_then_exits_to_firmware():
    cfg = ScriptRenderer().grub(node(NodeStatus.DEPLOYED), MAC, BASE)
    assert "chainloader" in cfg and "/EFI/BOOT/BOOTX64.EFI" in cfg
    assert cfg.rstrip().endswith("exit 1") and "vmlinuz" not in cfg


def test_pxelinux_enlist_config_fetches_over_http_and_appends_bootif():
    cfg = ScriptRenderer().pxelinux(None, MAC, BASE)
    assert f"KERNEL {BASE}/boot/files/vmlinuz" in cfg
    assert f"INITRD {BASE}/boot/files/enlist.initrd" in cfg
    assert "IPAPPEND 2" in cfg


def test_pxelinux_local_boot_uses_localboot():
    cfg = ScriptRenderer().pxelinux(node(NodeStatus.DEPLOYED), MAC, BASE)
    assert "LOCALBOOT 0" in cfg and "KERNEL" not in cfg


def test_ipxe_local_boot_exits_with_error_on_uefi_so_firmware_moves_on():
    script = ScriptRenderer().ipxe(node(NodeStatus.DEPLOYED), MAC, BASE)
    assert script.rstrip().endswith("exit 1")


def test_a_purpose_specific_template_overrides_the_generic_one():
    script = ScriptRenderer().ipxe(node(NodeStatus.DEPLOYING), MAC, BASE)
    assert "/api/deploy/abc123/boot.ipxe" in script  # ipxe/deploy.ipxe.j2
