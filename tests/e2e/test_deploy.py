"""End to end: deploy Debian to empty disks and hand the nodes off, BIOS and UEFI at once.

Each QEMU node (empty virtual disk, power type manual: the test powers the VM as an
operator would) goes enlist -> commission -> Ready -> allocate + deploy through the MAAS
API with user_data -> the fast installer writes the image and reboots -> the node's PXE
answer is now "boot the local disk" -> Debian boots from disk, cloud-init applies the
user_data and phones home -> Deployed -> release -> Ready. The user_data writes a marker
file, then prints it, the node's own name and an outside name as resolved through the
appliance's DNS (forwarding to a fake upstream in the lab) to the serial console, and
powers the machine off. Every phase's time is printed.

The BIOS node is released with ``erase=true``: it goes to Disk erasing, boots again (the
same disk) into the installer's erase mode, which wipes the signatures and zeroes both
ends of the disk, reports and powers off -> Ready; the test then reads the disk image:
the GPT, the root file system's superblock and the ESP's boot sector are gone.
"""

from __future__ import annotations

import base64
import secrets
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from netboot.lab.appliance import LabAppliance
from netboot.lab.netns import LabNetwork
from netboot.lab.qemu import NodeSpec, QemuNode, choose_accel
from tests.conftest import BOOT_DIR
from tests.integration.maas_helpers import MaasCurl

pytestmark = [pytest.mark.qemu, pytest.mark.netns]

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "artifacts" / "e2e-deploy"
BOOT_TIMEOUT = 420  # one boot: TCG on a loaded 2-core host (LAB-NOTES figures x3 and more)
DEPLOY_TIMEOUT = 1200  # installer + reboot + first boot of the installed system (loaded host)
UPSTREAM = "10.66.0.60"  # fake "internet" DNS (tests/integration/fake_dns_upstream.py)
OUTSIDE_NAME, OUTSIDE_ADDR = "www.example.test", "198.51.100.10"

NODES = [  # the BIOS node is released with erase
    NodeSpec(
        "dbios",
        "52:54:00:de:01:01",
        "de000000-0000-4000-8000-000000000001",
        firmware="bios",
        memory_mib=1024,
        cpus=1,
        disk_gib=3,
        serial="SN-DEPLOY-BIOS",
        # No floppy drive: the installed kernel would spend ~25 s under TCG probing one.
        extra_args=["-global", "isa-fdc.fdtypeA=none"],
    ),
    NodeSpec(
        "duefi",
        "52:54:00:de:01:02",
        "de000000-0000-4000-8000-000000000002",
        firmware="uefi",
        memory_mib=1024,
        cpus=1,
        disk_gib=3,
        serial="SN-DEPLOY-UEFI",
    ),
]


class InstalledNode(QemuNode):
    """A node that reboots in place (no -no-reboot): installer -> reboot -> local disk.

    Its firmware boot order is network first, then the disk, as on a provisioned server:
    QEMU only lists devices with a bootindex in the order OVMF follows, so the disk gets
    one (an OVMF without it drops the disk and ends in its shell after the network)."""

    def _command(self) -> list[str]:
        cmd = [arg for arg in super()._command() if arg != "-no-reboot"]
        disk = cmd.index("-drive") + 1
        assert cmd[disk].endswith(",if=virtio,format=raw"), cmd[disk]
        path = cmd[disk].removesuffix(",if=virtio,format=raw")
        cmd[disk] = f"{path},if=none,id=disk0,format=raw"
        cmd[disk + 1 : disk + 1] = ["-device", "virtio-blk-pci,drive=disk0,bootindex=2"]
        return cmd


def erasing_node(disk: Path) -> type[QemuNode]:
    """A node class that boots (network first, -no-reboot) with ``disk``, the disk the
    deploy wrote, instead of a new empty one: the erase run powers it off when done."""

    class ErasingNode(QemuNode):
        def _command(self) -> list[str]:
            cmd = super()._command()
            drive = cmd.index("-drive") + 1
            assert cmd[drive].endswith(",if=virtio,format=raw"), cmd[drive]
            cmd[drive] = f"file={disk},if=virtio,format=raw"
            return cmd

    return ErasingNode


