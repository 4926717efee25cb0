"""End to end: a QEMU node enlists, is commissioned through the MAAS API (power type
manual: the test powers the VM on again, as an operator would), boots the commissioning
environment, which reports the full inventory and the operator scripts' results; the
node ends READY with the extra inventory visible through the API."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pytest

from netboot.lab.appliance import LabAppliance
from netboot.lab.netns import LabNetwork
from netboot.lab.qemu import NodeSpec, QemuNode
from tests.conftest import BOOT_DIR
from tests.integration.maas_helpers import MaasCurl

pytestmark = [pytest.mark.qemu, pytest.mark.netns]

BOOT_TIMEOUT = 300  # per boot; TCG, loaded host (LAB-NOTES: 13-25 s idle)
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "e2e-commission"
SCRIPTS = sorted(
    p.name
    for p in (Path(__file__).resolve().parents[2] / "preseeds" / "commissioning").iterdir()
    if not p.name.endswith(".md")
)


def boot(lab, spec, workdir, app) -> float:
    started = time.monotonic()
    node = QemuNode(lab, spec, workdir)
    try:
        code = node.wait(timeout=BOOT_TIMEOUT)
    except Exception:
        pytest.fail(
            f"{spec.name} did not power off within {BOOT_TIMEOUT}s; serial tail:\n"
            f"{node.serial_tail(60)}\n--- netboot log tail:\n{_tail(app.log_text())}"
        )
    finally:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        if node.serial_log.exists():
            (ARTIFACTS / f"{workdir.name}.serial.log").write_bytes(node.serial_log.read_bytes())
    assert code == 0, node.serial_tail(60)
    return time.monotonic() - started


def test_node_enlists_then_commissions_to_ready_with_full_inventory(lab: LabNetwork, tmp_path):
    for name in ("vmlinuz", "enlist.initrd", "commission.initrd"):
        assert (BOOT_DIR / name).exists(), f"{BOOT_DIR / name} missing: run `make boot` first"
    spec = NodeSpec(
        "comm",
        "52:54:00:c0:0d:01",
        "c0de0000-0000-4000-8000-000000000001",
        memory_mib=512,
        cpus=1,
        disk_gib=2,
        vendor="Acme",
        product="Commission e2e",
        serial="SN-COMM-1",
        extra_args=[
            "-drive",
            f"file={tmp_path / 'data.img'},if=none,id=data,format=raw",
            "-device",
            "virtio-blk-pci,drive=data,serial=DATA-SERIAL-7",
        ],
    )
    with open(tmp_path / "data.img", "wb") as f:
        f.truncate(1 << 30)
    app = LabAppliance(lab, tmp_path / "appliance", BOOT_DIR).start()
    try:
        app.wait_ready()
        key = app.netboot("apikey", "create").stdout.strip()
        api = MaasCurl(lab.add_host("10.66.0.50/24"), app.http_base, key)

        enlist_s = boot(lab, spec, tmp_path / "boot1", app)
        code, machines = api.call("GET", "machines/", data=None)
        assert code == 200 and len(machines) == 1, machines
        machine = machines[0]
        assert machine["status_name"] == "New" and machine["power_type"] == "manual"
        sid = machine["system_id"]

        code, body = api.call("POST", f"machines/{sid}/", op="commission", data={})
        assert code == 200, body
        assert body["status_name"] == "Commissioning"

        commission_s = boot(lab, spec, tmp_path / "boot2", app)
        code, machine = api.call("GET", f"machines/{sid}/")
        assert code == 200
        print(f"enlist boot {enlist_s:.1f}s, commissioning boot {commission_s:.1f}s")
        assert machine["status_name"] == "Ready", (machine["status_message"], _tail(app.log_text()))

        # The extra inventory: both disks with serial and size, CPU flags, DMI, PCI, NICs.
        # (PCI order decides vda/vdb, so match disks by serial and size, not by name.)
        disks = sorted((d["size"], d["serial"]) for d in machine["physicalblockdevice_set"])
        assert disks == [(1 << 30, "DATA-SERIAL-7"), (2 << 30, None)]
        assert machine["hardware_info"]["system_serial"] == "SN-COMM-1"
        log = app.log_text()
        assert f"iPXE script commission for {spec.mac}" in log
        assert f"{sid} inventory: 1 cpus" in log
        db = _hardware(app, sid)
        assert {"fpu", "sse2"} <= set(db["cpu"]["flags"])
        assert any(p["vendor"] == "1af4" for p in db["pci"])  # virtio devices
        assert [n["mac"] for n in db["nics"]] == [spec.mac]
        assert db["nics"][0]["driver"] == "virtio_net" and db["nics"][0]["link"] is True
        assert db["dmi"]["sys_vendor"] == "Acme"
        results = _results(app, sid)
        assert {r[0]: r[1] for r in results} == {
            "00-netboot-inventory": 0,
            **{name: 0 for name in SCRIPTS},
        }
        assert b"vdb" in _output(app, sid, "10-block-devices")
        serial = (ARTIFACTS / "boot2.serial.log").read_text(errors="replace")
        assert "netboot-commission:" in serial and "finished, powering off" in serial
        assert _token(app, sid) not in serial  # the token never reaches the console
        *_, started, finished = _events(app, sid)
        assert started == ("admin", 0, 1, "commissioning started")
        assert finished[0].startswith("node@10.66.0.") and finished[1:3] == (1, 4)
    finally:
        app.stop()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        if app.log_path.exists():
            (ARTIFACTS / "netboot.log").write_text(app.log_text())


def _db(app: LabAppliance):
    return sqlite3.connect(app.state_dir / "netboot.sqlite3")


def _hardware(app: LabAppliance, sid: str) -> dict:
    db = _db(app)
    try:
        return json.loads(
            db.execute("SELECT hardware FROM nodes WHERE system_id=?", (sid,)).fetchone()[0]
        )
    finally:
        db.close()


def _results(app: LabAppliance, sid: str) -> list[tuple[str, int]]:
    db = _db(app)
    try:
        return db.execute(
            "SELECT name, exit_status FROM script_results WHERE system_id=? ORDER BY name", (sid,)
        ).fetchall()
    finally:
        db.close()


def _output(app: LabAppliance, sid: str, name: str) -> bytes:
    db = _db(app)
    try:
        return bytes(
            db.execute(
                "SELECT output FROM script_results WHERE system_id=? AND name=?", (sid, name)
            ).fetchone()[0]
        )
    finally:
        db.close()


def _token(app: LabAppliance, sid: str) -> str:
    db = _db(app)
    try:
        return db.execute("SELECT token FROM nodes WHERE system_id=?", (sid,)).fetchone()[0]
    finally:
        db.close()


def _events(app: LabAppliance, sid: str) -> list[tuple]:
    db = _db(app)
    try:
        return db.execute(
            "SELECT actor, from_status, to_status, message FROM events"
            " WHERE system_id=? AND to_status IS NOT NULL ORDER BY id",
            (sid,),
        ).fetchall()
    finally:
        db.close()


def _tail(text: str, lines: int = 60) -> str:
    return "\n".join(text.splitlines()[-lines:])
