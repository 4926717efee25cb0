"""Boot the enlistment image (images/enlist) in QEMU and check the inventory it POSTs.

The guest gets QEMU user-mode networking with ``restrict=on`` (it can reach nothing) plus
a ``guestfwd`` rule that maps http://10.0.2.100:80 to a receiver on 127.0.0.1 in this
process. Nothing leaves loopback.

Build output goes to build/boot (override: NETBOOT_ENLIST_OUT); build.sh is idempotent, so
only the first run pays for the kernel download. Acceleration: TCG where KVM is the
nested-virtualisation kvm_pvm module or absent (see LAB-NOTES), else KVM; override with
NETBOOT_QEMU_ACCEL=tcg|kvm.
"""

from __future__ import annotations

import http.server
import json
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from netboot.nodes.inventory import parse_enlist_body

pytestmark = pytest.mark.qemu

REPO = Path(__file__).resolve().parents[2]
BUILD_SH = REPO / "images" / "enlist" / "build.sh"
QEMU = shutil.which("qemu-system-x86_64")
BOOT_TIMEOUT = 180  # seconds from QEMU start to QEMU exit (guest powers itself off)
GUEST_SERVER = "10.0.2.100"
ENLIST_URL = f"http://{GUEST_SERVER}/api/enlist"
UUID = "00112233-4455-6677-8899-aabbccddeeff"
HOSTILE_PRODUCT = 'Rack "7" \\ back,slash\ttab é {x}'


def qemu_accel() -> str:
    forced = os.environ.get("NETBOOT_QEMU_ACCEL")
    if forced:
        return forced
    if Path("/sys/module/kvm_pvm").exists() or not os.access("/dev/kvm", os.W_OK):
        return "tcg"
    return "kvm"


class Receiver:
    """Loopback HTTP server recording POSTs; answers the first ``fail_first`` with 503."""

    def __init__(self, fail_first: int = 0) -> None:
        self.posts: list[dict] = []
        self.fail_first = fail_first
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server API)
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                receiver.posts.append(
                    {
                        "at": time.monotonic(),
                        "path": self.path,
                        "headers": dict(self.headers.items()),
                        "body": body,
                    }
                )
                if len(receiver.posts) <= receiver.fail_first:
                    code, answer = 503, b'{"error": "try later"}\n'
                else:
                    code, answer = 201, b'{"system_id": "x1", "hostname": "test-node"}\n'
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def enlist_image() -> Path:
    if QEMU is None:
        pytest.fail(
            "qemu-system-x86_64 is not installed: run `make test`, which installs it", pytrace=False
        )
    out = Path(os.environ.get("NETBOOT_ENLIST_OUT", REPO / "build" / "boot"))
    started = time.monotonic()
    subprocess.run([str(BUILD_SH), str(out)], check=True, timeout=1800)
    print(f"build.sh: {time.monotonic() - started:.1f} s")
    for name in ("vmlinuz", "enlist.initrd", "SHA256SUMS"):
        assert (out / name).is_file(), name
    return out