MIB = 1 << 20


def disk_facts(disk: Path) -> dict[str, bool]:
    """The primary and backup GPT headers, and whether both 2 MiB ends are zero."""
    size = disk.stat().st_size
    with open(disk, "rb") as f:
        head = f.read(2 * MIB)
        f.seek(size - 2 * MIB)
        tail = f.read(2 * MIB)
    return {
        "primary GPT": head[512:520] == b"EFI PART",
        "backup GPT": tail[-512:-504] == b"EFI PART",
        "head zeroed": head == bytes(len(head)),
        "tail zeroed": tail == bytes(len(tail)),
    }


def partition_starts(disk: Path) -> dict[int, int]:
    """Byte offset of each partition (1-based) from the primary GPT (UEFI spec 5.3)."""
    with open(disk, "rb") as f:
        header = f.read(1024)[512:]
        assert header[:8] == b"EFI PART", "no GPT on the deployed disk"
        entries_lba, count, entry_size = struct.unpack_from("<QII", header, 72)
        f.seek(entries_lba * 512)
        table = f.read(count * entry_size)
    starts = {}
    for i in range(count):
        entry = table[i * entry_size : (i + 1) * entry_size]
        if entry[:16] != bytes(16):
            starts[i + 1] = struct.unpack_from("<Q", entry, 32)[0] * 512
    return starts


def signatures(disk: Path, starts: dict[int, int]) -> dict[str, bool]:
    """ext4 magic (0xEF53 at 1024 + 56) in the root partition, FAT32 at 0x52 in the ESP."""
    with open(disk, "rb") as f:
        f.seek(starts[3] + 1024 + 56)
        ext4 = f.read(2) == b"\x53\xef"
        f.seek(starts[2] + 0x52)
        fat = f.read(5) == b"FAT32"
    return {"root ext4 superblock": ext4, "ESP FAT32 boot sector": fat}


def user_data(marker: str) -> bytes:
    return f"""#cloud-config
write_files:
  - path: /root/netboot-e2e-marker
    content: "{marker}\\n"
runcmd:
  - [sh, -c, 'echo "E2E-MARKER $(cat /root/netboot-e2e-marker)" >/dev/ttyS0']
  - [sh, -c, 'echo "E2E-SELF $(hostname) $(getent hosts $(hostname).maas.lan)" >/dev/ttyS0']
  - [sh, -c, 'echo "E2E-OUTSIDE $(getent hosts {OUTSIDE_NAME})" >/dev/ttyS0']
  - [sh, -c, 'echo "E2E-RESOLVER $(grep ^nameserver /etc/resolv.conf)" >/dev/ttyS0']
  - [sh, -c, 'echo "E2E-FIRMWARE $(test -d /sys/firmware/efi && echo uefi || echo bios)" \
      >/dev/ttyS0']
power_state:
  mode: poweroff
  delay: now
""".encode()


