"""Image manifests, the verified cache and import jobs from local files (no network)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netboot.images.cache import ImageCache
from netboot.images.jobs import (
    ImportFailed,
    ImportOptions,
    job_id_for,
    list_jobs,
    read_status,
    run_import,
)
from netboot.images.manifest import (
    ManifestError,
    default_version,
    parse_manifest,
    parse_sha256sums,
)
from netboot.images.verify import ImageRejected


def make_image(
    d: Path,
    name: str = "img",
    version: str = "v1",
    files: dict[str, bytes] | None = None,
    kind: str = "deploy",
    lie: dict | None = None,
) -> Path:
    """A source directory: files + manifest.json (``lie`` overrides manifest entries)."""
    d.mkdir(parents=True, exist_ok=True)
    files = files or {"root.tar.zst": os.urandom(300_000)}
    entries = {}
    for fname, data in files.items():
        (d / fname).write_bytes(data)
        entries[fname] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    entries.update(lie or {})
    doc = {
        "kind": kind,
        "name": name,
        "version": version,
        "arch": "amd64",
        "files": entries,
        "release": "bookworm",
    }
    (d / "manifest.json").write_text(json.dumps(doc))
    return d / "manifest.json"


# -- manifests -------------------------------------------------------------------------


def test_manifest_round_trips_and_keeps_extra_keys():
    doc = {
        "kind": "boot",
        "name": "installer",
        "version": "abc",
        "arch": "amd64",
        "kernel": "vmlinuz",
        "initrds": ["deploy.initrd"],
        "files": {"vmlinuz": {"sha256": "a" * 64, "size": 10}},
    }
    m = parse_manifest(json.dumps(doc).encode())
    assert m.ref == "boot/installer/abc"
    assert m.extra == {"kernel": "vmlinuz", "initrds": ["deploy.initrd"]}
    assert parse_manifest(m.to_json().encode()) == m


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"kind": "iso"}, "kind"),
        ({"files": {}}, "files"),
        ({"files": {"../etc/passwd": {"sha256": "a" * 64}}}, "files.../etc/passwd"),
        ({"files": {"x": {"sha256": "XYZ"}}}, "files.x.sha256"),
        ({"files": {"x": {"sha256": "a" * 64, "size": -1}}}, "files.x.size"),
        ({"name": "a/b"}, "name"),
        ({"version": ".."}, "version"),
    ],
)
def test_bad_manifest_is_refused_naming_the_field(change, field):
    doc = {"kind": "deploy", "name": "n", "version": "1", "files": {"x": {"sha256": "a" * 64}}}
    doc.update(change)
    with pytest.raises(ManifestError) as err:
        parse_manifest(json.dumps(doc).encode())
    assert err.value.field == field


@given(st.binary(max_size=300))
def test_random_bytes_never_crash_the_manifest_parser(data):
    with contextlib.suppress(ManifestError):
        parse_manifest(data)


def test_sha256sums_lines_become_entries_and_a_content_version():
    text = f"{'b' * 64}  vmlinuz\n{'c' * 64} *deploy.initrd\n# comment\n"
    entries = parse_sha256sums(text)
    assert [(e.name, e.sha256, e.size) for e in entries] == [
        ("vmlinuz", "b" * 64, None),
        ("deploy.initrd", "c" * 64, None),
    ]
    assert default_version(entries) == default_version(list(reversed(entries)))
    with pytest.raises(ManifestError):
        parse_sha256sums("nonsense line\n")


# -- import jobs and the cache -----------------------------------------------------------


def test_import_from_a_manifest_verifies_installs_and_makes_it_current(tmp_path):
    src = make_image(tmp_path / "src")
    cache = ImageCache(tmp_path / "cache")
    result = run_import(cache, str(src))
    assert result.image == "deploy/img/v1" and not result.joined and not result.already
    image = cache.get("deploy", "img")
    assert image is not None and image.current and image.manifest.version == "v1"
    served = cache.checked_path(image, "root.tar.zst")
    assert served.read_bytes() == (tmp_path / "src" / "root.tar.zst").read_bytes()
    assert cache.find_deploy("bookworm").ref == "deploy/img/v1"
    status = read_status(cache, job_id_for(str(src)))
    assert status.state == "done" and status.bytes_done == status.bytes_total == 300_000


def test_importing_the_same_version_again_is_a_no_op(tmp_path):
    src = make_image(tmp_path / "src")
    cache = ImageCache(tmp_path / "cache")
    run_import(cache, str(src))
    again = run_import(cache, str(src))
    assert again.already and again.image == "deploy/img/v1"
    assert [i.ref for i in cache.images()] == ["deploy/img/v1"]


def test_truncated_image_is_refused_and_the_previous_version_keeps_serving(tmp_path):
    cache = ImageCache(tmp_path / "cache")
    run_import(cache, str(make_image(tmp_path / "v1", version="v1")))
    src = make_image(tmp_path / "v2", version="v2")
    data = (tmp_path / "v2" / "root.tar.zst").read_bytes()
    (tmp_path / "v2" / "root.tar.zst").write_bytes(data[:1000])  # truncated source file
    with pytest.raises(
        ImportFailed, match=r"root.tar.zst: truncated: 1000 bytes, the manifest says 300000"
    ):
        run_import(cache, str(src))
    current = cache.get("deploy", "img")
    assert current.manifest.version == "v1"
    cache.checked_path(current, "root.tar.zst")  # still serving, still verified
    assert cache.get("deploy", "img", "v2") is None
    failed = read_status(cache, job_id_for(str(src)))
    assert failed.state == "failed" and "truncated" in failed.error


def test_wrong_checksum_is_refused_with_both_hashes_and_nothing_is_kept(tmp_path):
    cache = ImageCache(tmp_path / "cache")
    run_import(cache, str(make_image(tmp_path / "v1", version="v1")))
    data = os.urandom(1000)
    src = make_image(
        tmp_path / "v2",
        version="v2",
        files={"root.tar.zst": data},
        lie={"root.tar.zst": {"sha256": "0" * 64, "size": 1000}},
    )
    with pytest.raises(ImportFailed) as err:
        run_import(cache, str(src))
    assert "wrong checksum" in str(err.value)
    assert hashlib.sha256(data).hexdigest() in str(err.value) and "0" * 64 in str(err.value)
    assert cache.get("deploy", "img").manifest.version == "v1"
    # The bad download is not kept for a resume.
    assert not list((cache.root / "partial").rglob("root.tar.zst*"))


def test_import_resumes_a_partial_download(tmp_path):
    src = make_image(tmp_path / "src", files={"root.tar.zst": os.urandom(2_000_000)})
    cache = ImageCache(tmp_path / "cache")
    cache.ensure()
    job = job_id_for(str(src))
    part = cache.root / "partial" / job / "root.tar.zst.part"
    part.parent.mkdir(parents=True)
    original = (tmp_path / "src" / "root.tar.zst").read_bytes()
    part.write_bytes(original[:1_500_000])  # what a killed import left behind
    (part.parent / ".version").write_text("deploy/img/v1")
    run_import(cache, str(src))
    assert cache.checked_path(cache.get("deploy", "img"), "root.tar.zst").read_bytes() == original
    status = read_status(cache, job)
    assert status.message == "imported (resumed root.tar.zst at 1500000 bytes)"


def test_file_changed_after_verification_is_refused_on_use(tmp_path):
    cache = ImageCache(tmp_path / "cache")
    run_import(cache, str(make_image(tmp_path / "src")))
    image = cache.get("deploy", "img")
    path = image.path / "root.tar.zst"
    with open(path, "r+b") as fh:
        fh.truncate(10)
    with pytest.raises(ImageRejected, match="changed since it was verified"):
        cache.checked_path(image, "root.tar.zst")
    with pytest.raises(ImageRejected, match="truncated"):
        cache.verify(image)


def test_old_versions_stay_while_a_node_uses_them_and_are_pruned_after(tmp_path):
    cache = ImageCache(tmp_path / "cache")
    run_import(cache, str(make_image(tmp_path / "v1", version="v1")))
    in_use = {"deploy/img/v1"}
    run_import(cache, str(make_image(tmp_path / "v2", version="v2")), in_use=lambda: in_use)
    assert [(i.manifest.version, i.current) for i in cache.versions("deploy", "img")] == [
        ("v1", False),
        ("v2", True),
    ]
    in_use.clear()
    assert cache.prune(in_use) == ["deploy/img/v1"]
    assert [i.manifest.version for i in cache.versions("deploy", "img")] == ["v2"]


def test_sha256sums_source_needs_kind_and_name(tmp_path):
    d = tmp_path / "src"
    d.mkdir()
    (d / "vmlinuz").write_bytes(b"k" * 100)
    (d / "SHA256SUMS").write_text(f"{hashlib.sha256(b'k' * 100).hexdigest()}  vmlinuz\n")
    cache = ImageCache(tmp_path / "cache")
    with pytest.raises(ImportFailed, match="give --kind and --name"):
        run_import(cache, str(d / "SHA256SUMS"))
    result = run_import(cache, str(d / "SHA256SUMS"), ImportOptions(kind="boot", name="k"))
    assert result.image.startswith("boot/k/")
    assert cache.get("boot", "k").manifest.files[0].size == 100


def test_job_list_shows_an_interrupted_job(tmp_path):
    cache = ImageCache(tmp_path / "cache")
    cache.ensure()
    (cache.root / "jobs" / "abc.json").write_text(
        json.dumps(
            {
                "job_id": "abc",
                "source": "x",
                "state": "running",
                "stage": "download",
                "bytes_done": 5,
                "bytes_total": 10,
                "started": 1.0,
                "updated": 2.0,
                "pid": 1,
            }
        )
    )
    [job] = list_jobs(cache)
    assert job.state == "interrupted"  # nobody holds its lock
