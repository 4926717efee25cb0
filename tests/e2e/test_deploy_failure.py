"""End to end: a deployment that fails midway lands in Failed deployment with the log.

The deploy image here is the real one cut short: a valid zstd stream of the first
40 MB of the root filesystem tarball, with a manifest that matches it, so import and the
installer's checksum pass and GNU tar fails partway through unpacking onto the freshly
partitioned disk. The node (put straight into Deploying through the store: enlistment
and commissioning are test_deploy.py's) must end in Failed deployment with the
installer's reason as status message, its whole log kept, and the machine powered off.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
from pathlib import Path

import pytest

from netboot.lab.appliance import LabAppliance
from netboot.lab.netns import LabNetwork
from netboot.lab.qemu import NodeSpec, QemuNode
from netboot.nodes.lifecycle import NodeStatus
from netboot.store.sqlite import open_store
from tests.conftest import BOOT_DIR
from tests.e2e.seed import enlist_as
from tests.e2e.test_deploy import deploy_image_dir

pytestmark = [pytest.mark.qemu, pytest.mark.netns]

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "artifacts" / "e2e-deploy-failure"
BOOT_TIMEOUT = 600
SPEC = NodeSpec(
    "dfail",
    "52:54:00:de:03:01",
    "de000000-0000-4000-8000-000000000301",
    firmware="bios",
    memory_mib=1024,
    cpus=1,
    disk_gib=2,
)


def truncated_image(src: Path, dest: Path) -> Path:
    """A deploy image whose tarball stops after 40 MB (valid zstd, consistent manifest)."""
    dest.mkdir(parents=True)
    tarball = dest / "debian-12-amd64.tar.zst"
    script = f"zstd -dc {src / tarball.name} | head -c 40000000 | zstd -q -1 -o {tarball}"
    subprocess.run(
        ["bash", "-o", "pipefail", "-c", script + " || [ -s " + str(tarball) + " ]"],
        check=True,
        timeout=300,
    )
    data = tarball.read_bytes()
    manifest = json.loads((src / "manifest.json").read_text())
    manifest["version"] = "truncated-" + hashlib.sha256(data).hexdigest()[:8]
    manifest["files"] = {
        tarball.name: {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    }
    (dest / "manifest.json").write_text(json.dumps(manifest))
    return dest / "manifest.json"


def test_installer_failing_midway_leaves_failed_deployment_with_its_log(lab: LabNetwork, tmp_path):
    installer = REPO / "build" / "images" / "installer" / "manifest.json"
    assert installer.exists(), f"{installer} missing: run `make images` first"
    bad = truncated_image(deploy_image_dir(), tmp_path / "bad-image")
    app = LabAppliance(lab, tmp_path / "appliance", BOOT_DIR).start()
    node = None
    try:
        app.wait_ready()
        for manifest in (installer, bad):
            imported = app.netboot("images", "import", "--quiet", str(manifest))
            assert imported.returncode == 0, imported.stderr

        store = open_store(app.state_dir / "netboot.sqlite3")
        sid = enlist_as(
            store,
            SPEC,
            (NodeStatus.COMMISSIONING, NodeStatus.READY, NodeStatus.ALLOCATED),
            fields={"owner": "admin"},
        )
        store.transition(
            sid,
            NodeStatus.DEPLOYING,
            time.time(),
            "admin",
            "deploying debian/bookworm",
            fields={"osystem": "debian", "distro_series": "bookworm"},
        )

        started = time.monotonic()
        node = QemuNode(lab, SPEC, tmp_path / "nodes")
        try:
            code = node.wait(timeout=BOOT_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"no power off within {BOOT_TIMEOUT}s:\n{node.serial_tail(60)}")
        print(f"\nfailed deployment: QEMU start -> powered off {time.monotonic() - started:.1f}s")
        assert code == 0

        failed = store.node(sid)
        version = json.loads(bad.read_text())["version"]
        assert failed.status is NodeStatus.FAILED_DEPLOYMENT, app.log_text()[-3000:]
        assert failed.status_message == (
            f"installer failed: unpacking deploy/debian-12-amd64/{version} failed"
        ), failed.status_message
        log = store.deployment(sid).log.decode()
        assert "partition: GPT on /dev/vda" in log  # it failed midway, after partitioning
        assert "downloaded and verified" in log  # the checksum matched what was served
        assert "Unexpected EOF in archive" in log  # GNU tar's own words are kept
        kinds = [e.kind for e in store.events(sid)]
        assert {"deploy:partition", "deploy:image", "deploy:failed"} <= set(kinds)
        store.close()
    finally:
        if node is not None and node.proc.poll() is None:
            node.proc.terminate()
            node.proc.wait(timeout=10)
        app.stop()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        if node is not None and node.serial_log.exists():
            (ARTIFACTS / "dfail.serial.log").write_bytes(node.serial_log.read_bytes())
        if app.log_path.exists():
            (ARTIFACTS / "netboot.log").write_text(app.log_text())
