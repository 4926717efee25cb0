"""Every loader boots the same installer, and boots the disk once the install is done.

grub (grub.cfg-<mac>, over TFTP), pxelinux (pxelinux.cfg/01-<mac>, lpxelinux over
HTTP) and iPXE (/boot/ipxe/<mac>, chaining the deploy API) rendered per node state with
real image caches (netboot.images) and a real store; the TFTP provider serves the
installer's files from the cache.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import time
from pathlib import Path

import pytest

from netboot.bootconfig.scripts import BootPurpose, NodeBoot, ScriptRenderer, boot_purpose
from netboot.bootconfig.tftpfiles import DynamicBootFiles
from netboot.images.cache import ImageCache
from netboot.images.installerboot import installer_boot
from netboot.images.jobs import run_import
from netboot.images.nodeboot import NodeBootFacts
from netboot.nodes.inventory import parse_enlist_body
from netboot.nodes.lifecycle import NodeStatus as S
from netboot.store.sqlite import open_store
from netboot.tftp.paths import FileNotFound, normalise
from tests.unit.test_bootconfig import BASE, MAC, node
from tests.unit.test_images import make_image

KERNEL = os.urandom(3000)
INITRD = os.urandom(5000)
PEER = ("10.0.0.100", 2070)


def installer_cache(tmp_path: Path) -> ImageCache:
    src = make_image(
        tmp_path / "src",
        name="installer",
        kind="boot",
        version="i1",
        files={"vmlinuz": KERNEL, "deploy.initrd": INITRD},
    )
    doc = json.loads(src.read_text())
    doc.update(kernel="vmlinuz", initrds=["deploy.initrd"])
    src.write_text(json.dumps(doc))
    cache = ImageCache(tmp_path / "cache")
    run_import(cache, str(src))
    return cache


@pytest.fixture
def cache(tmp_path: Path) -> ImageCache:
    return installer_cache(tmp_path)


def facts_for(status: S, cache: ImageCache, installed: bool = False) -> NodeBoot:
    if installed:
        return NodeBoot(installed=True)
    purpose = "erase" if status is S.DISK_ERASING else "deploy"
    return NodeBoot(installer=installer_boot(node(status), cache, BASE, purpose))


# -- purpose per state -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "installed", "purpose"),
    [
        (S.DEPLOYING, False, BootPurpose.DEPLOY),
        (S.DEPLOYING, True, BootPurpose.LOCAL),  # installer done, before phone home
        (S.DEPLOYED, False, BootPurpose.LOCAL),
        (S.DISK_ERASING, False, BootPurpose.ERASE),
        (S.FAILED_DISK_ERASING, False, BootPurpose.ENLIST),
        (S.READY, True, BootPurpose.ENLIST),  # "installed" only matters while deploying
    ],
)
def test_purpose_follows_status_and_the_installers_report(status, installed, purpose):
    assert boot_purpose(node(status), installed) is purpose


# -- grub ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "purpose"), [(S.DEPLOYING, "deploy"), (S.DISK_ERASING, "erase")]
)
def test_grub_boots_the_installer_image_over_tftp(cache, status, purpose):
    cfg = ScriptRenderer().grub(node(status), MAC, BASE, facts_for(status, cache))
    assert (
        "linux /images/boot/installer/i1/vmlinuz initrd=deploy.initrd console=tty0 "
        f"console=ttyS0,115200n8 quiet loglevel=3 netboot.purpose={purpose} "
        f"netboot.url={BASE} netboot.system_id=abc123 BOOTIF=01-52-54-00-12-34-56"
    ) in cfg
    assert "initrd /images/boot/installer/i1/deploy.initrd" in cfg
    assert "boot/installer/i1" in cfg and "netboot.token" not in cfg


@pytest.mark.parametrize("status", [S.DEPLOYED, S.DEPLOYING])
def test_grub_boots_the_disk_once_installed_and_never_stops_in_firmware_setup(cache, status):
    facts = facts_for(status, cache, installed=status is S.DEPLOYING)
    cfg = ScriptRenderer().grub(node(status), MAC, BASE, facts)
    assert "chainloader $nb_loader" in cfg and "/EFI/BOOT/BOOTX64.EFI" in cfg
    # Nothing found: exit with an error, so the firmware tries its next boot option.
    assert cfg.rstrip().endswith("exit 1")
    assert "linux " not in cfg and "installer" not in cfg


def test_grub_without_an_installer_says_why_and_asks_again(cache):
    facts = NodeBoot(error="no installer boot image: import one with `netboot images import`")
    cfg = ScriptRenderer().grub(node(S.DEPLOYING), MAC, BASE, facts)
    assert "cannot deploy brave-otter: no installer boot image" in cfg
    assert "configfile /grub/grub.cfg" in cfg and "linux " not in cfg


# -- pxelinux -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "purpose"), [(S.DEPLOYING, "deploy"), (S.DISK_ERASING, "erase")]
)
def test_pxelinux_boots_the_installer_image_over_http(cache, status, purpose):
    cfg = ScriptRenderer().pxelinux(node(status), MAC, BASE, facts_for(status, cache))
    assert f"KERNEL {BASE}/images/boot/installer/i1/vmlinuz" in cfg
    assert f"INITRD {BASE}/images/boot/installer/i1/deploy.initrd" in cfg
    assert "APPEND initrd=deploy.initrd console=tty0 console=ttyS0,115200n8" in cfg
    assert f"netboot.purpose={purpose} netboot.url={BASE} netboot.system_id=abc123" in cfg
    assert "IPAPPEND 2" in cfg


@pytest.mark.parametrize("status", [S.DEPLOYED, S.DEPLOYING])
def test_pxelinux_boots_the_disk_once_installed(cache, status):
    facts = facts_for(status, cache, installed=status is S.DEPLOYING)
    cfg = ScriptRenderer().pxelinux(node(status), MAC, BASE, facts)
    assert "LOCALBOOT 0" in cfg and "KERNEL" not in cfg


def test_pxelinux_without_an_installer_says_why_and_waits_before_asking_again():
    cfg = ScriptRenderer().pxelinux(node(S.DISK_ERASING), MAC, BASE, NodeBoot(error="gone"))
    assert "SAY netboot: cannot erase brave-otter: gone" in cfg
    assert "TIMEOUT 300" in cfg and "PROMPT 1" in cfg and "KERNEL lpxelinux.0" in cfg


def test_preseed_deploy_boots_the_debian_installer_in_every_loader(tmp_path: Path):
    src = make_image(
        tmp_path / "di",
        name="debian-installer",
        kind="boot",
        version="d1",
        files={"linux": b"k" * 100, "initrd.gz": b"i" * 100},
    )
    doc = json.loads(src.read_text())
    doc.update(kernel="linux", initrds=["initrd.gz"])
    src.write_text(json.dumps(doc))
    cache = ImageCache(tmp_path / "cache")
    run_import(cache, str(src))
    deploying = dataclasses.replace(node(S.DEPLOYING), osystem="debian-installer")
    facts = NodeBoot(installer=installer_boot(deploying, cache, BASE, "deploy", "maas.lan"))
    cfg = ScriptRenderer().pxelinux(deploying, MAC, BASE, facts)
    assert f"KERNEL {BASE}/images/boot/debian-installer/d1/linux" in cfg
    assert f"auto=true priority=critical url={BASE}/api/deploy/abc123/preseed/t" in cfg
    assert "domain=maas.lan" in cfg
    grub = ScriptRenderer().grub(deploying, MAC, BASE, facts)
    assert "initrd /images/boot/debian-installer/d1/initrd.gz" in grub


# -- iPXE ---------------------------------------------------------------------------------


def test_ipxe_deploy_and_erase_chain_the_deploy_api_and_local_once_installed(cache):
    r = ScriptRenderer()
    for status in (S.DEPLOYING, S.DISK_ERASING):
        script = r.ipxe(node(status), MAC, BASE, facts_for(status, cache))
        assert f"chain --replace {BASE}/api/deploy/abc123/boot.ipxe" in script
    local = r.ipxe(node(S.DEPLOYING), MAC, BASE, NodeBoot(installed=True))
    assert "sanboot --no-describe --drive 0x80" in local
    assert local.rstrip().endswith("exit 1")


# -- facts from the store and the cache, files over TFTP ----------------------------------


def test_node_boot_facts_read_the_install_mark_and_choose_the_installer(tmp_path: Path, cache):
    store = open_store(tmp_path / "db.sqlite3")
    try:
        body = {
            "boot_mac": MAC,
            "interfaces": [{"name": "eth0", "mac": MAC}],
            "cpu": {"count": 1, "model": "x"},
            "memory": {"total_mib": 512},
            "disks": [],
        }
        n, _ = store.enlist(parse_enlist_body(json.dumps(body).encode()), 1.0, "t")
        sid = n.system_id
        for status in (S.COMMISSIONING, S.READY, S.ALLOCATED, S.DEPLOYING):
            n, _ = store.transition(sid, status, time.time(), "t", "t")
        facts = NodeBootFacts(store, cache, BASE)
        got = facts(n)
        assert not got.installed and got.installer.ref == "boot/installer/i1"
        assert got.installer.purpose == "deploy"
        store.begin_deployment(sid, store.deploy_episode(sid), "image", "", "", time.time())
        store.deployment_finished(sid, True, b"log", time.time(), "node")
        assert facts(n) == NodeBoot(installed=True)
        files = DynamicBootFiles(store.node_by_mac, ScriptRenderer(), BASE, facts, cache)
        cfg = files(normalise("pxelinux.cfg/01-52-54-00-12-34-56"), PEER).read().decode()
        assert "LOCALBOOT 0" in cfg
        n, _ = store.transition(sid, S.DISK_ERASING, time.time(), "t", "release with erase")
        assert facts(n).installer.purpose == "erase"
        grub = files(normalise(f"grub/grub.cfg-{MAC}"), PEER).read().decode()
        assert "netboot.purpose=erase" in grub
        assert facts(None) == NodeBoot()
        assert NodeBootFacts(store, ImageCache(tmp_path / "empty"), BASE)(n).error.startswith(
            "no installer boot image"
        )
    finally:
        store.close()


def test_tftp_serves_boot_image_files_from_the_cache_and_nothing_else(cache):
    files = DynamicBootFiles(lambda _mac: None, ScriptRenderer(), BASE, images=cache)
    served = files(normalise("/images/boot/installer/i1/vmlinuz"), PEER)
    assert isinstance(served, io.BufferedReader)
    with served:
        assert served.read() == KERNEL
    with pytest.raises(FileNotFound):
        files(normalise("images/boot/installer/nope/vmlinuz"), PEER)
    with pytest.raises(FileNotFound):
        files(normalise("images/boot/installer/i1/manifest.json"), PEER)  # not a listed file
    assert files(normalise("images/deploy/debian/d1/root.tar.zst"), PEER) is None
    # A file changed after it was verified is refused, not served.
    path = cache.checked_path(cache.get("boot", "installer"), "deploy.initrd")
    path.write_bytes(b"tampered")
    with pytest.raises(FileNotFound):
        files(normalise("images/boot/installer/i1/deploy.initrd"), PEER)
