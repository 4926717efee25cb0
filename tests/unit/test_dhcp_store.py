"""The lease store: one transaction per batch, unique addresses, filters, alarms, and the
migration that re-keys old leases by client identifier."""

from __future__ import annotations

import sqlite3
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from netboot.dhcp.leases import Binding, State
from netboot.store.leases import Alarm, DeleteLease, LeaseStore, PutLease, RecordAlarm
from netboot.store.schema import MIGRATIONS
from netboot.store.sqlite import open_store

A = b"\x01\xaa\xaa\xaa\xaa\xaa\x01"
B = b"\x01\xaa\xaa\xaa\xaa\xaa\x02"
IP = int(IPv4Address("10.0.0.5"))


@pytest.fixture
def leases(tmp_path: Path):
    open_store(tmp_path / "db").close()
    store = LeaseStore(tmp_path / "db")
    yield store
    store.close()


def test_batch_is_one_transaction_and_an_address_is_never_in_two_rows(leases):
    leases.apply([PutLease(Binding(A, "aa:aa:aa:aa:aa:01", IP, State.ACTIVE, 200.0), 100.0)])
    with pytest.raises(sqlite3.IntegrityError):
        leases.apply(
            [
                PutLease(Binding(B, "aa:aa:aa:aa:aa:02", IP + 1, State.ACTIVE, 300.0), 150.0),
                PutLease(Binding(B, "aa:aa:aa:aa:aa:02", IP, State.ACTIVE, 300.0), 150.0),
            ]
        )
    assert [(b.key, b.ip) for b in leases.load()] == [(A, IP)]  # nothing of the batch
    leases.apply(
        [
            DeleteLease(A),
            PutLease(Binding(B, "aa:aa:aa:aa:aa:02", IP, State.ACTIVE, 300.0, "n2"), 250.0),
        ]
    )
    [row] = leases.query(ip="10.0.0.5")
    assert (row.key, row.mac, row.hostname, row.state) == (
        B,
        "aa:aa:aa:aa:aa:02",
        "n2",
        State.ACTIVE,
    )


def test_query_filters_by_mac_ip_and_state(leases):
    leases.apply(
        [
            PutLease(Binding(A, "aa:aa:aa:aa:aa:01", IP, State.ACTIVE, 200.0), 1.0),
            PutLease(Binding(B, "aa:aa:aa:aa:aa:02", IP + 1, State.RELEASED, 2.0), 1.0),
        ]
    )
    assert [b.key for b in leases.query(mac="AA:AA:AA:AA:AA:02")] == [B]
    assert [b.key for b in leases.query(state="active")] == [A]
    assert [b.key for b in leases.query(ip="10.0.0.6", state="released")] == [B]
    assert leases.query(ip="10.0.0.6", state="active") == []


def test_alarms_are_stored_newest_first(leases):
    for n in range(2):
        leases.apply([RecordAlarm(Alarm(float(n), "br0", "rogue-dhcp", "10.0.0.9", "m", str(n)))])
    assert [a.message for a in leases.alarms()] == ["1", "0"]


def test_migration_rekeys_old_leases_by_client_id(tmp_path: Path):
    path = tmp_path / "db"
    db = sqlite3.connect(path)
    index = next(i for i, m in enumerate(MIGRATIONS) if "leases_v2" in m)
    for i in range(index):
        for statement in MIGRATIONS[i].split(";"):
            if statement.strip():
                db.execute(statement)
    db.execute(
        "INSERT INTO leases (mac, ip, expires, hostname, updated) VALUES (?, ?, ?, ?, ?)",
        ("52:54:00:12:34:56", "10.0.0.9", 500.0, "n1", 1.0),
    )
    db.execute(f"PRAGMA user_version = {index}")
    db.commit()
    db.close()
    open_store(path).close()
    [row] = LeaseStore(path).load()
    assert row.key == bytes.fromhex("01525400123456") and row.state == State.ACTIVE
    assert (row.ip, row.hostname) == (int(IPv4Address("10.0.0.9")), "n1")


def test_pins_are_one_address_per_mac_and_one_mac_per_address(leases):
    leases.pin("AA:AA:AA:AA:AA:01", IPv4Address("10.0.0.20"), "db1", 1.0)
    leases.pin("aa:aa:aa:aa:aa:01", IPv4Address("10.0.0.21"), "db1", 2.0)  # moves the pin
    with pytest.raises(sqlite3.IntegrityError):
        leases.pin("aa:aa:aa:aa:aa:02", IPv4Address("10.0.0.21"), "", 3.0)
    [pin] = leases.pins()
    assert (pin.mac, pin.ip, pin.hostname) == ("aa:aa:aa:aa:aa:01", IPv4Address("10.0.0.21"), "db1")
    assert leases.unpin("aa:aa:aa:aa:aa:01") and not leases.unpin("aa:aa:aa:aa:aa:01")
    assert leases.pins() == []
