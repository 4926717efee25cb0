"""The `netboot` command line: config errors name the key and exit non-zero; an
acknowledged enlistment survives `kill -9` of the server."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from netboot.lab.appliance import LabAppliance
from netboot.lab.netns import LabNetwork


def netboot(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "netboot.cli", *args], capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    ("text", "key"),
    [
        (
            'server_address = "10.0.0.1"\nstate_dir = "s"\nboot_dir = "b"\n[http]\nport = -1\n',
            "http.port",
        ),
        (
            'server_address = "10.0.0.1"\nstate_dir = "s"\nboot_dir = "b"\n[dhcp]\nsubnet = "x"\n',
            "dhcp.interfaces",
        ),
        ('server_address = "nope"\n', "server_address"),
        ("this is = = not toml", "(syntax)"),
    ],
)
def test_bad_config_is_one_clear_error_naming_the_key(tmp_path: Path, text, key):
    path = tmp_path / "netboot.toml"
    path.write_text(text)
    for command in ("serve", "nodes"):
        result = netboot("--config", str(path), command)
        assert result.returncode == 2
        assert result.stderr.startswith("netboot: bad configuration: ")
        assert key in result.stderr
        assert "Traceback" not in result.stderr


def test_nodes_on_an_empty_store_prints_an_empty_table(tmp_path: Path):
    path = tmp_path / "netboot.toml"
    path.write_text(f'server_address = "10.0.0.1"\nstate_dir = "{tmp_path}/s"\nboot_dir = "b"\n')
    result = netboot("--config", str(path), "nodes", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []
    assert "0 node(s)" in netboot("--config", str(path), "nodes").stdout


@pytest.mark.netns
def test_acknowledged_enlistment_survives_kill_9(lab: LabNetwork, fake_boot_dir, tmp_path):
    app = LabAppliance(lab, tmp_path / "app", fake_boot_dir).start()
    try:
        app.wait_ready()
        host = lab.add_host("10.66.0.50/24")
        body = json.dumps(
            {"boot_mac": "52:54:00:00:00:99", "cpu": {"count": 1}, "memory": {"total_mib": 256}}
        )
        result = host.run(
            [
                "curl",
                "-sS",
                "--max-time",
                "10",
                "-w",
                "\n%{http_code}",
                "--data-binary",
                body,
                f"{app.http_base}/api/enlist",
            ]
        )
        assert result.stdout.decode().endswith("\n201")
        os.kill(app.proc.pid, signal.SIGKILL)  # right after the 201: no clean shutdown
        app.proc.wait(timeout=10)
    finally:
        app.stop()
    db = sqlite3.connect(app.state_dir / "netboot.sqlite3")
    try:
        rows = db.execute("SELECT boot_mac, status FROM nodes").fetchall()
        events = db.execute("SELECT kind FROM events").fetchall()
    finally:
        db.close()
    assert rows == [("52:54:00:00:00:99", 0)]
    assert events == [("enlisted",)]
