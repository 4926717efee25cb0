"""TFTP path resolution: hostile names are refused, firmware spellings are accepted."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from netboot.tftp.paths import AccessViolation, FileNotFound, normalise, resolve


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A served tree beside a 'secret' file that must never be reachable."""
    served = tmp_path / "root"
    (served / "boot" / "x64").mkdir(parents=True)
    (served / "pxelinux.0").write_bytes(b"loader")
    (served / "boot" / "x64" / "wdsmgfw.efi").write_bytes(b"efi")
    (tmp_path / "secret").write_bytes(b"secret")
    return served


def test_plain_name_resolves_inside_root(root: Path) -> None:
    assert resolve(root, "pxelinux.0") == (root / "pxelinux.0").resolve()


def test_leading_slash_is_stripped_as_firmware_expects(root: Path) -> None:
    assert resolve(root, "/pxelinux.0") == (root / "pxelinux.0").resolve()
    assert resolve(root, "//boot//x64/./wdsmgfw.efi") == (root / "boot/x64/wdsmgfw.efi").resolve()


def test_backslashes_are_path_separators(root: Path) -> None:
    assert resolve(root, "\\boot\\x64\\wdsmgfw.efi") == (root / "boot/x64/wdsmgfw.efi").resolve()


@pytest.mark.parametrize(
    "name",
    [
        "../etc/passwd",
        "/../x",
        "a/../../x",
        "..\\..\\x",
        "boot/../pxelinux.0",  # would stay inside, still refused: no '..' at all
        "..",
        "../secret",
    ],
)
def test_dot_dot_component_is_an_access_violation(root: Path, name: str) -> None:
    with pytest.raises(AccessViolation):
        resolve(root, name)


def test_nul_in_name_is_an_access_violation(root: Path) -> None:
    with pytest.raises(AccessViolation):
        resolve(root, "x\x00y")
    with pytest.raises(AccessViolation):
        resolve(root, "pxelinux.0\x00.txt")


def test_absolute_host_path_is_looked_up_under_root_not_on_host(root: Path) -> None:
    with pytest.raises(FileNotFound):
        resolve(root, "/etc/passwd")
    secret = root.parent / "secret"
    with pytest.raises(FileNotFound):
        resolve(root, str(secret))


def test_symlink_escaping_root_is_an_access_violation(root: Path) -> None:
    (root / "escape").symlink_to(root.parent / "secret")
    (root / "escape-dir").symlink_to(root.parent)
    with pytest.raises(AccessViolation):
        resolve(root, "escape")
    with pytest.raises(AccessViolation):
        resolve(root, "escape-dir/secret")


def test_dangling_symlink_pointing_outside_is_an_access_violation(root: Path) -> None:
    (root / "dangling").symlink_to(root.parent / "does-not-exist")
    with pytest.raises(AccessViolation):
        resolve(root, "dangling")


def test_symlink_inside_root_is_followed(root: Path) -> None:
    (root / "default.efi").symlink_to("boot/x64/wdsmgfw.efi")
    assert resolve(root, "default.efi") == (root / "boot/x64/wdsmgfw.efi").resolve()


def test_root_reached_through_a_symlink_still_serves(tmp_path: Path, root: Path) -> None:
    link = tmp_path / "root-link"
    link.symlink_to(root)
    assert resolve(link, "pxelinux.0") == (root / "pxelinux.0").resolve()


@pytest.mark.parametrize("name", ["boot", "/boot/x64/", "", "/", "."])
def test_directory_is_an_access_violation(root: Path, name: str) -> None:
    with pytest.raises(AccessViolation):
        resolve(root, name)


def test_fifo_is_an_access_violation(root: Path) -> None:
    os.mkfifo(root / "pipe")
    with pytest.raises(AccessViolation):
        resolve(root, "pipe")


@pytest.mark.parametrize("name", ["missing.bin", "boot/missing", "pxelinux.0/child", "a" * 5000])
def test_missing_file_is_file_not_found(root: Path, name: str) -> None:
    with pytest.raises(FileNotFound):
        resolve(root, name)


def test_normalise_gives_providers_a_clean_relative_name() -> None:
    assert normalise("/boot\\x64//./ipxe.efi") == "boot/x64/ipxe.efi"
    with pytest.raises(AccessViolation):
        normalise("boot/../../x")


def test_windows_style_request_matches_case_insensitively(root: Path) -> None:
    (root / "boot" / "x64").mkdir(parents=True, exist_ok=True)
    (root / "boot" / "x64" / "wdsnbp.com").write_bytes(b"nbp")
    found = resolve(root, "\\Boot\\X64\\WDSNBP.COM")
    assert found == (root / "boot" / "x64" / "wdsnbp.com").resolve()


def test_case_folding_is_only_for_windows_style_names(root: Path) -> None:
    (root / "boot" / "x64").mkdir(parents=True, exist_ok=True)
    (root / "boot" / "x64" / "wdsnbp.com").write_bytes(b"nbp")
    with pytest.raises(FileNotFound):
        resolve(root, "/Boot/X64/WDSNBP.COM")  # POSIX names are exact


def test_case_folding_refuses_ambiguous_names_and_keeps_the_escape_checks(
    root: Path, tmp_path: Path
) -> None:
    (root / "Dup").write_bytes(b"1")
    (root / "dup").write_bytes(b"2")
    with pytest.raises(FileNotFound):
        resolve(root, "\\DUP")
    with pytest.raises(AccessViolation):
        resolve(root, "\\..\\secret")
