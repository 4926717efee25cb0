"""`netboot init` in lab namespaces: a LabHost's eth0 plays the provisioning interface.

It writes a configuration that `netboot serve` runs as is (a second host gets an offer
from the chosen range), refuses an interface without IPv4, and refuses a segment where
another DHCP server (a real dnsmasq in a third namespace) already answers."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import tomllib
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from netboot.lab.netns import LabNetwork
from tests.integration.foreign_dhcp import start_dnsmasq

PROBE = Path(__file__).with_name("dhcp_probe.py")
pytestmark = pytest.mark.netns


def init(host, out: Path, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 127.0.0.53\nnameserver 192.0.2.53\n")
    args = [sys.executable, "-m", "netboot.cli", "--config", str(out), "init"]
    args += ["--interface", "eth0", "--resolv-conf", str(resolv)]
    args += ["--state-dir", str(tmp_path / "state"), "--boot-dir", str(tmp_path / "boot")]
    result = host.run([*args, *extra], timeout=60)
    result.stdout, result.stderr = result.stdout.decode(), result.stderr.decode()
    return result


def test_init_writes_a_config_that_netboot_serves(lab: LabNetwork, tmp_path: Path, fake_boot_dir):
    prov = lab.add_host("10.66.0.10/24")
    out = tmp_path / "etc" / "netboot.toml"
    result = init(prov, out, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "DHCP 10.66.0.128-10.66.0.254" in result.stdout
    raw = tomllib.loads(out.read_text())
    assert raw["server_address"] == "10.66.0.10"
    assert raw["dhcp"]["interfaces"] == ["eth0"] and raw["dhcp"]["subnet"] == "10.66.0.0/24"
    assert raw["dns"]["upstreams"] == ["192.0.2.53"]  # the loopback stub is skipped

    # The file as written, unedited (bar the test's boot files), serves DHCP.
    out.write_text(out.read_text().replace(str(tmp_path / "boot"), str(fake_boot_dir)))
    log = tmp_path / "serve.log"
    with open(log, "wb") as f:
        server = prov.popen(
            [sys.executable, "-m", "netboot.cli", "--config", str(out), "serve"],
            stdout=f,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 30
    while "netboot: ready" not in log.read_text():
        assert server.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)
    client = lab.add_host()
    probe = client.run([sys.executable, str(PROBE), "--timeout", "5"], timeout=30)
    assert probe.returncode == 0, probe.stdout + probe.stderr
    offer = json.loads(probe.stdout)
    assert IPv4Address("10.66.0.128") <= IPv4Address(offer["yiaddr"]) <= IPv4Address("10.66.0.254")
    assert offer["options"]["server_id"] == "10.66.0.10"


def test_init_refuses_an_interface_without_ipv4(lab: LabNetwork, tmp_path: Path):
    bare = lab.add_host()
    out = tmp_path / "netboot.toml"
    result = init(bare, out, tmp_path)
    assert result.returncode == 1
    assert "eth0' has no IPv4 address" in result.stderr
    assert not out.exists()


def test_init_refuses_an_interface_that_does_not_exist(lab: LabNetwork, tmp_path: Path):
    host = lab.add_host("10.66.0.10/24")
    result = host.run(
        [sys.executable, "-m", "netboot.cli", "-c", str(tmp_path / "x.toml"), "init", "-i", "eth9"]
    )
    assert result.returncode == 1 and b"'eth9' does not exist" in result.stderr


def test_init_refuses_when_a_foreign_dhcp_server_answers(lab: LabNetwork, tmp_path: Path):
    start_dnsmasq(lab.add_host("10.66.0.9/24"), tmp_path)
    prov = lab.add_host("10.66.0.10/24")
    out = tmp_path / "netboot.toml"
    result = init(prov, out, tmp_path)
    assert result.returncode == 1, result.stdout
    assert "another DHCP server already answers on eth0: 10.66.0.9" in result.stderr
    # dnsmasq picks from its range 10.66.0.50-60 by a hash of the client's MAC.
    assert re.search(r"offered 10\.66\.0\.(5\d|60)\b", result.stderr), result.stderr
    assert not out.exists()
    # --no-dhcp-probe is the documented escape hatch (image builds): it writes.
    assert init(prov, out, tmp_path, "--no-dhcp-probe").returncode == 0
