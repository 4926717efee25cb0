"""End to end: every firmware boot path netboot offers, in QEMU, at once, to enlistment.

Two appliances, each in its own lab namespace, because the loader family is a
configuration switch ([boot] in netboot.toml):

lab "pxelinux" (bios_loader = "pxelinux", uefi_loader = "ipxe"):
  * BIOS pxelinux: SeaBIOS + iPXE ROM -> TFTP lpxelinux.0 + ldlinux.c32 ->
    pxelinux.cfg/01-<mac> (rendered) -> kernel + initrd over HTTP -> enlist.
  * OVMF UEFI HTTP boot: PXE disabled in firmware -> DHCP arch 16 "HTTPClient" ->
    ipxe.efi over HTTP -> iPXE script -> kernel + initrd over HTTP -> enlist.
  * Secure Boot enforced, unsigned loader: OVMF secboot + MS keys gets snponly.efi
    and must refuse it ("Access Denied"). Proves Secure Boot really is on in this lab.
  * arm64 UEFI (AAVMF, TCG): PXE -> grubaa64.efi (Debian's signed grubnetaa64) ->
    grub/grub.cfg -> grub.cfg-<mac> (rendered) -> asks /arm64/vmlinuz over TFTP. No
    arm64 enlistment image is built yet, so this path is checked up to that request.
  * BIOS pxelinux local boot: a DEPLOYED node gets `LOCALBOOT 0`; pxelinux hands back
    to SeaBIOS, which boots the disk: a 512-byte boot sector that prints LOCALBOOT-OK on
    the serial port.
lab "shim" (uefi_loader = "shim"):
  * OVMF Secure Boot: shim (MS-signed) -> signed grub -> grub/grub.cfg ->
    grub.cfg-<mac> (rendered) -> signed kernel + initrd over TFTP -> enlist.

The BIOS iPXE and OVMF PXE (snponly.efi) paths are covered by test_pxe_enlist.py.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import pytest

from netboot.lab.appliance import LabAppliance
from netboot.lab.netns import LabNetwork
from netboot.lab.qemu import NodeSpec, QemuNode, choose_accel
from netboot.nodes.lifecycle import NodeStatus
from netboot.store.sqlite import open_store
from tests.conftest import BOOT_DIR, require_root
from tests.e2e.seed import enlist_as

pytestmark = [pytest.mark.qemu, pytest.mark.netns]

# TCG, 4 VMs at once on a loaded 2-core host: LAB-NOTES says ~19 s each idle; 3x+ margin.
BOOT_TIMEOUT = 420
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "e2e-boot-paths"
HTTP_BOOT_ONLY = [
    "-fw_cfg",
    "name=opt/org.tianocore/IPv4PXESupport,string=no",
]

PXELINUX_BIOS = NodeSpec(
    "pxelinux-bios",
    "52:54:00:e2:b0:01",
    "e2eb0000-0000-4000-8000-000000000001",
    firmware="bios",
    memory_mib=512,
    serial="SN-PXELINUX",
)
HTTP_BOOT = NodeSpec(
    "uefi-http",
    "52:54:00:e2:b0:02",
    "e2eb0000-0000-4000-8000-000000000002",
    firmware="uefi",
    memory_mib=768,
    serial="SN-HTTPBOOT",
    extra_args=HTTP_BOOT_ONLY,
)
SB_REFUSES_IPXE = NodeSpec(
    "sb-unsigned",
    "52:54:00:e2:b0:03",
    "e2eb0000-0000-4000-8000-000000000003",
    firmware="uefi-sb",
    memory_mib=512,
    serial="SN-SB-IPXE",
)
SB_SHIM = NodeSpec(
    "sb-shim",
    "52:54:00:e2:b0:04",
    "e2eb0000-0000-4000-8000-000000000004",
    firmware="uefi-sb",
    memory_mib=768,
    serial="SN-SB-SHIM",
)

PXELINUX_LOCAL = NodeSpec(
    "pxelinux-local",
    "52:54:00:e2:b0:06",
    "e2eb0000-0000-4000-8000-000000000006",
    firmware="bios",
    memory_mib=256,
    serial="SN-PXELINUX-LOCAL",
)
LOCAL_MARKER = b"LOCALBOOT-OK"
# A real-mode boot sector (loaded at 0x7c00) that writes LOCAL_MARKER to COM1 and halts:
#   xor ax,ax; mov ds,ax; cld; mov si,msg; mov dx,0x3f8
#   next: lodsb; test al,al; jz stop; out dx,al; jmp next
#   stop: hlt; jmp stop
#   msg: db "LOCALBOOT-OK", 13, 10, 0
_CODE = bytes.fromhex("31c08ed8fcbe167cbaf803ac84c07403eeebf8f4ebfd")
assert len(_CODE) == 0x16  # msg follows the code: mov si above points there
BOOT_SECTOR = (_CODE + LOCAL_MARKER + b"\r\n\0").ljust(510, b"\0") + b"\x55\xaa"

ARM64 = NodeSpec(
    "arm64",
    "52:54:00:e2:b0:05",
    "e2eb0000-0000-4000-8000-000000000005",
    firmware="aavmf",
    memory_mib=512,
    serial="SN-ARM64",
)

DEPLOYED_PATH = (
    NodeStatus.COMMISSIONING,
    NodeStatus.READY,
    NodeStatus.ALLOCATED,
    NodeStatus.DEPLOYING,
    NodeStatus.DEPLOYED,
)

LOADERS = ("vmlinuz", "enlist.initrd", "lpxelinux.0", "ldlinux.c32", "ipxe.efi", "snponly.efi")
SB_LOADERS = ("bootx64.efi", "grubx64.efi", "grubaa64.efi")


def start_appliance(lab: LabNetwork, workdir: Path, boot_table: str) -> LabAppliance:
    app = LabAppliance(lab, workdir, BOOT_DIR)
    app.config_path.write_text(app.config_path.read_text() + f"\n[boot]\n{boot_table}\n")
    return app.start()


def test_pxelinux_http_boot_and_secure_boot_paths_enlist(lab: LabNetwork, tmp_path: Path):
    require_root()
    for name in LOADERS + SB_LOADERS:
        assert (BOOT_DIR / name).exists(), f"{BOOT_DIR / name} missing: run `make boot` first"
    print("QEMU accel: {} ({})".format(*choose_accel()))
    disk = tmp_path / "local-boot.img"
    disk.write_bytes(BOOT_SECTOR)
    local = dataclasses.replace(PXELINUX_LOCAL, disk_from=disk)
    with LabNetwork(prefix="nbsb") as shim_lab:
        apps = {
            "pxelinux": start_appliance(lab, tmp_path / "app-pxelinux", 'bios_loader = "pxelinux"'),
            "shim": start_appliance(shim_lab, tmp_path / "app-shim", 'uefi_loader = "shim"'),
        }
        nodes: list[QemuNode] = []
        try:
            for app in apps.values():
                app.wait_ready()
            store = open_store(apps["pxelinux"].state_dir / "netboot.sqlite3")
            try:
                enlist_as(store, local, DEPLOYED_PATH, fields={"owner": "admin"})
            finally:
                store.close()
            started = time.monotonic()
            nodes = [
                QemuNode(lab, PXELINUX_BIOS, tmp_path / "nodes"),
                QemuNode(lab, HTTP_BOOT, tmp_path / "nodes"),
                QemuNode(lab, SB_REFUSES_IPXE, tmp_path / "nodes"),
                QemuNode(shim_lab, SB_SHIM, tmp_path / "nodes"),
                QemuNode(lab, ARM64, tmp_path / "nodes"),
                QemuNode(lab, local, tmp_path / "nodes"),
            ]
            deadline = started + BOOT_TIMEOUT
            # Each VM is done at its own milestone; firmware-only ones are stopped there so
            # they stop eating the CPU the Linux boots need.
            pending = {
                node.spec.name: done
                for node, done in zip(
                    nodes,
                    [
                        powered_off,
                        powered_off,
                        lambda n: serial_has(n, "Access Denied"),
                        powered_off,
                        lambda n: "refused /arm64/vmlinuz to" in apps["pxelinux"].log_text(),
                        lambda n: serial_has(n, LOCAL_MARKER.decode()),
                    ],
                    strict=True,
                )
            }
            while pending and time.monotonic() < deadline:
                for node in nodes:
                    check = pending.get(node.spec.name)
                    if check is not None and check(node):
                        del pending[node.spec.name]
                        print(
                            f"{node.spec.name}: done {time.monotonic() - started:.1f}s after start"
                        )
                        if node.proc.poll() is None:
                            node.proc.terminate()  # milestone reached: firmware-only check
                time.sleep(0.5)
            for name in pending:
                node = next(n for n in nodes if n.spec.name == name)
                pytest.fail(f"{name} did not reach its milestone in time\n{report(node, apps)}")
            for node in (nodes[0], nodes[1], nodes[3]):
                assert node.wait(timeout=10) == 0, report(node, apps)

            assert_enlisted(apps["pxelinux"], [PXELINUX_BIOS, HTTP_BOOT])
            assert_enlisted(apps["shim"], [SB_SHIM])

            log = apps["pxelinux"].log_text()
            assert "tftp: sent lpxelinux.0 to" in log
            assert "tftp: sent ldlinux.c32 to" in log
            assert f"pxelinux config enlist for {PXELINUX_BIOS.mac}" in log
            assert "HTTPClient" in log  # the arch-16 offer echoed option 60
            assert f"iPXE script enlist for {HTTP_BOOT.mac}" in log
            assert "tftp: sent snponly.efi to" in log  # what the Secure Boot VM refused

            log = apps["shim"].log_text()
            for sent in ("bootx64.efi", "grubx64.efi", "grub/grub.cfg", "vmlinuz", "enlist.initrd"):
                assert f"tftp: sent {sent} to" in log or f"tftp: sent /{sent} to" in log, sent
            assert f"grub config enlist for {SB_SHIM.mac}" in log

            log = apps["pxelinux"].log_text()
            assert f"to {ARM64.mac} (arch 11, " in log and "boot=grubaa64.efi" in log
            assert "tftp: sent grubaa64.efi to" in log
            assert f"grub config enlist for {ARM64.mac}" in log
            assert f"pxelinux config local for {PXELINUX_LOCAL.mac}" in log
        finally:
            keep_artifacts(apps, nodes)
            for app in apps.values():
                app.stop()


def powered_off(node: QemuNode) -> bool:
    return node.proc.poll() is not None


def serial_has(node: QemuNode, text: str) -> bool:
    return node.serial_log.exists() and text in node.serial_log.read_text(errors="replace")


def assert_enlisted(app: LabAppliance, specs: list[NodeSpec]) -> None:
    listing = app.netboot("nodes", "--json")
    assert listing.returncode == 0, listing.stderr
    by_mac = {n["boot_mac"]: n for n in json.loads(listing.stdout)}
    for spec in specs:
        assert spec.mac in by_mac, f"{spec.name} not enlisted:\n{tail(app.log_text())}"
        node = by_mac[spec.mac]
        assert node["uuid"] == spec.uuid
        assert node["serial"] == spec.serial
        assert node["memory_mib"] == spec.memory_mib


def report(node: QemuNode, apps: dict[str, LabAppliance]) -> str:
    logs = "\n".join(f"--- {name} log tail:\n{tail(a.log_text())}" for name, a in apps.items())
    return f"serial tail:\n{node.serial_tail()}\n{logs}"


def tail(text: str, lines: int = 50) -> str:
    return "\n".join(text.splitlines()[-lines:])


def keep_artifacts(apps: dict[str, LabAppliance], nodes: list[QemuNode]) -> None:
    """Serial and server logs, kept for CI to show when something fails."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for name, app in apps.items():
        if app.log_path.exists():
            (ARTIFACTS / f"netboot-{name}.log").write_text(app.log_text())
    for node in nodes:
        if node.serial_log.exists():
            (ARTIFACTS / f"{node.spec.name}.serial.log").write_bytes(node.serial_log.read_bytes())
