"""Rescue mode against a real `netboot serve` on 127.0.0.1: the MAAS API calls
(``op=rescue_mode``, ``op=exit_rescue_mode``) and the CLI verbs (``netboot nodes rescue``
/ ``exit-rescue``), the boot answers a rescued machine gets (iPXE over HTTP, grub over
TFTP with curl), and the installer's side in rescue mode the way its wget does it:
config, event, done (ok -> Rescue mode; failed -> Failed to enter rescue mode)."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest

from netboot.nodes.lifecycle import NodeStatus as S
from tests.integration.maas_helpers import machine_op
from tests.integration.test_deploy_api import MAC, Appliance, env_of, running_appliance
from tests.integration.test_images_import import netboot


@pytest.fixture
def appliance(tmp_path: Path):
    """`netboot serve` on 127.0.0.1 with an installer and a deploy image imported."""
    with running_appliance(tmp_path) as app:
        yield app


def maas_op(appliance: Appliance, key: str, sid: str, op: str) -> tuple[int, dict | bytes]:
    return machine_op(appliance.base, key, sid, op)


def tftp_get(appliance: Appliance, name: str) -> str:
    port = re.search(r"\[tftp\]\nport = (\d+)", appliance.cfg.read_text()).group(1)
    out = subprocess.run(
        ["curl", "-sS", "--max-time", "10", f"tftp://127.0.0.1:{port}/{name}"],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_rescue_a_deployed_machine_over_the_maas_api_and_back_to_deployed(appliance: Appliance):
    node = appliance.deploying_node(user_data=b"#cloud-config\n")
    sid = node.system_id
    node, _ = appliance.store.transition(sid, S.DEPLOYED, time.time(), "t", "t")
    api = f"/api/deploy/{sid}"
    made = netboot(appliance.cfg, "apikey", "create", "--user", "admin")
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()

    code, machine = maas_op(appliance, key, sid, "rescue_mode")
    assert code == 200, machine
    assert (machine["status"], machine["status_name"]) == (17, "Entering rescue mode")

    # Every loader: iPXE chains the deploy API, which boots the installer in rescue mode;
    # grub (TFTP) boots the same kernel and initrd from the image cache.
    code, script = appliance.call("GET", f"/boot/ipxe/{MAC}")
    assert code == 200 and f"chain --replace {appliance.base}{api}/boot.ipxe" in script.decode()
    code, script = appliance.call("GET", f"{api}/boot.ipxe")
    text = script.decode()
    assert code == 200 and f"{appliance.base}/images/boot/installer/i1/vmlinuz" in text
    assert f"netboot.purpose=rescue netboot.url={appliance.base} netboot.system_id={sid}" in text
    grub = tftp_get(appliance, f"grub/grub.cfg-{MAC}")
    assert "linux /images/boot/installer/i1/vmlinuz" in grub
    assert "netboot.purpose=rescue" in grub and "rescue.initrd" not in grub

    # The rescue environment: config with the token, an event, "up".
    code, body = appliance.call("GET", f"{api}/config")
    assert code == 200
    assert env_of(body) == {
        "NB_TOKEN": node.token,
        "NB_SYSTEM_ID": sid,
        "NB_HOSTNAME": node.hostname,
    }
    assert appliance.call("POST", f"{api}/event?stage=rescue", None, b"x")[0] == 401
    assert appliance.call("POST", f"{api}/event?stage=rescue", node.token, b"shell up")[0] == 200
    code, answer = appliance.call("POST", f"{api}/done?status=ok", node.token, b"rescue log\n")
    assert (code, answer) == (200, b"ok: rescue mode\n")
    rescued = appliance.store.node(sid)
    assert rescued.status is S.RESCUE_MODE and rescued.owner == "admin"
    # Rebooted inside rescue: the same boot, its report changes nothing.
    assert "netboot.purpose=rescue" in appliance.call("GET", f"{api}/boot.ipxe")[1].decode()
    assert appliance.call("POST", f"{api}/done?status=ok", node.token, b"")[0] == 200
    assert appliance.store.node(sid).status is S.RESCUE_MODE
    kinds = [e.kind for e in appliance.store.events(sid) if e.kind.startswith("rescue:")]
    assert kinds == ["rescue:config", "rescue:rescue", "rescue:ready"]

    code, machine = maas_op(appliance, key, sid, "exit_rescue_mode")
    assert code == 200, machine
    assert (machine["status"], machine["status_name"]) == (6, "Deployed")
    assert "from local disk" in appliance.call("GET", f"{api}/boot.ipxe")[1].decode()
    assert appliance.call("GET", f"{api}/config")[0] == 409
    # Exiting again is refused with the current state named.
    code, body = maas_op(appliance, key, sid, "exit_rescue_mode")
    assert code == 409 and b"DEPLOYED" in body


def test_rescue_failure_from_the_cli_and_exit_back_to_ready(appliance: Appliance):
    node = appliance.deploying_node()
    sid = node.system_id
    for status in (S.RELEASING, S.READY):
        appliance.store.transition(sid, status, time.time(), "t", "t", fields={"owner": None})
    api = f"/api/deploy/{sid}"
    out = netboot(appliance.cfg, "nodes", "rescue", node.hostname, "--comment", "look at vda")
    assert out.returncode == 0, out.stderr
    assert "Ready -> Entering rescue mode" in out.stdout
    assert appliance.call("GET", f"{api}/config")[0] == 200
    log = b"[3.1] DHCP attempt 3 on eth0 failed\n[3.2] error: no network\n"
    assert appliance.call("POST", f"{api}/done?status=failed", node.token, log)[0] == 200
    failed = appliance.store.node(sid)
    assert failed.status is S.FAILED_ENTERING_RESCUE_MODE
    assert failed.status_message == "entering rescue mode failed: no network"
    # A failed node re-enlists when it PXE boots, it does not get the rescue shell.
    assert "netboot.purpose=rescue" not in appliance.call("GET", f"/boot/ipxe/{MAC}")[1].decode()
    out = netboot(appliance.cfg, "nodes", "exit-rescue", sid)
    assert out.returncode == 0, out.stderr
    assert "Failed to enter rescue mode -> Ready" in out.stdout
    assert appliance.store.node(sid).status is S.READY
    out = netboot(appliance.cfg, "nodes", "exit-rescue", sid)
    assert out.returncode == 1 and "it is Ready" in out.stderr
