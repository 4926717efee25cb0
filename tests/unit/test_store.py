"""The SQLite store: enlistment creates once and updates after; schema guard."""

import json
import sqlite3
from pathlib import Path

import pytest

from netboot.nodes.inventory import parse_enlist_body
from netboot.nodes.lifecycle import NodeStatus
from netboot.store.sqlite import SQLiteStore, StoreError, open_store


def report(mac="52:54:00:00:00:01", cpus=2, extra_macs=()):
    body = {
        "boot_mac": mac,
        "interfaces": [{"name": f"eth{i}", "mac": m} for i, m in enumerate((mac, *extra_macs))],
        "dmi": {"product_uuid": "00112233-4455-6677-8899-aabbccddeeff", "sys_vendor": "Acme"},
        "cpu": {"count": cpus, "model": "cpu"},
        "memory": {"total_mib": 512},
        "disks": [{"name": "vda", "size_bytes": 1 << 30}],
    }
    return parse_enlist_body(json.dumps(body).encode())


@pytest.fixture
def store(tmp_path: Path):
    s = open_store(tmp_path / "db.sqlite3")
    yield s
    s.close()


def test_enlist_creates_a_new_node_with_an_event(store: SQLiteStore):
    node, created = store.enlist(report(), now=100.0, actor="test")
    assert created
    assert node.status is NodeStatus.NEW
    assert node.hostname and node.hostname == node.hostname.lower()
    assert node.uuid == "00112233-4455-6677-8899-aabbccddeeff"
    assert node.storage_bytes == 1 << 30
    assert len(node.token) >= 24
    [event] = store.events(node.system_id)
    assert (event.kind, event.to_status, event.actor) == ("enlisted", NodeStatus.NEW, "test")


def test_second_enlist_of_same_mac_updates_never_duplicates(store: SQLiteStore):
    first, _ = store.enlist(report(cpus=2), now=100.0, actor="test")
    again, created = store.enlist(report(cpus=4), now=200.0, actor="test")
    assert not created
    assert again.system_id == first.system_id
    assert again.hostname == first.hostname
    assert again.cpu_count == 4
    assert len(store.nodes()) == 1
    assert [e.kind for e in store.events(first.system_id)] == ["enlisted", "re-enlisted"]


def test_enlist_matches_on_any_known_mac(store: SQLiteStore):
    first, _ = store.enlist(report(extra_macs=("52:54:00:00:00:02",)), 1.0, "t")
    again, created = store.enlist(report(mac="52:54:00:00:00:02"), 2.0, "t")
    assert not created and again.system_id == first.system_id
    assert store.node_by_mac("52:54:00:00:00:02").system_id == first.system_id


def test_enlisted_node_survives_reopening(tmp_path: Path):
    s = open_store(tmp_path / "db")
    node, _ = s.enlist(report(), 1.0, "t")
    s.close()
    s2 = open_store(tmp_path / "db")
    assert s2.node(node.system_id) == node
    s2.close()


def test_refuses_a_newer_schema(tmp_path: Path):
    open_store(tmp_path / "db").close()
    db = sqlite3.connect(tmp_path / "db")
    db.execute("PRAGMA user_version = 999")
    db.close()
    with pytest.raises(StoreError, match="newer"):
        open_store(tmp_path / "db")
