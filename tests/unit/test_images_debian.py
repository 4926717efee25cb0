"""Boot images from Debian packages: unpacking the d-i netboot package's kernel and
initrd, and refusing a .deb that apt's index cannot vouch for. A small .deb is built
with dpkg-deb; apt is replaced by a fake only where it would reach the network."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

from netboot.images.cache import ImageCache
from netboot.images.jobs import ImportFailed, run_import
from netboot.images.sources import (
    DEBIAN_BOOT_PACKAGES,
    FetchError,
    debian_package_image,
    local_deb,
)

PKG = "debian-installer-12-netboot-amd64"


def build_deb(tmp: Path, version: str = "20230607+deb12u99") -> Path:
    _, _, kernel, initrd = DEBIAN_BOOT_PACKAGES[PKG]
    root = tmp / "pkgroot"
    for rel, data in ((kernel, b"K" * 4096), (initrd, b"I" * 8192)):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    (root / "DEBIAN").mkdir()
    (root / "DEBIAN" / "control").write_text(
        f"Package: {PKG}\nVersion: {version}\nArchitecture: all\n"
        "Maintainer: test <t@example.invalid>\nDescription: test\n"
    )
    deb = tmp / f"{PKG}_{version}_all.deb"
    subprocess.run(
        ["dpkg-deb", "-b", "-Zgzip", str(root), str(deb)], check=True, capture_output=True
    )
    return deb


def fake_apt(deb: Path, index_sha: str | None):
    """subprocess.run for apt-get download (copies the .deb) and apt-cache show."""

    def run(args, **kw):
        if args[:2] == ["apt-get", "download"]:
            shutil.copy(deb, Path(kw["cwd"]) / deb.name)
            return subprocess.CompletedProcess(args, 0, "", "")
        if args[:2] == ["apt-cache", "show"]:
            out = f"Package: {PKG}\nSHA256: {index_sha}\n" if index_sha else ""
            return subprocess.CompletedProcess(args, 0 if index_sha else 100, out, "")
        return subprocess.run(args, **kw)

    return run


def test_d_i_package_gives_kernel_and_initrd(tmp_path):
    deb = build_deb(tmp_path)
    files = debian_package_image(PKG, tmp_path / "work", run=fake_apt(deb, None))
    assert sorted(p.name for p in files.iterdir()) == ["initrd.gz", "linux"]
    assert (files / "linux").read_bytes() == b"K" * 4096


def test_unknown_package_is_refused(tmp_path):
    with pytest.raises(FetchError, match="not a known boot image package"):
        debian_package_image("hello", tmp_path)


def test_local_deb_must_match_apts_index(tmp_path):
    deb = build_deb(tmp_path)
    good = hashlib.sha256(deb.read_bytes()).hexdigest()
    assert local_deb(deb, tmp_path / "w1", run=fake_apt(deb, good)) == PKG
    with pytest.raises(FetchError, match="wrong checksum"):
        local_deb(deb, tmp_path / "w2", run=fake_apt(deb, "0" * 64))
    with pytest.raises(FetchError, match="not in apt's index"):
        local_deb(deb, tmp_path / "w3", run=fake_apt(deb, None))


def test_importing_a_deb_apt_does_not_know_fails_and_changes_nothing(tmp_path):
    deb = build_deb(tmp_path, version="0.0~netboot~test")  # never in any archive
    cache = ImageCache(tmp_path / "cache")
    with pytest.raises(ImportFailed, match="cannot be verified"):
        run_import(cache, str(deb))
    assert cache.images() == []
