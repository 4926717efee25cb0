"""vagrant/Vagrantfile and the box format, checked by a real vagrant (Debian 12's
vagrant + vagrant-libvirt packages) in a throw-away VAGRANT_HOME. `vagrant up` itself
is not part of the suite (4-10 minutes under TCG): `make vagrant-up-check`
(vagrant/try-up.sh) runs it confined to a private libvirtd in its own network and
mount namespace; docs/appliance.md has what was run and the measured times."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from tests.conftest import REPO


def _vagrant(args: list[str], home: Path, cwd: Path) -> subprocess.CompletedProcess:
    if shutil.which("vagrant") is None:
        pytest.fail("vagrant is not installed: `make deps` installs vagrant and vagrant-libvirt")
    env = {
        **os.environ,
        "VAGRANT_HOME": str(home),
        "VAGRANT_DOTFILE_PATH": str(home / "dotfile"),  # not vagrant/.vagrant in the tree
        "VAGRANT_CHECKPOINT_DISABLE": "1",
    }
    return subprocess.run(
        ["vagrant", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def test_vagrantfile_validates_with_the_libvirt_provider_plugin(tmp_path: Path):
    plugins = _vagrant(["plugin", "list"], tmp_path / "home", REPO / "vagrant")
    assert "vagrant-libvirt" in plugins.stdout, plugins.stdout + plugins.stderr
    result = _vagrant(["validate"], tmp_path / "home", REPO / "vagrant")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Vagrantfile validated successfully" in result.stdout


def test_validation_really_checks_the_libvirt_settings(tmp_path: Path):
    # Guard against a validate that ignores the provider block: a typo must fail.
    text = (REPO / "vagrant" / "Vagrantfile").read_text()
    (tmp_path / "Vagrantfile").write_text(text.replace("lv.memory =", "lv.memroy ="))
    result = _vagrant(["validate"], tmp_path / "home", tmp_path)
    assert result.returncode != 0
    assert "memroy" in result.stdout + result.stderr


def test_make_box_packages_a_qcow2_that_vagrant_box_add_accepts(tmp_path: Path):
    image = tmp_path / "tiny.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(image), "3G"], check=True)
    box = tmp_path / "netboot.box"
    made = subprocess.run(
        [str(REPO / "images/appliance/make-box.sh"), str(image), str(box)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert made.returncode == 0, made.stderr
    with tarfile.open(box) as tar:
        assert sorted(tar.getnames()) == ["Vagrantfile", "box.img", "metadata.json"]
        meta = json.load(tar.extractfile("metadata.json"))
    assert meta == {"provider": "libvirt", "format": "qcow2", "virtual_size": 3}
    added = _vagrant(["box", "add", "--name", "netboot/test", str(box)], tmp_path / "h", tmp_path)
    assert added.returncode == 0, added.stdout + added.stderr
    listed = _vagrant(["box", "list"], tmp_path / "h", tmp_path)
    assert "netboot/test" in listed.stdout and "libvirt" in listed.stdout, listed.stdout
