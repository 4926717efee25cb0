"""Launch QEMU lab nodes that network boot on a lab tap: BIOS (SeaBIOS + QEMU's iPXE
ROM) or UEFI (OVMF's own PXE, as on real UEFI boards).

Accelerator: KVM is unusable on nested ``kvm_pvm`` hosts (firmware stalls; see
LAB-NOTES), so TCG is chosen there; ``NETBOOT_QEMU_ACCEL`` overrides.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from twisted.logger import Logger

from netboot.lab.netns import LabNetwork

log = Logger(namespace="netboot.lab")

OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")
# Secure Boot: SMM-protected code + vars with Microsoft keys enrolled, SB enforced.
OVMF_CODE_SB = Path("/usr/share/OVMF/OVMF_CODE_4M.secboot.fd")
OVMF_VARS_SB = Path("/usr/share/OVMF/OVMF_VARS_4M.ms.fd")
QEMU = "qemu-system-x86_64"
# arm64 UEFI (AAVMF): always TCG on an x86 host.
QEMU_ARM64 = "qemu-system-aarch64"
AAVMF_CODE = Path("/usr/share/AAVMF/AAVMF_CODE.fd")
AAVMF_VARS = Path("/usr/share/AAVMF/AAVMF_VARS.fd")


def choose_accel(override: str | None = None) -> tuple[str, str]:
    """(accel, why). Override wins; then TCG on kvm_pvm or without /dev/kvm."""
    if override:
        return override, "NETBOOT_QEMU_ACCEL"
    if Path("/sys/module/kvm_pvm").exists():
        return "tcg", "kvm_pvm nested virtualisation cannot run firmware"
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "tcg", "/dev/kvm is not usable"
    return "kvm", "/dev/kvm is usable"


@dataclass
class NodeSpec:
    name: str
    mac: str
    uuid: str
    firmware: str = "bios"  # "bios" | "uefi" | "uefi-sb" (Secure Boot enforced) | "aavmf"
    memory_mib: int = 512
    cpus: int = 1
    disk_gib: int = 2
    vendor: str = "netboot-lab"
    product: str = "QEMU lab node"
    serial: str = ""
    extra_args: list[str] = field(default_factory=list)
    disk_from: Path | None = None  # a raw image the disk starts as (else empty)


class QemuNode:
    """One running QEMU process inside the lab namespace."""

    def __init__(
        self, lab: LabNetwork, spec: NodeSpec, workdir: Path, accel: str | None = None
    ) -> None:
        self.spec = spec
        self.workdir = workdir / spec.name
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.serial_log = self.workdir / "serial.log"
        self.accel, why = choose_accel(accel or os.environ.get("NETBOOT_QEMU_ACCEL"))
        log.info("{node}: QEMU accel {accel} ({why})", node=spec.name, accel=self.accel, why=why)
        self.tap = lab.add_tap()
        self.command = self._command()
        self._stderr = open(self.workdir / "qemu.stderr", "wb")  # noqa: SIM115 (closed in wait)
        self.proc = lab.popen(self.command, stdout=subprocess.DEVNULL, stderr=self._stderr)

    def _command(self) -> list[str]:
        s = self.spec
        disk = self.workdir / "disk.img"
        with open(disk, "wb") as f:  # sparse, empty unless the spec brings an image
            if s.disk_from is not None:
                f.write(s.disk_from.read_bytes())
            f.truncate(max(s.disk_gib << 30, f.tell()))
        smbios = (
            f"type=1,manufacturer={_smbios(s.vendor)},product={_smbios(s.product)},"
            f"serial={_smbios(s.serial or s.name)},uuid={s.uuid}"
        )
        arm64 = s.firmware == "aavmf"
        cmd = [
            QEMU_ARM64 if arm64 else QEMU,
            "-accel",
            "tcg" if arm64 else self.accel,
            "-m",
            str(s.memory_mib),
            "-smp",
            str(s.cpus),
            "-name",
            s.name,
            "-nographic",
            "-serial",
            f"file:{self.serial_log}",
            "-monitor",
            "none",
            "-parallel",
            "none",
            "-no-reboot",
            "-smbios",
            smbios,
            "-drive",
            f"file={disk},if=virtio,format=raw",
            "-netdev",
            f"tap,id=n0,ifname={self.tap},script=no,downscript=no",
        ]
        if s.firmware == "bios":
            # QEMU's default ROM for virtio-net-pci is iPXE (efi-virtio.rom).
            cmd += [
                "-machine",
                "pc",
                "-device",
                f"virtio-net-pci,netdev=n0,mac={s.mac},bootindex=1",
            ]
        elif s.firmware in ("uefi", "uefi-sb"):
            secure = s.firmware == "uefi-sb"
            code = OVMF_CODE_SB if secure else OVMF_CODE
            vars_copy = self.workdir / "OVMF_VARS.fd"
            shutil.copyfile(OVMF_VARS_SB if secure else OVMF_VARS, vars_copy)
            if secure:  # LAB-NOTES "Secure Boot": SMM and a secure pflash are required
                cmd += ["-global", "driver=cfi.pflash01,property=secure,value=on"]
            cmd += [
                "-machine",
                "q35,smm=on" if secure else "q35",
                "-drive",
                f"if=pflash,format=raw,unit=0,readonly=on,file={code}",
                "-drive",
                f"if=pflash,format=raw,unit=1,file={vars_copy}",
                # romfile= (empty): OVMF's own PXE, like a real UEFI board's NIC.
                "-device",
                f"virtio-net-pci,netdev=n0,mac={s.mac},romfile=,bootindex=1",
                # Skip the IPv6 PXE attempt that follows a failed IPv4 one (LAB-NOTES).
                "-fw_cfg",
                "name=opt/org.tianocore/IPv6Support,string=no",
            ]
        elif arm64:
            vars_copy = self.workdir / "AAVMF_VARS.fd"
            shutil.copyfile(AAVMF_VARS, vars_copy)
            cmd += [
                "-machine",
                "virt",
                "-cpu",
                "cortex-a57",
                "-drive",
                f"if=pflash,format=raw,unit=0,readonly=on,file={AAVMF_CODE}",
                "-drive",
                f"if=pflash,format=raw,unit=1,file={vars_copy}",
                "-device",
                f"virtio-net-pci,netdev=n0,mac={s.mac},romfile=,bootindex=1",
                "-fw_cfg",
                "name=opt/org.tianocore/IPv6Support,string=no",
            ]
        else:
            raise ValueError(f"unknown firmware {s.firmware!r}")
        return cmd + s.extra_args

    def wait(self, timeout: float) -> int:
        """Wait (bounded) for the guest to power itself off; return QEMU's exit code."""
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            self._stderr.close()

    def serial_tail(self, lines: int = 40) -> str:
        try:
            text = self.serial_log.read_text(errors="replace")
        except FileNotFoundError:
            return "(no serial output)"
        return "\n".join(text.splitlines()[-lines:])


def _smbios(value: str) -> str:
    # QEMU option syntax: a comma inside a value is written as two commas.
    return value.replace(",", ",,")
