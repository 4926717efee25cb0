"""Operator accounts in the SQLite store, and the `netboot user` command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from netboot.http.ui.auth import hash_password, verify_password
from netboot.store.sqlite import SQLiteStore
from netboot.store.users import BadUsername, UserExists


@pytest.fixture
def store(tmp_path: Path):
    s = SQLiteStore(tmp_path / "netboot.sqlite3")
    yield s
    s.close()


def test_create_user_then_duplicate_is_refused_unless_replacing(store):
    store.create_user("admin", "scrypt$old", 1.0)
    with pytest.raises(UserExists):
        store.create_user("admin", "scrypt$new", 2.0)
    assert store.password_hash("admin") == "scrypt$old"
    store.create_user("admin", "scrypt$new", 2.0, replace=True)
    assert store.password_hash("admin") == "scrypt$new"
    assert store.user("admin").created == 1.0


@pytest.mark.parametrize("name", ["", "Admin", "1st", "a b", "x" * 33, "root;drop", "é"])
def test_bad_user_names_are_refused(store, name):
    with pytest.raises(BadUsername):
        store.create_user(name, "scrypt$x", 1.0)
    assert store.users() == []


def test_login_time_and_delete(store):
    store.create_user("ops", "scrypt$x", 1.0)
    store.record_login("ops", 50.0)
    assert store.user("ops").last_login == 50.0
    assert store.delete_user("ops") is True
    assert store.delete_user("ops") is False
    assert store.password_hash("ops") is None


def netboot(config: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "netboot.cli", "--config", str(config), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_user_create_command_stores_a_verifiable_hash(tmp_path: Path):
    config = tmp_path / "netboot.toml"
    config.write_text(f'server_address = "127.0.0.1"\nstate_dir = "{tmp_path}/s"\nboot_dir = "b"\n')
    made = netboot(config, "user", "create", "admin", "--password-stdin", stdin="long-password\n")
    assert made.returncode == 0, made.stderr
    again = netboot(config, "user", "create", "admin", "--password-stdin", stdin="other-pass\n")
    assert again.returncode == 1 and "already exists" in again.stderr
    short = netboot(config, "user", "create", "bob", "--password-stdin", stdin="short\n")
    assert short.returncode == 2 and "at least 8" in short.stderr
    no_tty = netboot(config, "user", "create", "carol")  # stdin is not a terminal
    assert no_tty.returncode == 2 and "--password-stdin" in no_tty.stderr
    store = SQLiteStore(tmp_path / "s" / "netboot.sqlite3")
    try:
        assert verify_password("long-password", store.password_hash("admin"))
        assert [u.username for u in store.users()] == ["admin"]
    finally:
        store.close()
    assert "admin\tlast login: never" in netboot(config, "user", "list").stdout


def test_hash_helper_round_trip_with_low_cost():
    assert verify_password("pw-123456", hash_password("pw-123456", n=2**10))
