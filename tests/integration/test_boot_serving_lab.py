"""Boot file serving by `netboot serve` in a lab namespace, seen from a client namespace.

TFTP: per-machine pxelinux/grub configs rendered from the store, probes, blksize clamped
to the route MTU, 100 concurrent transfers. HTTP: Range, Content-Length, ETag,
If-None-Match, If-Range, and many concurrent downloads while the reactor keeps
answering. Real clients: tftp-hpa, curl, atftp.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pyroute2 import NetNS

from netboot.lab.appliance import LabAppliance
from netboot.lab.netns import LabHost, LabNetwork

pytestmark = pytest.mark.netns
MAC = "52:54:00:aa:bb:01"
SERVER = "10.66.0.1"
FILES = f"http://{SERVER}:5248/boot/files"


def require_tool(command: str, package: str) -> None:
    if shutil.which(command) is None:
        pytest.fail(f"{command} not found: apt-get install {package} (make deps)", pytrace=False)


def tftp_get(host: LabHost, name: str, dest: Path) -> subprocess.CompletedProcess:
    require_tool("tftp", "tftp-hpa")
    return host.run(["tftp", SERVER, "-m", "binary", "-c", "get", name, str(dest)], timeout=60)


def curl(host: LabHost, *args: str) -> subprocess.CompletedProcess:
    require_tool("curl", "curl")
    return host.run(["curl", "-sS", "--max-time", "60", *args], timeout=90)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def host(lab: LabNetwork) -> LabHost:
    return lab.add_host("10.66.0.50/24")


# --- TFTP ---------------------------------------------------------------------------------


def test_loader_configs_are_rendered_per_machine_over_tftp(
    host: LabHost, appliance: LabAppliance, tmp_path: Path
) -> None:
    out = tmp_path / "cfg"
    result = tftp_get(host, "pxelinux.cfg/01-52-54-00-aa-bb-01", out)
    assert result.returncode == 0, result.stderr
    text = out.read_text()
    assert "INITRD http://10.66.0.1:5248/boot/files/enlist.initrd" in text
    assert "netboot.enlist_url=http://10.66.0.1:5248/api/enlist" in text

    assert tftp_get(host, "/grub/grub.cfg", out).returncode == 0
    assert "configfile /grub/grub.cfg-${net_default_mac}" in out.read_text()
    # curl, not tftp-hpa: tftp-hpa reads "a:b" in a get as host:file.
    per_mac = curl(host, f"tftp://{SERVER}/grub/grub.cfg-52:54:00:aa:bb:01")
    assert per_mac.returncode == 0 and b"BOOTIF=01-52-54-00-aa-bb-01" in per_mac.stdout
    assert tftp_get(host, "/grub/x86_64-efi/command.lst", out).returncode == 0
    assert out.read_bytes() == b""

    log = appliance.log_text()
    assert f"pxelinux config enlist for {MAC}" in log
    assert f"grub config enlist for {MAC}" in log


def test_loader_probes_get_file_not_found_at_once(host: LabHost, appliance: LabAppliance) -> None:
    for probe in ("autoexec.ipxe", "revocations_sbat.efi", "pxelinux.cfg/0A420032"):
        started = time.monotonic()
        result = curl(host, f"tftp://{SERVER}/{probe}")
        assert result.returncode == 68, (probe, result)  # CURLE_TFTP_NOTFOUND: TFTP error 1
        assert time.monotonic() - started < 30  # bounded, not a retransmission wait
        assert f"refused {probe} to" in appliance.log_text()
    log = appliance.log_text()
    assert "optional probe" in log and "pxelinux probe" in log


def test_blksize_is_clamped_to_the_route_mtu(
    lab: LabNetwork, host: LabHost, appliance: LabAppliance
) -> None:
    with NetNS(lab.name) as ns:
        for link in ns.get_links():
            ns.link("set", index=link["index"], mtu=1400)  # bridge and its ports
    script = (
        "import socket,sys\n"
        "from netboot.tftp.codec import ReadRequest, encode, decode\n"
        "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(10)\n"
        "s.sendto(encode(ReadRequest('snponly.efi', 'octet', {'blksize': '1468'})), "
        f"('{SERVER}', 69))\n"
        "print(decode(s.recvfrom(65536)[0]))\n"
    )
    result = host.run([sys.executable, "-c", script], timeout=30)
    assert result.returncode == 0, result.stderr
    # 1400 - 20 (IPv4) - 8 (UDP) - 4 (TFTP) = 1368: DATA never needs IP fragmentation.
    assert "OptionAck(options={'blksize': '1368'})" in result.stdout.decode()


def test_one_hundred_concurrent_tftp_transfers_all_complete(
    host: LabHost, appliance: LabAppliance, fake_boot_dir: Path, tmp_path: Path
) -> None:
    require_tool("atftp", "atftp")
    expected = sha((fake_boot_dir / "snponly.efi").read_bytes())
    out = tmp_path / "many"
    out.mkdir()
    clients = " ".join(
        f"atftp --option 'blksize 1468' --option 'windowsize {4 if i % 2 else 1}' "
        f"--get -r snponly.efi -l {out}/f{i} {SERVER} &"
        for i in range(100)
    )
    result = host.run(["bash", "-c", f"{clients} wait"], timeout=300)
    assert result.returncode == 0, result.stderr
    sums = [sha(p.read_bytes()) for p in sorted(out.iterdir())]
    assert len(sums) == 100 and set(sums) == {expected}
    assert "server busy" not in appliance.log_text()


# --- HTTP ---------------------------------------------------------------------------------


def headers(result: subprocess.CompletedProcess) -> dict[str, str]:
    lines = result.stdout.decode(errors="replace").split("\r\n\r\n")[0].split("\r\n")
    found = {"status": lines[0]}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        found[name.strip().lower()] = value.strip()
    return found


def test_http_boot_files_support_ranges_length_and_etag(
    host: LabHost, appliance: LabAppliance, fake_boot_dir: Path
) -> None:
    body = (fake_boot_dir / "vmlinuz").read_bytes()
    full = headers(curl(host, "-I", f"{FILES}/vmlinuz"))
    assert " 200 " in full["status"]
    assert full["content-length"] == str(len(body))
    assert full["accept-ranges"] == "bytes"
    etag = full["etag"]
    assert etag.startswith('"') and etag.endswith('"')

    part = curl(host, "-r", "1000-1999", f"{FILES}/vmlinuz")
    assert part.returncode == 0 and part.stdout == body[1000:2000]
    ranged = headers(curl(host, "-i", "-r", "1000-1999", f"{FILES}/vmlinuz"))
    assert " 206 " in ranged["status"]
    assert ranged["content-range"] == f"bytes 1000-1999/{len(body)}"
    assert ranged["content-length"] == "1000"

    cached = headers(curl(host, "-i", "-H", f"If-None-Match: {etag}", f"{FILES}/vmlinuz"))
    assert " 304 " in cached["status"]
    # If-Range with the current ETag resumes; with a stale one the whole file comes back.
    resumed = curl(host, "-r", "500-", "-H", f"If-Range: {etag}", f"{FILES}/vmlinuz")
    assert resumed.stdout == body[500:]
    stale = curl(host, "-r", "500-", "-H", 'If-Range: "stale"', f"{FILES}/vmlinuz")
    assert stale.stdout == body

    missing = headers(curl(host, "-i", f"{FILES}/nope"))
    assert " 404 " in missing["status"]
    listing = headers(curl(host, "-i", f"{FILES}/"))
    assert " 403 " in listing["status"]


def test_many_concurrent_http_downloads_while_scripts_still_answer(
    host: LabHost, appliance: LabAppliance, fake_boot_dir: Path, tmp_path: Path
) -> None:
    require_tool("curl", "curl")
    big = fake_boot_dir / "big.initrd"
    big.write_bytes(bytes(range(256)) * (32 * 1024))  # 8 MiB
    out = tmp_path / "dl"
    out.mkdir()
    downloads = host.popen(
        [
            "bash",
            "-c",
            " ".join(
                f"curl -sS --max-time 240 -o {out}/d{i} {FILES}/big.initrd &" for i in range(50)
            )
            + " wait",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        # While 50 x 8 MiB stream out, the reactor still answers a script promptly.
        script = curl(host, f"http://{SERVER}:5248/boot/ipxe/{MAC}")
        assert script.returncode == 0 and script.stdout.startswith(b"#!ipxe")
        _, err = downloads.communicate(timeout=280)
    finally:
        if downloads.poll() is None:
            downloads.kill()
    assert downloads.returncode == 0, err
    expected = sha(big.read_bytes())
    assert [sha(p.read_bytes()) for p in sorted(out.iterdir())] == [expected] * 50


def test_tftp_worker_processes_share_the_port_and_serve_dynamic_files(
    lab: LabNetwork, fake_boot_dir: Path, tmp_path: Path
) -> None:
    app = LabAppliance(lab, tmp_path / "app", fake_boot_dir)
    app.config_path.write_text(
        app.config_path.read_text().replace("[tftp]\n", "[tftp]\nworkers = 2\n")
    )
    app.start()
    try:
        app.wait_ready()
        host = lab.add_host("10.66.0.51/24")
        deadline = time.monotonic() + 30
        while "worker processes share the port" not in app.log_text():
            assert time.monotonic() < deadline, app.log_text()
            time.sleep(0.1)
        worker_pid = int(app.log_text().split("share the port: ")[1].split()[0])
        time.sleep(2)  # the worker binds after its interpreter starts
        # Each curl uses a new source port: the kernel spreads them over both processes.
        for _ in range(16):
            result = curl(host, f"tftp://{SERVER}/pxelinux.cfg/01-52-54-00-aa-bb-02")
            assert result.returncode == 0 and b"enlist.initrd" in result.stdout, result
        served = app.log_text().count("pxelinux config enlist for 52:54:00:aa:bb:02")
        assert served == 16  # the worker logs to the same stream
    finally:
        app.stop()
    deadline = time.monotonic() + 10
    while Path(f"/proc/{worker_pid}").exists():
        assert time.monotonic() < deadline, "TFTP worker outlived netboot serve"
        time.sleep(0.1)


def test_dhcp_answers_follow_the_boot_table_per_firmware(lab: LabNetwork, tmp_path: Path) -> None:
    """arm64 is checked at the DHCP level only (no arm64 firmware run in CI: TCG is slow)."""
    app = LabAppliance(lab, tmp_path / "app", tmp_path)
    app.config_path.write_text(
        app.config_path.read_text() + '\n[boot]\nbios_loader = "pxelinux"\nuefi_loader = "shim"\n'
    )
    app.start()
    try:
        app.wait_ready()
        host = lab.add_host()
        probe = Path(__file__).with_name("dhcp_probe.py")

        def offer(arch: int, vendor: str) -> dict:
            args = [sys.executable, str(probe), "--arch", str(arch), "--vendor-class", vendor]
            result = host.run(args, timeout=30)
            assert result.returncode == 0, result.stdout + result.stderr
            return json.loads(result.stdout)

        arm64 = offer(11, "PXEClient:Arch:00011:UNDI:003000")
        assert (arm64["file"], arm64["siaddr"]) == ("grubaa64.efi", SERVER)
        assert offer(7, "PXEClient:Arch:00007:UNDI:003000")["file"] == "bootx64.efi"
        assert offer(0, "PXEClient:Arch:00000:UNDI:002001")["file"] == "lpxelinux.0"
        http = offer(16, "HTTPClient:Arch:00016:UNDI:003000")
        assert http["options"]["vendor_class_id"] == "HTTPClient"
        assert http["options"]["boot-file-name"] == f"http://{SERVER}:5248/boot/files/ipxe.efi"
        arm64_http = offer(19, "HTTPClient:Arch:00019:UNDI:003000")
        assert "boot-file-name" not in arm64_http["options"] and not arm64_http["file"]
    finally:
        app.stop()
