"""The install path on a fresh Debian 12 root: packaging/install.sh run inside a chroot
of the appliance recipe's base file system (mmdebstrap minbase, cached by build.sh),
offline from wheels of this checkout. Then the unit is checked with systemd's own
verifier against that root, and the result is what the unit expects: the netboot
system user, /var/lib/netboot owned by it, the venv, the CLI, the enabled unit."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.conftest import REPO, require_root

BUILD = REPO / "build" / "appliance"
pytestmark = pytest.mark.netns  # root (chroot, mounts)


def _run(args: list[str], timeout: float = 900, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, **kw)


def _chroot(root: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    script = (
        'mount -t proc proc "$1/proc" && mount --rbind /dev "$1/dev" && '
        'mount -t tmpfs tmpfs "$1/run" && shift && exec chroot "$@"'
    )
    return _run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "_", str(root)]
        + [str(root), *args],
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    require_root()
    base = _run(
        ["images/appliance/build.sh", str(BUILD)], cwd=REPO, env={**os.environ, "STAGE": "base"}
    )
    assert base.returncode == 0, base.stdout[-3000:] + base.stderr[-3000:]
    root = tmp_path_factory.mktemp("install") / "root"
    root.mkdir()
    with tarfile.open(BUILD / "base.tar") as tar:
        tar.extractall(root, filter="fully_trusted")
    wheels = root / "tmp" / "wheels"
    built = _run([sys.executable, "-m", "pip", "wheel", "-q", "-w", str(wheels), str(REPO)])
    assert built.returncode == 0, built.stderr[-3000:]
    src = root / "tmp" / "src"
    for part in ("packaging", "docs"):
        shutil.copytree(REPO / part, src / part)
    result = _chroot(root, "/tmp/src/packaging/install.sh", "--wheels", "/tmp/wheels")
    assert result.returncode == 0, result.stdout + result.stderr
    root.joinpath("install.log").write_text(result.stdout + result.stderr)
    return root


def test_install_creates_the_system_user_and_state_dir(installed: Path):
    passwd = {
        line.split(":")[0]: line.split(":")
        for line in (installed / "etc/passwd").read_text().splitlines()
    }
    user = passwd["netboot"]
    assert int(user[2]) < 1000, user  # a system user
    assert user[5] == "/var/lib/netboot" and user[6] == "/usr/sbin/nologin"
    state = (installed / "var/lib/netboot").stat()
    assert state.st_uid == int(user[2]) and oct(state.st_mode & 0o777) == "0o750"


def test_install_enables_the_unit_with_the_venv_path(installed: Path):
    unit = installed / "etc/systemd/system/netboot.service"
    text = unit.read_text()
    assert "ExecStart=/opt/netboot/bin/netboot --config /etc/netboot/netboot.toml serve" in text
    assert "@PREFIX@" not in text
    wants = installed / "etc/systemd/system/multi-user.target.wants/netboot.service"
    assert wants.is_symlink() and os.readlink(wants) == "/etc/systemd/system/netboot.service"
    console = (installed / "etc/systemd/system/netboot-console-status.service").read_text()
    assert "ExecStart=/opt/netboot/bin/netboot --config /etc/netboot/netboot.toml status" in console


def test_the_unit_passes_systemd_analyze_verify_against_the_installed_root(installed: Path):
    result = _run(
        [
            "systemd-analyze",
            "verify",
            f"--root={installed}",
            "/etc/systemd/system/netboot.service",
            "/etc/systemd/system/netboot-console-status.service",
        ],
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # verify also prints warnings with exit 0: there must be none about our unit.
    assert "netboot" not in result.stderr, result.stderr


def test_the_unit_is_hardened_to_an_exposure_of_at_most_2_of_10(installed: Path):
    # systemd's own scoring of the sandbox (0 = locked down, 10 = unprotected); the
    # network capabilities and address families netboot needs are most of what is left.
    result = _run(
        [
            "systemd-analyze",
            "security",
            "--offline=true",
            f"--root={installed}",
            "--threshold=20",
            "/etc/systemd/system/netboot.service",
        ],
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    assert "Overall exposure level for netboot.service: 1." in result.stdout, result.stdout[-500:]


def test_the_installed_cli_runs_init_and_status_in_the_chroot(installed: Path):
    init = _chroot(
        installed,
        "netboot",
        "init",
        "--interface",
        "eth1",
        "--address",
        "10.66.0.1/24",
        "--no-dhcp-probe",
        "--resolv-conf",
        "/dev/null",
        "--force",
    )
    assert init.returncode == 0, init.stderr
    assert (installed / "etc/netboot/netboot.toml").exists()
    status = _chroot(installed, "netboot", "status")
    assert status.returncode == 1, status.stdout + status.stderr  # installed, not started
    assert "netboot: NOT healthy" in status.stdout and "not running" in status.stdout


def test_install_is_idempotent_and_keeps_the_configuration(installed: Path):
    config = installed / "etc/netboot/netboot.toml"
    config.write_text(config.read_text() + "# operator's edit\n")
    again = _chroot(installed, "/tmp/src/packaging/install.sh", "--wheels", "/tmp/wheels")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "kept /etc/netboot/netboot.toml" in again.stdout
    assert config.read_text().endswith("# operator's edit\n")
