"""Shared fixtures: root check (fail loudly, never skip), lab namespaces, appliances."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from netboot.lab.appliance import LabAppliance
from netboot.lab.netns import LabNetwork

REPO = Path(__file__).resolve().parent.parent
BOOT_DIR = REPO / "build" / "boot"


def require_root() -> None:
    if os.geteuid() != 0:
        pytest.fail(
            "this test needs root to create network namespaces (CI runs as root); "
            "run it with sudo or `make test` as root",
            pytrace=False,
        )


@pytest.fixture
def lab() -> Iterator[LabNetwork]:
    require_root()
    with LabNetwork(prefix="nbtest") as net:
        yield net


@pytest.fixture
def fake_boot_dir(tmp_path: Path) -> Path:
    """Boot files with known content, for protocol tests that boot no real machine."""
    boot = tmp_path / "boot"
    boot.mkdir()
    (boot / "undionly.kpxe").write_bytes(os.urandom(70_000))
    (boot / "snponly.efi").write_bytes(os.urandom(200_000))
    (boot / "vmlinuz").write_bytes(os.urandom(1_000_000))
    (boot / "enlist.initrd").write_bytes(os.urandom(300_000))
    return boot


@pytest.fixture
def appliance(lab: LabNetwork, fake_boot_dir: Path, tmp_path: Path) -> Iterator[LabAppliance]:
    app = LabAppliance(lab, tmp_path / "appliance", fake_boot_dir).start()
    try:
        app.wait_ready()
        yield app
    finally:
        app.stop()
