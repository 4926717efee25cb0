"""The installer's side of /api/deploy against a real `netboot serve` on 127.0.0.1, driven
with urllib the way the installer's wget does: boot script, config, seed, events, done
(ok and failed with its log), cloud-init's phone home, the Debian-installer preseed."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from netboot.nodes.inventory import parse_enlist_body
from netboot.nodes.lifecycle import NodeStatus as S
from netboot.store.sqlite import open_store
from tests.integration.test_images_import import _wait_port, free_port, netboot
from tests.unit.test_images import make_image

MAC = "52:54:00:aa:bb:01"


@pytest.fixture
def appliance(tmp_path: Path):
    """`netboot serve` on 127.0.0.1 with an installer and a deploy image imported."""
    with running_appliance(tmp_path) as app:
        yield app


@contextlib.contextmanager
def running_appliance(tmp_path: Path):
    """The ``appliance`` fixture's body, for other test modules (test_erase_api.py)."""
    cfg = tmp_path / "netboot.toml"
    port = free_port()
    cfg.write_text(
        f'server_address = "127.0.0.1"\nstate_dir = "{tmp_path / "state"}"\n'
        f'boot_dir = "{tmp_path}"\n[http]\nport = {port}\n'
        f"[tftp]\nport = {free_port(__import__('socket').SOCK_DGRAM)}\n"
        # No DNS server on the host's loopback (it would forward to real upstreams).
        "[dns]\nenabled = false\n"
    )
    installer = make_image(
        tmp_path / "installer",
        name="installer",
        kind="boot",
        version="i1",
        files={"vmlinuz": os.urandom(5000), "deploy.initrd": os.urandom(7000)},
    )
    doc = json.loads(installer.read_text())
    doc.update(kernel="vmlinuz", initrds=["deploy.initrd"])
    installer.write_text(json.dumps(doc))
    deploy = make_image(
        tmp_path / "deploy",
        name="debian-12-amd64",
        version="d1",
        files={"debian-12-amd64.tar.zst": os.urandom(20000)},
    )
    for manifest in (installer, deploy):
        assert netboot(cfg, "images", "import", "-q", str(manifest)).returncode == 0
    proc = subprocess.Popen(
        [sys.executable, "-m", "netboot.cli", "--config", str(cfg), "serve"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        _wait_port(cfg, proc)
        store = open_store(tmp_path / "state" / "netboot.sqlite3")
        yield Appliance(f"http://127.0.0.1:{port}", store, cfg, tmp_path)
        store.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


class Appliance:
    def __init__(self, base: str, store, cfg: Path, tmp: Path) -> None:
        self.base, self.store, self.cfg, self.tmp = base, store, cfg, tmp

    def deploying_node(self, osystem: str = "debian", user_data: bytes | None = b"#!/bin/sh\n"):
        report = parse_enlist_body(
            json.dumps(
                {
                    "boot_mac": MAC,
                    "interfaces": [{"name": "eth0", "mac": MAC}],
                    "dmi": {},
                    "cpu": {"count": 1, "model": "x"},
                    "memory": {"total_mib": 1024},
                    "disks": [{"name": "vda", "size_bytes": 3 << 30}],
                }
            ).encode()
        )
        node, _ = self.store.enlist(report, time.time(), "test")
        for status in (S.COMMISSIONING, S.READY, S.ALLOCATED):
            self.store.transition(
                node.system_id, status, time.time(), "admin", "test", fields={"owner": "admin"}
            )
        self.store.add_ssh_key("admin", "ssh-ed25519 AAAAC3Nza admin@example", time.time())
        return self.deploy(node.system_id, osystem, user_data)

    def deploy(self, sid: str, osystem: str = "debian", user_data: bytes | None = None):
        time.sleep(0.01)  # a new deploy episode has a later timestamp than the last one
        node, _ = self.store.transition(
            sid,
            S.DEPLOYING,
            time.time(),
            "admin",
            f"deploying {osystem}/bookworm",
            fields={"osystem": osystem, "distro_series": "bookworm", "user_data": user_data},
        )
        return node

    def call(self, method: str, path: str, token: str | None = None, body: bytes | None = None):
        req = urllib.request.Request(self.base + path, data=body, method=method)
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()


def env_of(text: bytes) -> dict[str, str]:
    out = {}
    for line in text.decode().splitlines():
        key, _, value = line.partition("=")
        assert value.startswith("'") and value.endswith("'"), line
        out[key] = value[1:-1]
    return out


def test_installer_walks_through_config_seed_events_and_done(appliance: Appliance):
    node = appliance.deploying_node(user_data=b"#cloud-config\nruncmd: [[touch, /x]]\n")
    api = f"/api/deploy/{node.system_id}"

    code, script = appliance.call("GET", f"{api}/boot.ipxe")
    assert code == 200
    text = script.decode()
    assert text.startswith("#!ipxe")
    assert f"{appliance.base}/images/boot/installer/i1/vmlinuz" in text
    assert f"netboot.url={appliance.base} netboot.system_id={node.system_id}" in text

    code, body = appliance.call("GET", f"{api}/config")
    assert code == 200
    env = env_of(body)
    assert env["NB_TOKEN"] == node.token and env["NB_HOSTNAME"] == node.hostname
    assert env["NB_IMAGE_REF"] == "deploy/debian-12-amd64/d1"
    assert env["NB_IMAGE_URL"].endswith("/images/deploy/debian-12-amd64/d1/debian-12-amd64.tar.zst")
    code, image = appliance.call("GET", env["NB_IMAGE_URL"].removeprefix(appliance.base))
    assert code == 200 and len(image) == int(env["NB_IMAGE_SIZE"]) == 20000

    # The seed needs the token.
    assert appliance.call("GET", f"{api}/seed/user-data")[0] == 401
    assert appliance.call("GET", f"{api}/seed/user-data", "wrong")[0] == 401
    code, ud = appliance.call("GET", f"{api}/seed/user-data", node.token)
    assert (code, ud) == (200, b"#cloud-config\nruncmd: [[touch, /x]]\n")
    code, md = appliance.call("GET", f"{api}/seed/meta-data", node.token)
    meta = json.loads(md)
    assert meta["local-hostname"] == node.hostname
    assert meta["public-keys"] == ["ssh-ed25519 AAAAC3Nza admin@example"]
    assert meta["instance-id"].startswith(node.system_id + "-")
    code, cc = appliance.call("GET", f"{api}/seed/cloud.cfg", node.token)
    assert f"/api/deploy/{node.system_id}/phone-home/{node.token}" in cc.decode()

    assert appliance.call("POST", f"{api}/event?stage=image", node.token, b"streaming")[0] == 200
    assert appliance.call("POST", f"{api}/event?stage=BAD%20STAGE", node.token, b"x")[0] == 400
    code, _ = appliance.call("POST", f"{api}/done?status=ok", node.token, b"the log\n")
    assert code == 200
    assert appliance.store.node(node.system_id).status is S.DEPLOYING  # until phone home

    # Installed: the PXE answer is the local disk; the installer config is refused.
    code, script = appliance.call("GET", f"{api}/boot.ipxe")
    assert b"boot from the local disk" in script and b"sanboot" in script
    assert appliance.call("GET", f"{api}/config")[0] == 409

    assert appliance.call("POST", f"{api}/phone-home/wrong-token", body=b"x=1")[0] == 401
    code, _ = appliance.call("POST", f"{api}/phone-home/{node.token}", body=b"instance_id=x")
    assert code == 200
    assert appliance.store.node(node.system_id).status is S.DEPLOYED
    kinds = [e.kind for e in appliance.store.events(node.system_id)]
    assert [k for k in kinds if k.startswith("deploy:")] == [
        "deploy:config",
        "deploy:image",
        "deploy:installed",
    ]
    # The image is pinned by the deployed node: pruning keeps it.
    assert appliance.store.images_in_use() == {"deploy/debian-12-amd64/d1", "boot/installer/i1"}


def test_installer_failure_midway_lands_in_failed_deployment_with_the_log(appliance: Appliance):
    node = appliance.deploying_node()
    api = f"/api/deploy/{node.system_id}"
    assert appliance.call("GET", f"{api}/config")[0] == 200
    log = (
        b"[16.1] image: streaming ...\n/bin/tar: ./usr/lib/x: Cannot write: No space left\n"
        b"[40.2] error: streaming or unpacking http://x/y.tar.zst failed\n"
    )
    assert appliance.call("POST", f"{api}/done?status=failed", node.token, log)[0] == 200
    failed = appliance.store.node(node.system_id)
    assert failed.status is S.FAILED_DEPLOYMENT
    assert failed.status_message == (
        "installer failed: streaming or unpacking http://x/y.tar.zst failed"
    )
    assert appliance.call("GET", f"{api}/log")[1] == log
    # Deploying again starts a new episode: installer again, not the local disk.
    appliance.deploy(node.system_id)
    code, script = appliance.call("GET", f"{api}/boot.ipxe")
    assert b"/images/boot/installer/i1/vmlinuz" in script


def test_deploy_without_an_image_fails_with_the_reason(appliance: Appliance):
    node = appliance.deploying_node()
    api = f"/api/deploy/{node.system_id}"
    appliance.store.transition(node.system_id, S.FAILED_DEPLOYMENT, time.time(), "t", "t")
    node = appliance.store.transition(
        node.system_id,
        S.DEPLOYING,
        time.time(),
        "admin",
        "again",
        fields={"distro_series": "trixie"},
    )[0]
    code, body = appliance.call("GET", f"{api}/config")
    assert code == 409 and b"no deploy image for 'trixie'" in body
    failed = appliance.store.node(node.system_id)
    assert failed.status is S.FAILED_DEPLOYMENT
    assert "no deploy image for 'trixie'" in failed.status_message


def test_debian_installer_path_serves_a_per_node_preseed(appliance: Appliance):
    di = make_image(
        appliance.tmp / "di",
        name="debian-installer",
        kind="boot",
        version="20230607",
        files={"linux": os.urandom(3000), "initrd.gz": os.urandom(4000)},
    )
    doc = json.loads(di.read_text())
    doc.update(kernel="linux", initrds=["initrd.gz"])
    di.write_text(json.dumps(doc))
    assert netboot(appliance.cfg, "images", "import", "-q", str(di)).returncode == 0
    node = appliance.deploying_node(osystem="debian-installer")
    api = f"/api/deploy/{node.system_id}"
    code, script = appliance.call("GET", f"{api}/boot.ipxe")
    text = script.decode()
    assert "/images/boot/debian-installer/20230607/linux" in text
    assert f"url={appliance.base}{api}/preseed/{node.token}" in text
    assert "auto=true priority=critical" in text
    assert appliance.call("GET", f"{api}/preseed/not-the-token")[0] == 401
    code, preseed = appliance.call("GET", f"{api}/preseed/{node.token}")
    assert code == 200
    assert f"d-i netcfg/get_hostname string {node.hostname}" in preseed.decode()
    assert f"{api}/done?status=ok" in preseed.decode()
    assert "deploy:preseed" in [e.kind for e in appliance.store.events(node.system_id)]