def boot(
    image: Path,
    tmp_path: Path,
    receiver: Receiver,
    append: str,
    extra: list[str],
    forward: str = "tcp",
) -> tuple[int, str, float]:
    """Run one VM to completion. Returns (QEMU exit status, serial log, seconds)."""
    serial = tmp_path / "serial.log"
    disk = tmp_path / "disk.img"
    with open(disk, "wb") as fh:
        fh.truncate(1 << 30)  # sparse 1 GiB
    if forward == "tcp":  # one chardev connection for the VM's lifetime: a single POST
        fwd = f"guestfwd=tcp:{GUEST_SERVER}:80-tcp:127.0.0.1:{receiver.port}"
    else:  # a loopback relay per guest connection: retries work
        fwd = f"guestfwd=tcp:{GUEST_SERVER}:80-cmd:busybox nc 127.0.0.1 {receiver.port}"
    cmd = [
        QEMU,
        "-accel",
        qemu_accel(),
        "-m",
        "512",
        "-smp",
        "2",
        "-nographic",
        "-serial",
        f"file:{serial}",
        "-monitor",
        "none",
        "-parallel",
        "none",
        "-no-reboot",
        "-kernel",
        str(image / "vmlinuz"),
        "-initrd",
        str(image / "enlist.initrd"),
        "-append",
        append,
        "-netdev",
        f"user,id=n0,restrict=on,{fwd}",
        "-drive",
        f"file={disk},if=virtio,format=raw",
        *extra,
    ]
    print(f"accel={qemu_accel()}: {' '.join(cmd)}")
    started = time.monotonic()
    proc = subprocess.Popen(
        cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        try:
            out, _ = proc.communicate(timeout=BOOT_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail(
                f"QEMU did not power off within {BOOT_TIMEOUT} s\n"
                + serial.read_text(errors="replace")
            )
        elapsed = time.monotonic() - started
    finally:
        if proc.poll() is None:
            proc.kill()  # by PID: this QEMU only
            proc.wait(timeout=30)
    log = serial.read_text(errors="replace") if serial.exists() else ""
    assert proc.returncode == 0, f"QEMU exited {proc.returncode}: {out.decode(errors='replace')}"
    for post in receiver.posts:
        post["after"] = post["at"] - started
    return proc.returncode, log, elapsed


def enlist_lines(log: str) -> str:
    return "\n".join(line for line in log.splitlines() if "netboot-enlist:" in line)


def test_enlist_reports_inventory(enlist_image: Path, tmp_path: Path) -> None:
    append = f"console=ttyS0 quiet netboot.enlist_url={ENLIST_URL}"
    extra = [
        "-device",
        "virtio-net-pci,netdev=n0,mac=52:54:00:aa:bb:01",
        "-smbios",
        f"type=1,manufacturer=Acme,product=Rack 1,serial=S123,uuid={UUID}",
    ]
    with Receiver() as receiver:
        _, log, elapsed = boot(enlist_image, tmp_path, receiver, append, extra)
    lines = enlist_lines(log)
    assert len(receiver.posts) == 1, lines
    post = receiver.posts[0]
    print(f"POST after {post['after']:.1f} s, QEMU exit after {elapsed:.1f} s\n{lines}")
    print(post["body"].decode())
    assert post["path"] == "/api/enlist"
    assert post["headers"]["Content-Type"] == "application/json"

    body = json.loads(post["body"])
    assert set(body) == {
        "boot_mac",
        "interfaces",
        "dmi",
        "cpu",
        "memory",
        "disks",
        "kernel_cmdline",
    }
    assert body["boot_mac"] == "52:54:00:aa:bb:01"
    assert body["interfaces"] == [
        {"name": "eth0", "mac": "52:54:00:aa:bb:01", "ipv4": "10.0.2.15", "driver": "virtio_net"}
    ]
    assert body["dmi"]["product_uuid"] == UUID
    assert body["dmi"]["sys_vendor"] == "Acme"
    assert body["dmi"]["product_name"] == "Rack 1"
    assert body["dmi"]["product_serial"] == "S123"
    assert set(body["dmi"]) == {
        "product_uuid",
        "sys_vendor",
        "product_name",
        "product_serial",
        "board_vendor",
        "chassis_type",
    }
    assert all(isinstance(v, str) for v in body["dmi"].values())
    assert body["cpu"]["count"] == 2
    assert body["cpu"]["model"]
    assert body["memory"]["total_mib"] == 512
    assert 256 * 1024 < body["memory"]["memtotal_kib"] < 512 * 1024
    assert {"name": "vda", "size_bytes": 1 << 30, "model": "", "serial": ""} in body["disks"]
    assert body["kernel_cmdline"] == append

    report = parse_enlist_body(post["body"])  # the server's own validator accepts it
    assert report.uuid == UUID and report.memory_mib == 512 and report.cpu_count == 2

    assert "netboot-enlist:" in log and "enlisted as test-node" in lines
    assert "done, powering off" in lines


def test_enlist_hostile_dmi_second_nic_bootif_retry(enlist_image: Path, tmp_path: Path) -> None:
    """Quotes/backslash/tab/UTF-8 in DMI, absent DMI fields, two NICs with the boot NIC
    second (chosen by BOOTIF), and a 503 answer that must be retried."""
    append = f"console=ttyS0 quiet netboot.enlist_url={ENLIST_URL} BOOTIF=01-52-54-00-AA-BB-01"
    qemu_product = HOSTILE_PRODUCT.replace(",", ",,")  # QEMU option syntax: ",," is ","
    extra = [
        # n1 (no forward) in the lower PCI slot becomes eth0; the boot NIC is eth1.
        "-netdev",
        "user,id=n1,restrict=on",
        "-device",
        "virtio-net-pci,netdev=n1,mac=52:54:00:aa:bb:02,addr=0x4",
        "-device",
        "virtio-net-pci,netdev=n0,mac=52:54:00:aa:bb:01,addr=0x8",
        "-smbios",
        f"type=1,manufacturer=Acme\\Corp,product={qemu_product}",  # no serial/uuid
    ]
    with Receiver(fail_first=1) as receiver:
        _, log, elapsed = boot(enlist_image, tmp_path, receiver, append, extra, forward="cmd")
    lines = enlist_lines(log)
    print(f"QEMU exit after {elapsed:.1f} s\n{lines}")
    assert len(receiver.posts) == 2, lines
    assert receiver.posts[0]["body"] == receiver.posts[1]["body"]
    assert "attempt 2/5" in lines and "enlisted as test-node" in lines

    raw = receiver.posts[1]["body"]
    raw.decode("utf-8")  # strict: valid UTF-8
    body = json.loads(raw)
    assert body["boot_mac"] == "52:54:00:aa:bb:01"
    assert body["interfaces"] == [
        {"name": "eth0", "mac": "52:54:00:aa:bb:02", "ipv4": None, "driver": "virtio_net"},
        {"name": "eth1", "mac": "52:54:00:aa:bb:01", "ipv4": "10.0.2.15", "driver": "virtio_net"},
    ]
    assert body["dmi"]["product_name"] == HOSTILE_PRODUCT
    assert body["dmi"]["sys_vendor"] == "Acme\\Corp"
    assert body["dmi"]["product_serial"] == ""
    assert body["dmi"]["product_uuid"] == ""
    assert body["kernel_cmdline"] == append
    report = parse_enlist_body(raw)
    assert report.uuid is None and report.product == HOSTILE_PRODUCT.strip()
    assert report.macs == ("52:54:00:aa:bb:01", "52:54:00:aa:bb:02")
