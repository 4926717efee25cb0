"""`systemctl reload` semantics on a real `netboot serve` process in a lab namespace:
SIGHUP re-reads the configuration; a bad file is refused and the old one keeps
serving; a changed DHCP range is applied in the same process without dropping the
leases in the store or an in-flight TFTP transfer. `netboot status` reports it all."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sys
import time
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from netboot.lab.appliance import LabAppliance
from netboot.lab.netns import LabNetwork
from tests.integration.foreign_dhcp import start_dnsmasq

HERE = Path(__file__).parent
PROBE = HERE / "dhcp_probe.py"
TFTP_CLIENT = HERE / "tftp_pause_client.py"
pytestmark = pytest.mark.netns


def offer(host) -> IPv4Address:
    result = host.run([sys.executable, str(PROBE), "--timeout", "5"], timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
    return IPv4Address(json.loads(result.stdout)["yiaddr"])


def wait_for_log(app: LabAppliance, needle: str, count: int = 1, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = app.log_text()
        if text.count(needle) >= count:
            return text
        assert app.proc.poll() is None, f"netboot exited {app.proc.returncode}:\n{text}"
        time.sleep(0.05)
    raise AssertionError(f"{needle!r} not logged within {timeout}s:\n{app.log_text()}")


def status(app: LabAppliance) -> tuple[int, dict]:
    result = app.netboot("status", "--json")
    assert result.stdout, result.stderr
    return result.returncode, json.loads(result.stdout)


def rewrite(app: LabAppliance, old: str, new: str) -> None:
    text = app.config_path.read_text()
    assert old in text, text
    app.config_path.write_text(text.replace(old, new))


def test_status_reports_every_listener_bound_and_the_lease_count(lab: LabNetwork, appliance):
    host = lab.add_host()
    got = host.run(["busybox", "udhcpc", "-i", "eth0", "-n", "-q", "-f", "-s", "/bin/true"])
    assert got.returncode == 0, got.stderr.decode()
    code, doc = status(appliance)
    assert code == 0, doc
    assert doc["healthy"] is True and doc["problems"] == []
    service = doc["service"]
    assert service["pid"] == appliance.proc.pid and service["state"] == "ready"
    listeners = {row["name"]: row for row in service["listeners"]}
    assert {"http", "tftp", "dhcp"} <= set(listeners), listeners
    assert all(row["bound"] for row in listeners.values())
    assert listeners["http"]["detail"] == f"{lab.address.ip}:5248/tcp"
    assert listeners["dhcp"]["detail"] == f"udp/67 on {lab.bridge}"
    assert doc["store"]["leases_active"] == 1
    assert doc["store"]["nodes"] == {}
    text = appliance.netboot("status")
    assert text.returncode == 0 and "netboot: healthy" in text.stdout, text.stdout


def test_status_after_stop_says_not_running_and_exits_1(lab: LabNetwork, appliance):
    appliance.stop()
    code, doc = status(appliance)
    assert code == 1
    assert doc["healthy"] is False
    assert any("not running" in p for p in doc["problems"]), doc["problems"]


def test_status_lists_rogue_dhcp_alarms(lab: LabNetwork, fake_boot_dir: Path, tmp_path: Path):
    # A foreign server already on the segment when netboot starts: its start-up probe
    # (netboot/dhcp/rogue.py) records an alarm, and `netboot status` shows it.
    # --no-ping: the appliance's periodic probe listens 2 s, dnsmasq's ping check takes 3.
    start_dnsmasq(lab.add_host("10.66.0.9/24"), tmp_path, ping=False)
    app = LabAppliance(lab, tmp_path / "appliance", fake_boot_dir).start()
    try:
        app.wait_ready()
        deadline = time.monotonic() + 60
        while True:
            code, doc = status(app)
            if doc["store"].get("alarms") or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        alarms = doc["store"]["alarms"]
        assert alarms, f"no alarm after 60s:\n{app.log_text()}"
        assert alarms[0]["kind"] == "rogue-dhcp" and alarms[0]["server_ip"] == "10.66.0.9"
        text = app.netboot("status").stdout
        assert "alarms: " in text and "another DHCP server 10.66.0.9" in text, text
    finally:
        app.stop()


def test_sighup_with_a_bad_config_is_refused_and_the_old_one_keeps_serving(
    lab: LabNetwork, appliance
):
    host = lab.add_host()
    assert IPv4Address("10.66.0.100") <= offer(host) <= IPv4Address("10.66.0.199")
    rewrite(appliance, 'range_end = "10.66.0.199"', 'range_end = "10.77.0.199"')
    os.kill(appliance.proc.pid, signal.SIGHUP)
    log = wait_for_log(appliance, "reload refused")
    assert "dhcp.range_end" in log and "still serving the previous configuration" in log
    # Same process, same range.
    assert appliance.proc.poll() is None
    assert IPv4Address("10.66.0.100") <= offer(lab.add_host()) <= IPv4Address("10.66.0.199")
    code, doc = status(appliance)
    assert doc["service"]["last_reload"]["ok"] is False
    assert "dhcp.range_end" in doc["service"]["last_reload"]["message"]
    assert code == 1  # the file on disk is not what runs: the operator must know
    assert any("changed since it was loaded" in p for p in doc["problems"])


def test_sighup_with_an_interface_that_cannot_be_served_rolls_back(lab: LabNetwork, appliance):
    rewrite(appliance, f'interfaces = ["{lab.bridge}"]', 'interfaces = ["nosuch0"]')
    os.kill(appliance.proc.pid, signal.SIGHUP)
    log = wait_for_log(appliance, "reload refused")
    assert "cannot start dhcp" in log and "nosuch0" in log
    assert IPv4Address("10.66.0.100") <= offer(lab.add_host()) <= IPv4Address("10.66.0.199")
    _, doc = status(appliance)
    assert all(row["bound"] for row in doc["service"]["listeners"])


def test_sighup_with_a_new_range_applies_it_without_restart_or_dropping_state(
    lab: LabNetwork, appliance, fake_boot_dir: Path, tmp_path: Path
):
    leased = lab.add_host()
    got = leased.run(["busybox", "udhcpc", "-i", "eth0", "-n", "-q", "-f", "-s", "/bin/true"])
    assert got.returncode == 0, got.stderr.decode()
    pid = appliance.proc.pid

    # A TFTP download that pauses half way, resumed only after the reload is done.
    midway, go, out = tmp_path / "midway", tmp_path / "go", tmp_path / "vmlinuz.copy"
    tftp_host = lab.add_host("10.66.0.20/24")
    download = tftp_host.popen(
        [
            sys.executable,
            str(TFTP_CLIENT),
            str(lab.address.ip),
            "vmlinuz",
            "--output",
            str(out),
            "--midway",
            str(midway),
            "--go",
            str(go),
            "--pause-after",
            "200",
        ],
        stdout=open(tmp_path / "tftp.out", "wb"),  # noqa: SIM115 (closed with the process)
        stderr=open(tmp_path / "tftp.err", "wb"),  # noqa: SIM115
    )
    deadline = time.monotonic() + 30
    while not midway.exists():
        assert time.monotonic() < deadline, (tmp_path / "tftp.err").read_text()
        assert download.poll() is None, (tmp_path / "tftp.err").read_text()
        time.sleep(0.02)

    rewrite(appliance, 'range_start = "10.66.0.100"', 'range_start = "10.66.0.150"')
    rewrite(appliance, 'range_end = "10.66.0.199"', 'range_end = "10.66.0.160"')
    os.kill(pid, signal.SIGHUP)
    log = wait_for_log(appliance, "reloaded ")
    go.write_text("go\n")
    assert download.wait(timeout=60) == 0, (tmp_path / "tftp.err").read_text()
    digest = (tmp_path / "tftp.out").read_text().strip()
    assert digest == hashlib.sha256((fake_boot_dir / "vmlinuz").read_bytes()).hexdigest()

    assert appliance.proc.poll() is None and appliance.proc.pid == pid
    assert log.count("netboot: ready") == 1  # never restarted
    plan = next(line for line in log.splitlines() if "reload plan:" in line)
    kept = plan.split("keep ", 1)[1].split(", stop")[0].split(",")
    started = plan.split(", start ", 1)[1].split(",")
    assert started == ["dhcp"], plan  # only what the new range touches
    assert {"http", "tftp"} <= set(kept), plan
    new = offer(lab.add_host())
    assert IPv4Address("10.66.0.150") <= new <= IPv4Address("10.66.0.160"), new
    code, doc = status(appliance)
    assert code == 0, doc["problems"]
    assert doc["store"]["leases_active"] == 1  # the lease from before the reload
    assert doc["service"]["last_reload"]["ok"] is True


def _catches_sighup(pid: int) -> bool:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) & (1 << (signal.SIGHUP - 1)))
    return False


def test_sighup_during_start_up_is_not_fatal_and_is_applied_once_serving(
    lab: LabNetwork, fake_boot_dir: Path, tmp_path: Path
):
    app = LabAppliance(lab, tmp_path / "appliance", fake_boot_dir)
    rewrite(app, 'range_start = "10.66.0.100"', 'range_start = "10.66.0.150"')
    app.start()
    try:
        deadline = time.monotonic() + 60
        while not _catches_sighup(app.proc.pid):  # netboot took SIGHUP over
            assert app.proc.poll() is None and time.monotonic() < deadline, app.log_text()
            time.sleep(0.01)
        rewrite(app, 'range_end = "10.66.0.199"', 'range_end = "10.66.0.160"')
        os.kill(app.proc.pid, signal.SIGHUP)  # most likely before "ready"
        app.wait_ready()
        wait_for_log(app, "reloaded ")
        assert app.proc.poll() is None
        assert IPv4Address("10.66.0.150") <= offer(lab.add_host()) <= IPv4Address("10.66.0.160")
    finally:
        app.stop()
