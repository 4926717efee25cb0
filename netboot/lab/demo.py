"""``netboot demo`` / ``make demo``: a private lab, netboot serving it, two QEMU nodes
(BIOS and UEFI) that PXE boot and enlist, then the node table.

Everything runs in a namespace made here and is torn down on exit or Ctrl-C.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

from rich.console import Console

from netboot.lab.appliance import LabAppliance
from netboot.lab.netns import LabNetwork
from netboot.lab.qemu import NodeSpec, QemuNode, choose_accel

DEMO_NODES = (
    NodeSpec(
        "bios-node",
        "52:54:00:6e:62:01",
        "6e657462-6f6f-7400-0000-000000000001",
        firmware="bios",
        memory_mib=512,
        cpus=1,
        product="Demo BIOS node",
    ),
    NodeSpec(
        "uefi-node",
        "52:54:00:6e:62:02",
        "6e657462-6f6f-7400-0000-000000000002",
        firmware="uefi",
        memory_mib=768,
        cpus=1,
        product="Demo UEFI node",
    ),
)


def run_demo(boot_dir: Path, workdir: Path, timeout: float) -> int:
    console = Console()
    if os.geteuid() != 0:
        console.print("[red]netboot demo needs root (network namespaces, tap devices)[/]")
        return 2
    for name in ("vmlinuz", "enlist.initrd", "snponly.efi"):
        if not (boot_dir / name).exists():
            console.print(f"[red]{boot_dir / name} is missing: run `make demo`[/]")
            return 2
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    accel, why = choose_accel(os.environ.get("NETBOOT_QEMU_ACCEL"))
    started = time.monotonic()
    with LabNetwork(prefix="nbdemo") as lab:
        console.print(
            f"lab namespace [bold]{lab.name}[/], bridge {lab.bridge} "
            f"{lab.address} (nothing touches the host's interfaces)"
        )
        appliance = LabAppliance(lab, workdir / "appliance", boot_dir).start()
        try:
            with console.status("starting netboot serve..."):
                appliance.wait_ready()
            console.print(
                f"netboot serving DHCP/TFTP/HTTP on {lab.bridge}; log: {appliance.log_path}"
            )
            console.print(f"QEMU accelerator: {accel} ({why})")
            nodes = [QemuNode(lab, spec, workdir / "nodes") for spec in DEMO_NODES]
            pending = {n.spec.name: n for n in nodes}
            with console.status("") as status:
                deadline = time.monotonic() + timeout
                while pending and time.monotonic() < deadline:
                    for name, node in list(pending.items()):
                        if node.proc.poll() is not None:
                            del pending[name]
                            console.print(
                                f"{name} powered off after {time.monotonic() - started:.0f}s"
                            )
                    status.update(
                        f"waiting for {', '.join(pending)} to PXE boot, enlist and "
                        f"power off ({time.monotonic() - started:.0f}s; serial logs "
                        f"in {workdir / 'nodes'})"
                    )
                    time.sleep(0.5)
            for node in nodes:
                if node.proc.poll() is None:
                    console.print(
                        f"[red]{node.spec.name} did not finish; serial tail:[/]\n"
                        f"{node.serial_tail()}"
                    )
            result = appliance.netboot("nodes")
            print(result.stdout or result.stderr, flush=True)  # already laid out by rich
            console.print(
                f"HTTP endpoint: {appliance.http_base}/api/nodes, inside the lab namespace: "
                f"`ip netns exec {lab.name} curl {appliance.http_base}/api/nodes` "
                f"while the lab is up.\nState kept in {appliance.state_dir}; "
                f"`netboot --config {appliance.config_path} nodes` shows it again."
            )
            ok = not pending and all(n.proc.returncode == 0 for n in nodes)
            if sys.stdin.isatty():
                console.print("The lab stays up until you press Enter (or Ctrl-C).")
                input()
            return 0 if ok else 1
        except KeyboardInterrupt:
            console.print("interrupted: tearing the lab down")
            return 130
        finally:
            appliance.stop()


if __name__ == "__main__":
    sys.exit(run_demo(Path("build/boot").resolve(), Path("build/demo").resolve(), 600))