def deploy_image_dir() -> Path:
    """The deploy image for the current recipe (a cache hit after `make images`)."""
    out = subprocess.run(
        [str(REPO / "images" / "deploy" / "build.sh"), str(REPO / "build" / "images" / "deploy")],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert out.returncode == 0, f"images/deploy/build.sh failed:\n{out.stderr[-3000:]}"
    return Path(out.stdout.strip().splitlines()[-1])


class RetryingApi:
    """The MAAS client side of the test: a transport failure of curl in the lab client
    (not an HTTP error) is retried twice, so a slow host does not fail the whole run."""

    def __init__(self, api: MaasCurl) -> None:
        self.api = api

    def call(self, *args, **kw):
        for attempt in range(3):
            try:
                return self.api.call(*args, **kw)
            except AssertionError as exc:  # MaasCurl asserts curl exited 0
                if attempt == 2 or "curl: (" not in str(exc):
                    raise
                print(f"curl failed ({exc}); retrying")
        raise AssertionError("unreachable")


class Flow:
    """One node's way through the lifecycle, with the time of each phase."""

    def __init__(self, spec: NodeSpec, lab, app: LabAppliance, api: MaasCurl, tmp: Path):
        self.spec, self.lab, self.app, self.api, self.tmp = spec, lab, app, api, tmp
        self.phases: dict[str, float] = {}
        self.error: BaseException | None = None
        self.marker = f"marker-{secrets.token_hex(6)}"
        self.serial = ""
        self.erase_serial = ""
        self.after_erase: dict[str, bool] = {}
        self.machine: dict = {}

    def run(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # reported by the main thread
            self.error = exc

    def _timed(self, name: str, fn):
        started = time.monotonic()
        result = fn()
        self.phases[name] = time.monotonic() - started
        return result

    def _boot(self, label: str, cls=QemuNode, timeout: float = BOOT_TIMEOUT) -> str:
        node = cls(self.lab, self.spec, self.tmp / label)
        try:
            code = node.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"{self.spec.name} {label}: no power off within {timeout}s; serial tail:\n"
                f"{node.serial_tail(80)}"
            ) from None
        finally:
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            if node.serial_log.exists():
                (ARTIFACTS / f"{self.spec.name}.{label}.serial.log").write_bytes(
                    node.serial_log.read_bytes()
                )
        serial = node.serial_log.read_text(errors="replace")
        assert code == 0, f"{self.spec.name} {label}: QEMU exit {code}\n{node.serial_tail(60)}"
        return serial

    def _machine(self) -> dict:
        code, machine = self.api.call("GET", f"machines/{self.machine['system_id']}/")
        assert code == 200, machine
        return machine

    def _wait_status(self, want: str, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            machine = self._machine()
            if machine["status_name"] == want or time.monotonic() > deadline:
                return machine
            time.sleep(1)

    def _run(self) -> None:
        spec = self.spec
        self._timed("enlist", lambda: self._boot("enlist"))
        code, machines = self.api.call("GET", "machines/")
        assert code == 200, machines
        mine = [
            m for m in machines if (m.get("boot_interface") or {}).get("mac_address") == spec.mac
        ]
        assert len(mine) == 1, machines
        self.machine = mine[0]
        sid = self.machine["system_id"]
        assert self.machine["status_name"] == "New"

        code, body = self.api.call("POST", f"machines/{sid}/", op="commission", data={})
        assert code == 200, body
        self._timed("commission", lambda: self._boot("commission"))
        machine = self._wait_status("Ready")
        assert machine["status_name"] == "Ready", machine["status_message"]

        def allocate_and_deploy() -> dict:
            code, body = self.api.call("POST", "machines/", op="allocate", data={"system_id": sid})
            assert code == 200 and body["system_id"] == sid, body
            code, body = self.api.call(
                "POST",
                f"machines/{sid}/",
                op="deploy",
                data={
                    "distro_series": "bookworm",
                    "user_data": base64.b64encode(user_data(self.marker)).decode(),
                },
            )
            assert code == 200, body
            return body

        body = self._timed("allocate+deploy API", allocate_and_deploy)
        assert body["status_name"] == "Deploying", body

        started = time.monotonic()
        self.serial = self._boot("deploy", InstalledNode, DEPLOY_TIMEOUT)
        total = time.monotonic() - started
        # Split the deploy boot by the appliance's events: installer done -> disk boot.
        events = _events(self.app, sid)
        t_config = next(t for t, kind, _ in events if kind == "deploy:config")
        t_installed = next(t for t, kind, _ in events if kind == "deploy:installed")
        t_deployed = next(t for t, kind, msg in events if kind == "status" and "phoned home" in msg)
        t_power_on = _deploy_started_wallclock(events)
        self.phases["deploy: PXE + installer boot"] = t_config - t_power_on
        self.phases["deploy: partition+image+grub"] = t_installed - t_config
        self.phases["deploy: reboot, disk boot, cloud-init"] = t_deployed - t_installed
        self.phases["deploy boot total (to power off)"] = total
        machine = self._machine()
        assert machine["status_name"] == "Deployed", machine["status_message"]

        if spec.firmware == "bios":
            self._release_with_erase(sid)
            return
        code, body = self.api.call("POST", f"machines/{sid}/", op="release", data={})
        assert code == 200, body
        machine = self._timed("release", lambda: self._wait_status("Ready"))
        assert machine["status_name"] == "Ready", machine

    def _release_with_erase(self, sid: str) -> None:
        """Release with erase=true: Disk erasing -> the erase run -> Ready; the disk's
        state before and after is kept for the main thread's checks."""
        disk = self.tmp / "deploy" / self.spec.name / "disk.img"
        starts = partition_starts(disk)
        before = {**disk_facts(disk), **signatures(disk, starts)}
        assert before["primary GPT"] and before["backup GPT"], before
        assert before["root ext4 superblock"] and before["ESP FAT32 boot sector"], before

        code, body = self.api.call(
            "POST", f"machines/{sid}/", op="release", data={"erase": "true", "quick_erase": "true"}
        )
        assert code == 200, body
        assert (body["status"], body["status_name"]) == (14, "Disk erasing"), body
        self.erase_serial = self._timed(
            "erase boot (PXE, installer, erase, off)",
            lambda: self._boot("erase", erasing_node(disk)),
        )
        machine = self._wait_status("Ready")
        assert machine["status_name"] == "Ready", machine["status_message"]
        events = _events(self.app, sid)
        t_release = next(t for t, kind, msg in events if "disk erase" in msg)
        t_config = next(t for t, kind, _ in events if kind == "erase:config")
        t_erased = next(t for t, kind, _ in events if kind == "erase:erased")
        t_ready = [t for t, kind, _ in events if kind == "status"][-1]
        self.phases["erase: PXE + installer boot"] = t_config - t_release
        self.phases["erase: wipe + zero (erase phase)"] = t_erased - t_config
        self.phases["erase: release to Ready"] = t_ready - t_release
        self.after_erase = {**disk_facts(disk), **signatures(disk, starts)}


def _events(app: LabAppliance, sid: str) -> list[tuple[float, str, str]]:
    import sqlite3

    db = sqlite3.connect(app.state_dir / "netboot.sqlite3")
    try:
        return db.execute(
            "SELECT time, kind, message FROM events WHERE system_id = ? ORDER BY id", (sid,)
        ).fetchall()
    finally:
        db.close()


def _deploy_started_wallclock(events) -> float:
    """When the deploy call moved the node to Deploying (the test powers it on right then)."""
    starts = [t for t, kind, msg in events if msg.startswith("deploying ")]
    return starts[-1] if starts else events[0][0]


def test_bios_and_uefi_nodes_deploy_debian_boot_from_disk_and_are_released(
    lab: LabNetwork, tmp_path: Path
):
    for name in ("vmlinuz", "enlist.initrd", "commission.initrd", "snponly.efi"):
        assert (BOOT_DIR / name).exists(), f"{BOOT_DIR / name} missing: run `make boot` first"
    installer = REPO / "build" / "images" / "installer" / "manifest.json"
    assert installer.exists(), f"{installer} missing: run `make images` first"
    image_dir = deploy_image_dir()
    accel, why = choose_accel()
    print(f"\nQEMU accel: {accel} ({why})")

    upstream_host = lab.add_host(f"{UPSTREAM}/24")
    upstream_log = tmp_path / "upstream.log"
    with open(upstream_log, "wb") as out:
        upstream_host.popen(
            [
                sys.executable,
                str(REPO / "tests" / "integration" / "fake_dns_upstream.py"),
                "--bind",
                UPSTREAM,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    app = LabAppliance(lab, tmp_path / "appliance", BOOT_DIR)
    cfg = app.config_path.read_text()
    assert "upstreams = []" in cfg
    app.config_path.write_text(cfg.replace("upstreams = []", f'upstreams = ["{UPSTREAM}"]'))
    app.start()
    flows: list[Flow] = []
    try:
        app.wait_ready()
        t0 = time.monotonic()
        for manifest in (installer, image_dir / "manifest.json"):
            imported = app.netboot("images", "import", "--quiet", str(manifest))
            assert imported.returncode == 0, imported.stderr
        import_s = time.monotonic() - t0
        key = app.netboot("apikey", "create").stdout.strip()
        api = RetryingApi(MaasCurl(lab.add_host("10.66.0.50/24"), app.http_base, key))

        flows = [Flow(spec, lab, app, api, tmp_path / spec.name) for spec in NODES]
        threads = [threading.Thread(target=f.run, name=f.spec.name, daemon=True) for f in flows]
        started = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=3 * BOOT_TIMEOUT + DEPLOY_TIMEOUT + 300)
        wall = time.monotonic() - started

        print(f"image import (installer + {image_dir.name}): {import_s:.1f}s")
        for f in flows:
            print(f"{f.spec.name} ({f.spec.firmware}):")
            for phase, secs in f.phases.items():
                print(f"  {phase:40s} {secs:7.1f}s")
        print(f"both nodes, enlist to released: {wall:.1f}s wall clock")
        for f in flows:
            assert not any(t.is_alive() for t in threads), "a node flow did not finish"
            if f.error is not None:
                raise AssertionError(
                    f"{f.spec.name}: {f.error}\n--- netboot log tail:\n{_tail(app.log_text())}"
                ) from f.error

        # The BIOS node's disk after the erase run (QEMU has exited): nothing left to boot
        # or mount, and the erase environment said what it did.
        [erased] = [f for f in flows if f.spec.firmware == "bios"]
        assert erased.after_erase == {
            "primary GPT": False,
            "backup GPT": False,
            "head zeroed": True,
            "tail zeroed": True,
            "root ext4 superblock": False,
            "ESP FAT32 boot sector": False,
        }, erased.after_erase
        assert "purpose erase" in erased.erase_serial, _tail(erased.erase_serial)
        assert "quick erase of: vda" in erased.erase_serial, _tail(erased.erase_serial)
        for f in flows:
            serial = f.serial
            hostname = f.machine["hostname"]
            assert f"E2E-MARKER {f.marker}" in serial, _tail(serial)
            assert f"E2E-FIRMWARE {f.spec.firmware}" in serial
            self_line = _line(serial, "E2E-SELF")
            # Its own name resolves through DNS (not /etc/hosts: the FQDN is only in the
            # appliance's zone) to its lease address on the lab network.
            assert self_line.startswith(f"E2E-SELF {hostname} 10.66.0."), self_line
            assert f"{hostname}.maas.lan" in self_line
            assert f"{OUTSIDE_ADDR}" in _line(serial, "E2E-OUTSIDE")
            assert _line(serial, "E2E-RESOLVER") == f"E2E-RESOLVER nameserver {lab.address.ip}"
            # The installer really ran for this firmware, and the token never hit the console.
            assert "netboot-deploy:" in serial and "installed; rebooting" in serial
            assert f"grub for {f.spec.firmware}" in serial
        log = app.log_text()
        for spec in NODES:
            assert f"iPXE script deploy for {spec.mac}" in log
        assert f"iPXE script erase for {NODES[0].mac}" in log
        assert "disks erased -> READY" in log
        assert "PXE answer is now the local disk" in log
    finally:
        app.stop()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        if app.log_path.exists():
            (ARTIFACTS / "netboot.log").write_text(app.log_text())


def _line(text: str, prefix: str) -> str:
    for line in text.splitlines():
        line = line.strip().strip("\r")
        if line.startswith(prefix):
            return line
    raise AssertionError(f"no {prefix!r} line on the serial console:\n{_tail(text)}")


def _tail(text: str, lines: int = 60) -> str:
    return "\n".join(text.splitlines()[-lines:])
