"""End to end: real firmware in QEMU PXE boots through `netboot serve` and enlists.

BIOS: SeaBIOS + QEMU's iPXE ROM -> DHCP (user class iPXE) -> HTTP script -> kernel +
initramfs over HTTP. UEFI: OVMF's own PXE -> DHCP (arch 7) -> TFTP snponly.efi -> iPXE
DHCP -> HTTP script -> kernel + initramfs. Both boot at once, as in a small boot storm.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from netboot.lab.appliance import LabAppliance
from netboot.lab.netns import LabNetwork
from netboot.lab.qemu import NodeSpec, QemuNode, choose_accel
from tests.conftest import BOOT_DIR

pytestmark = [pytest.mark.qemu, pytest.mark.netns]

# TCG boots take 13-25 s idle and 2-3x that on a loaded host (LAB-NOTES): 3x margin+.
BOOT_TIMEOUT = 300
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "e2e"

NODES = [
    NodeSpec(
        "bios",
        "52:54:00:e2:e0:01",
        "e2e00000-0000-4000-8000-000000000001",
        firmware="bios",
        memory_mib=512,
        cpus=2,
        disk_gib=3,
        vendor="Acme, Inc.",
        product="BIOS e2e",
        serial="SN-BIOS-1",
    ),
    NodeSpec(
        "uefi",
        "52:54:00:e2:e0:02",
        "e2e00000-0000-4000-8000-000000000002",
        firmware="uefi",
        memory_mib=768,
        cpus=1,
        disk_gib=2,
        vendor="Acme",
        product="UEFI e2e",
        serial="SN-UEFI-1",
    ),
]


def test_bios_and_uefi_nodes_pxe_boot_and_enlist(lab: LabNetwork, tmp_path: Path):
    for name in ("vmlinuz", "enlist.initrd", "snponly.efi", "undionly.kpxe"):
        assert (BOOT_DIR / name).exists(), f"{BOOT_DIR / name} missing: run `make boot` first"
    accel, why = choose_accel()
    print(f"QEMU accel: {accel} ({why})")
    app = LabAppliance(lab, tmp_path / "appliance", BOOT_DIR).start()
    nodes: list[QemuNode] = []
    try:
        app.wait_ready()
        started = time.monotonic()
        nodes = [QemuNode(lab, spec, tmp_path / "nodes") for spec in NODES]
        deadline = started + BOOT_TIMEOUT
        for node in nodes:
            remaining = max(1.0, deadline - time.monotonic())
            try:
                code = node.wait(timeout=remaining)
            except Exception:
                pytest.fail(
                    f"{node.spec.name} did not power off within {BOOT_TIMEOUT}s; "
                    f"serial tail:\n{node.serial_tail()}\n--- netboot log tail:\n"
                    f"{_tail(app.log_text())}"
                )
            print(
                f"{node.spec.name}: powered off {time.monotonic() - started:.1f}s "
                f"after start, exit {code}"
            )
            assert code == 0, node.serial_tail()

        listing = app.netboot("nodes", "--json")
        assert listing.returncode == 0, listing.stderr
        by_mac = {n["boot_mac"]: n for n in json.loads(listing.stdout)}
        assert set(by_mac) == {s.mac for s in NODES}, _tail(app.log_text())
        for spec in NODES:
            node = by_mac[spec.mac]
            assert node["uuid"] == spec.uuid
            assert node["cpu_count"] == spec.cpus
            assert node["memory_mib"] == spec.memory_mib
            assert node["status"] == 0 and node["status_name"] == "New"
            assert node["vendor"] == spec.vendor and node["product"] == spec.product
            assert node["serial"] == spec.serial
            assert [d["size_bytes"] for d in node["disks"]] == [spec.disk_gib << 30]
            assert node["hostname"]
        log = app.log_text()
        # The UEFI node took the PXE + TFTP loader path (not UEFI HTTP boot, its fallback);
        # the BIOS ROM is iPXE already and went straight to its HTTP script.
        assert re.search(rf"ACK 10\.66\.0\.\d+ to {NODES[1].mac} \(arch 7, ", log)
        assert "tftp: sent snponly.efi to" in log
        assert "HTTPClient" not in log
        assert f"iPXE script enlist for {NODES[0].mac}" in log
        # DNS: each node's name answers at once with the address DHCP gave it.
        client = lab.add_host("10.66.0.50/24")
        for spec in NODES:
            name = by_mac[spec.mac]["hostname"] + ".maas.lan"
            leased = re.findall(rf"ACK (10\.66\.0\.\d+) to {spec.mac}", log)[-1]
            dig = client.run(["dig", "@10.66.0.1", "+short", "+time=5", "+tries=2", name])
            assert dig.stdout.decode().split() == [leased], (name, leased, dig)
    finally:
        _keep_artifacts(tmp_path, app, nodes)


def _tail(text: str, lines: int = 60) -> str:
    return "\n".join(text.splitlines()[-lines:])


def _keep_artifacts(tmp_path: Path, app: LabAppliance, nodes: list[QemuNode]) -> None:
    """Serial logs and the server log, kept for CI to show when something fails."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    if app.log_path.exists():
        (ARTIFACTS / "netboot.log").write_text(app.log_text())
    for node in nodes:
        if node.serial_log.exists():
            (ARTIFACTS / f"{node.spec.name}.serial.log").write_bytes(node.serial_log.read_bytes())
