"""The image cache: verified image versions on disk, one ``current`` per image.

Layout under the cache root (``<state_dir>/images``)::

    <kind>/<name>/<version>/     a complete, verified version: manifest.json, its files,
                                 .verified (the stat stamp of every file)
    <kind>/<name>/current        symlink -> <version>, switched with rename(2)
    partial/<job>/               an import in progress (resumable)
    jobs/<job>.json, .lock       import job status and lock (jobs.py)
    .cache.lock                  held while the tree changes

A version directory appears only by renaming a fully verified staging directory into
place, and ``current`` only moves by an atomic rename, so a reader (the HTTP server, a
deploy) always sees either the old version or the new one, never a half-written file.
Old versions stay until nothing uses them (``prune``).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from netboot.images.lock import FileLock
from netboot.images.manifest import KINDS, Manifest, ManifestError, check_name, parse_manifest
from netboot.images.verify import ImageRejected, Progress, check_stamp, stamp, verify_file

MANIFEST = "manifest.json"
STAMPS = ".verified"


@dataclass(frozen=True, slots=True)
class ImageVersion:
    manifest: Manifest
    path: Path
    current: bool

    @property
    def ref(self) -> str:
        return self.manifest.ref


class ImageCache:
    def __init__(self, root: Path) -> None:
        self.root = root

    # -- paths --------------------------------------------------------------------------

    def ensure(self) -> None:
        for sub in ("partial", "jobs"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)

    def lock(self) -> FileLock:
        self.ensure()
        return FileLock(self.root / ".cache.lock")

    def image_dir(self, kind: str, name: str) -> Path:
        if kind not in KINDS:
            raise ManifestError("kind", f"must be one of {', '.join(KINDS)}, not {kind!r}")
        return self.root / kind / check_name(name, "name")

    # -- reading ------------------------------------------------------------------------

    def _load(self, path: Path, current: bool) -> ImageVersion | None:
        try:
            manifest = parse_manifest((path / MANIFEST).read_bytes())
        except (OSError, ManifestError):
            return None  # not a finished version (or damaged): never served
        return ImageVersion(manifest, path, current)

    def current_version(self, kind: str, name: str) -> str | None:
        try:
            return os.readlink(self.image_dir(kind, name) / "current")
        except OSError:
            return None

    def versions(self, kind: str, name: str) -> list[ImageVersion]:
        base = self.image_dir(kind, name)
        current = self.current_version(kind, name)
        found = []
        if base.is_dir():
            for child in sorted(base.iterdir(), key=lambda p: p.stat().st_mtime):
                if child.name == "current" or child.is_symlink() or not child.is_dir():
                    continue
                loaded = self._load(child, child.name == current)
                if loaded is not None:
                    found.append(loaded)
        return found

    def images(self) -> list[ImageVersion]:
        out = []
        for kind in KINDS:
            kdir = self.root / kind
            if kdir.is_dir():
                for name_dir in sorted(kdir.iterdir()):
                    out.extend(self.versions(kind, name_dir.name))
        return out

    def get(self, kind: str, name: str, version: str | None = None) -> ImageVersion | None:
        """A version (the current one when ``version`` is None), or None."""
        version = version or self.current_version(kind, name)
        if version is None:
            return None
        path = self.image_dir(kind, name) / check_name(version, "version")
        return self._load(path, version == self.current_version(kind, name))

    def find_deploy(self, series: str, arch: str = "amd64") -> ImageVersion | None:
        """The current deploy image named ``series`` or whose release is ``series``."""
        by_name = self.get("deploy", series) if _valid(series) else None
        if by_name is not None and by_name.manifest.arch == arch:
            return by_name
        for image in self.images():
            m = image.manifest
            if (
                image.current
                and m.kind == "deploy"
                and m.arch == arch
                and series in (m.extra.get("release"), m.extra.get("series"))
            ):
                return image
        return None

    # -- verification -------------------------------------------------------------------

    def verify(self, image: ImageVersion, progress: Progress | None = None) -> None:
        """Re-hash every file; record stamps on success. Raises ImageRejected."""
        stamps = {}
        for entry in image.manifest.files:
            path = image.path / entry.name
            verify_file(path, entry, progress)
            stamps[entry.name] = stamp(path)
        _write_json(image.path / STAMPS, stamps)

    def checked_path(self, image: ImageVersion, filename: str) -> Path:
        """The path of one file of ``image``, after the on-use check (stat stamp)."""
        try:
            image.manifest.file(filename)
        except KeyError:
            raise ImageRejected(f"{image.ref} has no file {filename!r}") from None
        try:
            stamps = json.loads((image.path / STAMPS).read_text())
        except (OSError, ValueError):
            stamps = {}
        path = image.path / filename
        check_stamp(path, stamps.get(filename), f"{image.ref}/{filename}")
        return path

    # -- changing the tree ---------------------------------------------------------------

    def install(self, staging: Path, manifest: Manifest, make_current: bool = True) -> ImageVersion:
        """Move a verified staging directory (manifest.json + files + .verified) into
        place and point ``current`` at it. Idempotent: an already present version is
        kept (staging is removed) and only ``current`` moves."""
        base = self.image_dir(manifest.kind, manifest.name)
        dest = base / manifest.version
        with self.lock():
            base.mkdir(parents=True, exist_ok=True)
            if self._load(dest, False) is None:
                if dest.exists():
                    shutil.rmtree(dest)  # a damaged leftover, never served
                os.rename(staging, dest)
                _fsync_dir(base)
            else:
                shutil.rmtree(staging, ignore_errors=True)
            if make_current:
                self._point_current(base, manifest.version)
        image = self.get(manifest.kind, manifest.name, manifest.version)
        assert image is not None
        return image

    def set_current(self, kind: str, name: str, version: str) -> ImageVersion:
        with self.lock():
            image = self.get(kind, name, version)
            if image is None:
                raise ImageRejected(f"{kind}/{name}/{version} is not in the cache")
            self._point_current(self.image_dir(kind, name), version)
        return self.get(kind, name, version)  # type: ignore[return-value]

    def _point_current(self, base: Path, version: str) -> None:
        tmp = base / f".current.{os.getpid()}"
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()
        os.symlink(version, tmp)
        os.replace(tmp, base / "current")
        _fsync_dir(base)

    def prune(self, in_use: Iterable[str]) -> list[str]:
        """Delete versions that are neither current nor in ``in_use`` (refs); return them."""
        keep = set(in_use)
        removed = []
        with self.lock():
            for image in self.images():
                if image.current or image.ref in keep:
                    continue
                trash = image.path.with_name(f".trash-{image.path.name}")
                os.rename(image.path, trash)  # gone from readers in one step
                shutil.rmtree(trash, ignore_errors=True)
                removed.append(image.ref)
        return removed


def _valid(name: str) -> bool:
    try:
        check_name(name, "name")
    except ManifestError:
        return False
    return True


def _write_json(path: Path, doc: object) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as fh:
        json.dump(doc, fh, indent=2, sort_keys=True)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def write_json_atomic(path: Path, doc: object) -> None:
    _write_json(path, doc)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
