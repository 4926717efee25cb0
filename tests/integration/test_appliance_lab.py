"""`netboot serve` in a lab namespace, driven by real clients from a second namespace:
dhclient, a scapy PXE DISCOVER, curl (HTTP) and tftp-hpa (TFTP)."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
import sys
import time
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from netboot.lab.appliance import LabAppliance
from netboot.lab.netns import LabNetwork

PROBE = Path(__file__).with_name("dhcp_probe.py")
pytestmark = pytest.mark.netns


def probe(host, **kw) -> dict:
    args = [sys.executable, str(PROBE)]
    for key, value in kw.items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    result = host.run(args, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def curl(host, *args: str) -> subprocess.CompletedProcess:
    return host.run(["curl", "-sS", "--max-time", "10", *args], timeout=20)


def db_rows(app: LabAppliance, sql: str) -> list[tuple]:
    db = sqlite3.connect(app.state_dir / "netboot.sqlite3")
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


def test_dhclient_gets_a_lease_from_the_range_with_our_options(lab: LabNetwork, appliance):
    host = lab.add_host()
    lease_file = appliance.workdir / "dhclient.leases"
    proc = host.popen(
        [
            "dhclient",
            "-d",
            "-4",
            "-1",
            "-lf",
            str(lease_file),
            "-pf",
            str(appliance.workdir / "dhclient.pid"),
            "-sf",
            "/bin/true",
            host.interface,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and "fixed-address" not in _read(lease_file):
        time.sleep(0.2)
    proc.terminate()
    text = _read(lease_file)
    assert "fixed-address 10.66.0.100;" in text, text
    assert 'option domain-name "maas.lan";' in text
    assert "option domain-name-servers 10.66.0.1;" in text
    assert "option dhcp-server-identifier 10.66.0.1;" in text
    assert "filename" not in text  # a plain OS DHCP client is not handed a boot file
    [(mac, ip)] = db_rows(appliance, "SELECT mac, ip FROM leases")
    assert (mac, ip) == (host.mac, "10.66.0.100")
    assert "ACK 10.66.0.100 to " + host.mac in appliance.log_text()


@pytest.mark.parametrize(
    ("arch", "vendor_class", "user_class", "expected_file"),
    [
        (0, "PXEClient:Arch:00000:UNDI:002001", None, "undionly.kpxe"),
        (7, "PXEClient:Arch:00007:UNDI:003000", None, "snponly.efi"),
        (0, "PXEClient:Arch:00000:UNDI:002001", "iPXE", "http://10.66.0.1:5248/boot/ipxe/{mac}"),
    ],
)
def test_pxe_discover_gets_the_loader_for_its_firmware(
    lab: LabNetwork, appliance, arch, vendor_class, user_class, expected_file
):
    host = lab.add_host()
    kw = {"arch": arch, "vendor_class": vendor_class}
    if user_class:
        kw["user_class"] = user_class
    offer = probe(host, **kw)
    expected = expected_file.format(mac=host.mac)
    assert offer["options"]["boot-file-name"] == expected
    assert offer["siaddr"] == "10.66.0.1"
    assert IPv4Address("10.66.0.100") <= IPv4Address(offer["yiaddr"]) <= IPv4Address("10.66.0.199")
    # TFTP loaders also go in the BOOTP file field (shim looks there); URLs do not.
    assert offer["file"] == ("" if user_class else expected)


def test_boot_files_over_tftp_and_http_match(lab: LabNetwork, appliance, fake_boot_dir):
    host = lab.add_host("10.66.0.50/24")
    dest = appliance.workdir / "got.kpxe"
    result = host.run(
        ["tftp", "10.66.0.1", "-m", "binary", "-c", "get", "undionly.kpxe", str(dest)], timeout=30
    )
    assert result.returncode == 0, result.stderr
    assert _sha(dest) == _sha(fake_boot_dir / "undionly.kpxe")
    result = curl(host, "-o", str(dest), "http://10.66.0.1:5248/boot/files/vmlinuz")
    assert result.returncode == 0, result.stderr
    assert _sha(dest) == _sha(fake_boot_dir / "vmlinuz")
    # A range request gets exactly the bytes asked for.
    result = host.run(["curl", "-sS", "-r", "10-19", "http://10.66.0.1:5248/boot/files/vmlinuz"])
    assert result.stdout == (fake_boot_dir / "vmlinuz").read_bytes()[10:20]
    result = curl(
        host, "-o", "/dev/null", "-w", "%{http_code}", "http://10.66.0.1:5248/boot/files/"
    )
    assert result.stdout == b"403"


def test_ipxe_script_then_enlist_creates_one_node(lab: LabNetwork, appliance):
    host = lab.add_host("10.66.0.50/24")
    mac = "52:54:00:12:34:56"
    script = curl(host, f"http://10.66.0.1:5248/boot/ipxe/{mac}").stdout.decode()
    assert script.startswith("#!ipxe")
    assert "kernel http://10.66.0.1:5248/boot/files/vmlinuz" in script
    assert "netboot.enlist_url=http://10.66.0.1:5248/api/enlist" in script
    assert "initrd http://10.66.0.1:5248/boot/files/enlist.initrd" in script

    body = json.dumps(
        {
            "boot_mac": mac,
            "interfaces": [{"name": "eth0", "mac": mac, "ipv4": "10.66.0.100"}],
            "dmi": {"product_uuid": "00112233-4455-6677-8899-aabbccddeeff", "sys_vendor": "Acme"},
            "cpu": {"count": 2, "model": "x"},
            "memory": {"total_mib": 512},
            "disks": [{"name": "vda", "size_bytes": 1 << 30}],
        }
    )
    url = "http://10.66.0.1:5248/api/enlist"
    first = curl(
        host,
        "-w",
        "\n%{http_code}",
        "-H",
        "content-type: application/json",
        "--data-binary",
        body,
        url,
    ).stdout.decode()
    second = curl(host, "-w", "\n%{http_code}", "--data-binary", body, url).stdout.decode()
    assert first.endswith("201") and second.endswith("200")
    created = json.loads(first.rsplit("\n", 1)[0])
    again = json.loads(second.rsplit("\n", 1)[0])
    assert again["system_id"] == created["system_id"]
    assert created["token"] and "token" not in again  # no token for a known MAC
    rows = db_rows(appliance, "SELECT system_id, hostname, status, uuid, cpu_count FROM nodes")
    assert rows == [
        (created["system_id"], created["hostname"], 0, "00112233-4455-6677-8899-aabbccddeeff", 2)
    ]
    nodes = appliance.netboot("nodes", "--json")
    assert json.loads(nodes.stdout)[0]["hostname"] == created["hostname"]


@pytest.mark.parametrize("body", [b"not json", b"{}", b'{"boot_mac": "52:54:00:12:34:56"}'])
def test_bad_enlist_body_is_400_and_writes_nothing(lab: LabNetwork, appliance, body):
    host = lab.add_host("10.66.0.50/24")
    result = curl(
        host,
        "-w",
        "\n%{http_code}",
        "--data-binary",
        body.decode(),
        "http://10.66.0.1:5248/api/enlist",
    ).stdout.decode()
    answer, code = result.rsplit("\n", 1)
    assert code == "400"
    assert json.loads(answer)["error"]
    assert db_rows(appliance, "SELECT count(*) FROM nodes") == [(0,)]
    assert db_rows(appliance, "SELECT count(*) FROM events") == [(0,)]


def test_serve_refuses_an_interface_that_does_not_exist(lab: LabNetwork, fake_boot_dir, tmp_path):
    app = LabAppliance(lab, tmp_path / "app", fake_boot_dir)
    app.config_path.write_text(app.config_path.read_text().replace('["nbbr0"]', '["nope0"]'))
    result = lab.run(
        [sys.executable, "-m", "netboot.cli", "--config", str(app.config_path), "serve"], timeout=30
    )
    assert result.returncode != 0
    assert b"nope0" in result.stdout + result.stderr


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
