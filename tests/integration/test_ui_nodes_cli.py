"""`netboot nodes list|show|commission|release` against a real store file: the commands
run as subprocesses, as an operator types them; nodes are seeded through the store and
NodeActions (the same calls enlistment and node callbacks make)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from netboot.nodes.actions import NodeActions
from netboot.nodes.inventory import parse_enlist_body
from netboot.nodes.lifecycle import NodeStatus
from netboot.nodes.wiring import power_lookup
from netboot.store.sqlite import SQLiteStore


def write_config(directory: Path) -> Path:
    path = directory / "netboot.toml"
    path.write_text(f'server_address = "127.0.0.1"\nstate_dir = "{directory}/s"\nboot_dir = "b"\n')
    return path


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """A fresh store, for the tests that change it."""
    return write_config(tmp_path)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """One seeded store shared by the read-only tests."""
    config = write_config(tmp_path_factory.mktemp("cli"))
    return config, seed(config)


def store_of(config: Path) -> SQLiteStore:
    return SQLiteStore(config.parent / "s" / "netboot.sqlite3")


def netboot(config: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "netboot.cli", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def seed(config: Path) -> dict[str, str]:
    """hostname by role: a NEW node and a DEPLOYED one (with commissioning output)."""
    store = store_of(config)
    try:
        names = {}
        for role, mac in (("new", "52:54:00:00:20:01"), ("deployed", "52:54:00:00:20:02")):
            body = {
                "boot_mac": mac,
                "cpu": {"count": 4, "model": "EPYC"},
                "memory": {"total_mib": 8192},
                "dmi": {"sys_vendor": "Dell Inc.", "product_name": "PowerEdge R650"},
                "disks": [{"name": "sda", "size_bytes": 480 << 30, "model": "SSD", "serial": "Z"}],
            }
            node, _ = store.enlist(parse_enlist_body(json.dumps(body).encode()), 1.0, "node")
            names[role] = node.hostname
        deployed = store.node_by_mac("52:54:00:00:20:02").system_id
        actions = NodeActions(store, power_lookup(None))
        actions.commission(deployed, "admin")
        store.add_script_result(deployed, "00-lscpu", 0, b"Architecture: x86_64\n", 2.0)
        actions.commissioning_done(deployed, "node", True, "commissioned")
        actions.deploy(deployed, "admin")
        actions.deployment_done(deployed, "node", True, "installed")
        return names
    finally:
        store.close()


def test_plain_nodes_and_json_still_work(seeded):
    config, names = seeded
    table = netboot(config, "nodes")
    assert table.returncode == 0, table.stderr
    assert "2 node(s)" in table.stdout
    assert names["new"] in table.stdout and "Deployed" in table.stdout
    listed = json.loads(netboot(config, "nodes", "--json").stdout)
    assert sorted(n["hostname"] for n in listed) == sorted(names.values())
    assert json.loads(netboot(config, "nodes", "list", "--json").stdout) == listed
    assert json.loads(netboot(config, "nodes", "--json", "list").stdout) == listed


def test_list_filters_by_status_and_search(seeded):
    config, names = seeded
    only = json.loads(netboot(config, "nodes", "list", "--status", "deployed", "--json").stdout)
    assert [n["hostname"] for n in only] == [names["deployed"]]
    by_mac = json.loads(
        netboot(config, "nodes", "list", "-s", "52-54-00-00-20-01", "--json").stdout
    )
    assert [n["hostname"] for n in by_mac] == [names["new"]]
    bad = netboot(config, "nodes", "list", "--status", "sleeping")
    assert bad.returncode == 2 and "unknown status 'sleeping'" in bad.stderr


def test_show_by_hostname_mac_or_system_id(seeded):
    config, names = seeded
    shown = netboot(config, "nodes", "show", names["deployed"])
    assert shown.returncode == 0, shown.stderr
    for text in ("PowerEdge R650", "480.0 GiB", "00-lscpu", "Deploying → Deployed", "8.0 GiB"):
        assert text in shown.stdout, text
    as_json = json.loads(netboot(config, "nodes", "show", "52:54:00:00:20:02", "--json").stdout)
    assert as_json["hostname"] == names["deployed"]
    assert [e["to"] for e in as_json["events"] if e["to"]][-1] == "DEPLOYED"
    assert as_json["commissioning"] == [{"name": "00-lscpu", "exit_status": 0, "time": 2.0}]
    by_id = netboot(config, "nodes", "show", as_json["system_id"], "--json")
    assert json.loads(by_id.stdout)["hostname"] == names["deployed"]
    missing = netboot(config, "nodes", "show", "no-such-node")
    assert missing.returncode == 1 and "no node named 'no-such-node'" in missing.stderr


def test_commission_and_release_change_status_with_an_event(config: Path):
    names = seed(config)
    done = netboot(config, "nodes", "commission", names["new"], "--comment", "new disks")
    assert done.returncode == 0, done.stderr
    assert f"{names['new']} (" in done.stdout and "New -> Commissioning" in done.stdout
    released = netboot(config, "nodes", "release", names["deployed"])
    assert released.returncode == 0, released.stderr
    assert "Deployed -> Ready" in released.stdout
    store = store_of(config)
    try:
        new = next(n for n in store.nodes() if n.hostname == names["new"])
        assert new.status is NodeStatus.COMMISSIONING
        event = [e for e in store.events(new.system_id) if e.to_status][-1]
        assert event.actor.startswith("cli:") and event.message == "new disks"
        deployed = next(n for n in store.nodes() if n.hostname == names["deployed"])
        assert deployed.status is NodeStatus.READY and deployed.owner is None
    finally:
        store.close()


def test_release_with_erase_sends_the_node_to_disk_erasing(config: Path):
    names = seed(config)
    erasing = netboot(config, "nodes", "release", names["deployed"], "--erase", "--secure")
    assert erasing.returncode == 0, erasing.stderr
    assert "Deployed -> Disk erasing" in erasing.stdout
    store = store_of(config)
    try:
        node = next(n for n in store.nodes() if n.hostname == names["deployed"])
        assert node.status is NodeStatus.DISK_ERASING
        assert store.erasure(node.system_id).mode == "secure"
    finally:
        store.close()


def test_illegal_action_exits_1_naming_the_state_and_changes_nothing(config: Path):
    names = seed(config)
    refused = netboot(config, "nodes", "release", names["new"])
    assert refused.returncode == 1
    assert refused.stderr.strip() == f"netboot: cannot release {names['new']}: it is New"
    assert "Traceback" not in refused.stderr
    store = store_of(config)
    try:
        assert all(n.status is NodeStatus.NEW for n in store.nodes() if n.hostname == names["new"])
    finally:
        store.close()
