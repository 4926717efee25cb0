"""Release with erase against a real `netboot serve` on 127.0.0.1: the MAAS API call
(``op=release`` with ``erase=true``), then the installer's side in erase mode the way
its wget does it: boot script, config, events, done (ok -> Ready; failed -> Failed disk
erasing with its log)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from netboot.nodes.lifecycle import NodeStatus as S
from tests.integration.maas_helpers import machine_op
from tests.integration.test_deploy_api import Appliance, env_of, running_appliance
from tests.integration.test_images_import import netboot


@pytest.fixture
def appliance(tmp_path: Path):
    """`netboot serve` on 127.0.0.1 with an installer and a deploy image imported."""
    with running_appliance(tmp_path) as app:
        yield app


def deployed_node(appliance: Appliance):
    node = appliance.deploying_node(user_data=b"#cloud-config\n")
    node, _ = appliance.store.transition(node.system_id, S.DEPLOYED, time.time(), "t", "t")
    return node


def maas_release(appliance: Appliance, sid: str, **form: str) -> tuple[int, dict | bytes]:
    made = netboot(appliance.cfg, "apikey", "create", "--user", "admin")
    assert made.returncode == 0, made.stderr
    return machine_op(appliance.base, made.stdout.strip(), sid, "release", **form)


def test_release_with_erase_boots_the_installer_in_erase_mode_and_ends_ready(
    appliance: Appliance,
):
    node = deployed_node(appliance)
    sid = node.system_id
    api = f"/api/deploy/{sid}"
    code, machine = maas_release(appliance, sid, erase="true", quick_erase="true")
    assert code == 200, machine
    assert (machine["status"], machine["status_name"]) == (14, "Disk erasing")
    assert appliance.store.erasure(sid).mode == "quick"

    code, script = appliance.call("GET", f"{api}/boot.ipxe")
    text = script.decode()
    assert code == 200 and text.startswith("#!ipxe")
    assert f"{appliance.base}/images/boot/installer/i1/vmlinuz" in text
    assert f"netboot.purpose=erase netboot.url={appliance.base} netboot.system_id={sid}" in text

    code, body = appliance.call("GET", f"{api}/config")
    assert code == 200
    env = env_of(body)
    assert env == {
        "NB_TOKEN": node.token,
        "NB_SYSTEM_ID": sid,
        "NB_HOSTNAME": node.hostname,
        "NB_ERASE_MODE": "quick",
    }
    assert appliance.call("POST", f"{api}/event?stage=erase", None, b"x")[0] == 401
    assert appliance.call("POST", f"{api}/event?stage=erase", node.token, b"/dev/vda")[0] == 200
    code, _ = appliance.call("POST", f"{api}/done?status=ok", node.token, b"erase log\n")
    assert code == 200
    ready = appliance.store.node(sid)
    assert ready.status is S.READY
    assert (ready.owner, ready.osystem) == (None, "")
    kinds = [e.kind for e in appliance.store.events(sid)]
    assert [k for k in kinds if k.startswith("erase:")] == ["erase:config", "erase:erase"]
    assert appliance.call("GET", f"{api}/erase-log")[1] == b"erase log\n"
    # Ready: the installer's calls are refused now.
    assert appliance.call("GET", f"{api}/config")[0] == 409
    assert appliance.call("POST", f"{api}/done?status=ok", node.token, b"")[0] == 409


def test_erase_failure_lands_in_failed_disk_erasing_with_the_log(appliance: Appliance):
    node = deployed_node(appliance)
    sid = node.system_id
    api = f"/api/deploy/{sid}"
    code, machine = maas_release(appliance, sid, secure_erase="1")
    assert code == 200 and machine["status_name"] == "Disk erasing", machine
    assert env_of(appliance.call("GET", f"{api}/config")[1])["NB_ERASE_MODE"] == "secure"
    log = b"[9.0] erase: secure erase of: vda\n[9.4] error: cannot erase /dev/vda\n"
    assert appliance.call("POST", f"{api}/done?status=failed", node.token, log)[0] == 200
    failed = appliance.store.node(sid)
    assert failed.status is S.FAILED_DISK_ERASING
    assert failed.status_message == "disk erasing failed: cannot erase /dev/vda"
    assert appliance.call("GET", f"{api}/erase-log")[1] == log
    # A bad flag value is a 400 naming the field, and nothing changes.
    code, body = maas_release(appliance, sid, erase="perhaps")
    assert code == 400 and b"erase" in body
    assert appliance.store.node(sid).status is S.FAILED_DISK_ERASING
