"""The rescue shell itself: the built installer (build/images/installer, `make images`)
booted in QEMU with ``netboot.purpose=rescue`` against a real `netboot serve` on
127.0.0.1, for a node put straight into Entering rescue mode (the API side is
tests/integration/test_rescue_api.py).

Direct kernel boot (no firmware, no PXE: every loader's config for rescue is checked in
tests/unit/test_rescue.py), so the run costs one Linux boot. The guest gets QEMU
user-mode networking with ``restrict=on`` and a ``guestfwd`` from http://10.0.2.100:80 to
the appliance; nothing leaves loopback. The serial console is a unix socket the test
types into. It checks: the node becomes Rescue mode with its events, a root shell
answers on the serial console and comes back after ``exit``, and the disk is neither
mounted nor written (every byte still zero).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from netboot.nodes.lifecycle import NodeStatus as S
from tests.e2e.test_enlist_image import qemu_accel
from tests.integration.test_deploy_api import MAC, running_appliance

pytestmark = pytest.mark.qemu

REPO = Path(__file__).resolve().parents[2]
# NETBOOT_INSTALLER_DIR: another build of images/installer/build.sh (its OUTDIR).
INSTALLER = Path(os.environ.get("NETBOOT_INSTALLER_DIR", REPO / "build" / "images" / "installer"))
UP_TIMEOUT = 300  # QEMU start -> the shell's "up" report (~13 s idle under TCG)
SHELL_TIMEOUT = 60  # a command typed on the serial console -> its answer
DISK_BYTES = 64 << 20


class Serial:
    """The guest's serial console through QEMU's unix socket server."""

    def __init__(self, path: Path) -> None:
        for _ in range(100):
            if path.exists():
                break
            time.sleep(0.1)
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(str(path))
        self.sock.settimeout(0.5)
        self.text = ""

    def read(self) -> None:
        with contextlib.suppress(TimeoutError):
            self.text += self.sock.recv(65536).decode("utf-8", "replace")

    def expect(self, marker: str, timeout: float, start: int = 0) -> None:
        end = time.monotonic() + timeout
        while marker not in self.text[start:]:
            assert time.monotonic() < end, f"no {marker!r} within {timeout} s:\n{self.text}"
            self.read()

    def run(self, command: str, marker: str) -> str:
        """Type ``command`` until ``marker`` follows: a line typed while ash sets up its
        terminal (the prompt's cursor query) may be flushed, so it is typed again after
        5 s without an answer (the commands here are idempotent)."""
        start = len(self.text)
        end = time.monotonic() + SHELL_TIMEOUT
        while True:
            self.sock.sendall(command.encode() + b"\n")
            try:
                self.expect(marker, 5, start)
                return self.text[start:]
            except AssertionError:
                if time.monotonic() > end:
                    raise


def test_rescue_environment_reports_up_and_gives_a_root_shell_without_touching_the_disk(
    tmp_path: Path,
):
    qemu = shutil.which("qemu-system-x86_64")
    assert qemu, "qemu-system-x86_64 is needed (apt-get install qemu-system-x86)"
    for name in ("vmlinuz", "deploy.initrd"):
        assert (INSTALLER / name).exists(), f"{INSTALLER / name} missing: run `make images`"
    disk = tmp_path / "disk.img"
    with disk.open("wb") as f:
        f.truncate(DISK_BYTES)
    sock = tmp_path / "serial.sock"
    (tmp_path / "appliance").mkdir()
    with running_appliance(tmp_path / "appliance") as app:
        port = int(app.base.rsplit(":", 1)[1])
        node = app.deploying_node(user_data=b"#cloud-config\n")
        sid = node.system_id
        app.store.transition(sid, S.DEPLOYED, time.time(), "t", "deployed")
        app.store.transition(sid, S.ENTERING_RESCUE_MODE, time.time(), "t", "rescue")
        append = (
            "console=tty0 console=ttyS0,115200n8 quiet loglevel=3 netboot.purpose=rescue "
            f"netboot.url=http://10.0.2.100:80 netboot.system_id={sid} "
            f"BOOTIF=01-{MAC.replace(':', '-')}"
        )
        # The TCP port of the appliance is reached through a per-connection process
        # (a chardev target would serve one connection only).
        fwd = f"guestfwd=tcp:10.0.2.100:80-cmd:busybox nc 127.0.0.1 {port}"
        cmd = [
            qemu, "-accel", qemu_accel(), "-m", "512", "-smp", "2", "-display", "none",
            "-monitor", "none", "-no-reboot", "-serial", f"unix:{sock},server=on,wait=off",
            "-kernel", str(INSTALLER / "vmlinuz"), "-initrd", str(INSTALLER / "deploy.initrd"),
            "-append", append,
            "-netdev", f"user,id=n0,restrict=on,{fwd}",
            "-device", f"virtio-net-pci,netdev=n0,mac={MAC}",
            "-drive", f"file={disk},format=raw,if=virtio",
        ]  # fmt: skip
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            serial = Serial(sock)
            started = time.monotonic()
            while app.store.node(sid).status is not S.RESCUE_MODE:
                assert proc.poll() is None, f"QEMU exited:\n{serial.text}"
                assert time.monotonic() - started < UP_TIMEOUT, (
                    f"not in rescue mode after {UP_TIMEOUT} s "
                    f"({app.store.node(sid).status.name}):\n{serial.text}"
                )
                serial.read()
            print(f"rescue mode {time.monotonic() - started:.1f} s after QEMU start")
            kinds = [e.kind for e in app.store.events(sid) if e.kind.startswith("rescue:")]
            assert kinds == ["rescue:config", "rescue:rescue"]
            serial.expect("Disks: vda", SHELL_TIMEOUT)
            serial.expect("rescue@", SHELL_TIMEOUT, serial.text.index("Disks: vda"))
            out = serial.run(
                "echo ID-$(id -u) MOUNTED-$(grep -c -E '^/dev/(vd|sd)' /proc/mounts) END-$((6*7))",
                "END-42",
            )
            assert "ID-0 MOUNTED-0 END-42" in out, out
            serial.run("exit", "built-in shell")  # the shell is respawned
            assert "AGAIN-2" in serial.run("echo AGAIN-$((1+1))", "AGAIN-2")
        finally:
            proc.kill()
            proc.wait(timeout=30)
    data = disk.read_bytes()
    assert len(data) == DISK_BYTES and data.count(0) == DISK_BYTES, "rescue wrote to the disk"
