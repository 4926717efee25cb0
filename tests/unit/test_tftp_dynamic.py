"""Dynamic TFTP files: per-machine pxelinux/grub configs from node state, loader probes."""

from __future__ import annotations

import pytest

from netboot.bootconfig.scripts import ScriptRenderer
from netboot.bootconfig.tftpfiles import DynamicBootFiles
from netboot.nodes.lifecycle import NodeStatus
from netboot.tftp.paths import FileNotFound, normalise
from tests.unit.test_bootconfig import node

BASE = "http://10.0.0.1:5248"
MAC = "52:54:00:12:34:56"
PEER = ("10.0.0.100", 2070)


def provider(nodes: dict | None = None) -> DynamicBootFiles:
    known = nodes or {}
    return DynamicBootFiles(known.get, ScriptRenderer(), BASE)


def read(files: DynamicBootFiles, requested: str) -> str | None:
    source = files(normalise(requested), PEER)
    return None if source is None else source.read().decode()


def test_pxelinux_mac_file_is_rendered_for_an_unknown_machine_as_enlistment():
    text = read(provider(), "pxelinux.cfg/01-52-54-00-12-34-56")
    assert "enlist.initrd" in text and "IPAPPEND 2" in text


def test_pxelinux_mac_file_follows_node_state():
    deployed = provider({MAC: node(NodeStatus.DEPLOYED)})
    assert "LOCALBOOT 0" in read(deployed, "/pxelinux.cfg/01-52-54-00-12-34-56")
    # Upper-case hex from some firmware is the same machine.
    assert "LOCALBOOT 0" in read(deployed, "pxelinux.cfg/01-52-54-00-12-34-56".upper())


@pytest.mark.parametrize(
    "probe",
    [
        "pxelinux.cfg/12345678-1234-1234-1234-123456789abc",  # SMBIOS UUID, asked first
        "pxelinux.cfg/0A420064",  # hex IP, then shorter prefixes
        "pxelinux.cfg/0A4",
        "autoexec.ipxe",
        "revocations_sbat.efi",
        "revocations_sku.efi",
        "shim_certificate_0.efi",
        "efi/boot/autoexec.ipxe",
    ],
)
def test_probes_are_refused_at_once_without_a_disk_lookup(probe):
    with pytest.raises(FileNotFound):
        provider()(normalise(probe), PEER)


def test_pxelinux_default_enlists():
    assert "enlist.initrd" in read(provider(), "pxelinux.cfg/default")


def test_grub_cfg_dispatches_by_mac_and_per_mac_file_follows_state():
    files = provider({MAC: node(NodeStatus.DEPLOYED)})
    assert "grub.cfg-${net_default_mac}" in read(files, "/grub/grub.cfg")
    assert "chainloader" in read(files, "/grub/grub.cfg-52:54:00:12:34:56")
    assert "enlist.initrd" in read(files, "/grub/grub.cfg-52:54:00:aa:bb:cc")
    assert "enlist.initrd" in read(files, "/grub/grub.cfg-default")


@pytest.mark.parametrize(
    "name", ["/grub/x86_64-efi/command.lst", "/grub/x86_64-efi/fs.lst", "grub/arm64-efi/crypto.lst"]
)
def test_grub_module_lists_are_empty_files(name):
    assert read(provider(), name) == ""


@pytest.mark.parametrize("name", ["undionly.kpxe", "grub/grub.cfg-nonsense", "bootx64.efi"])
def test_other_names_fall_through_to_the_boot_root(name):
    assert provider()(normalise(name), PEER) is None
