"""The boot directory as the images page lists it: every file with size, mtime, SHA-256.

Hashing reads the files, so ``pages.py`` runs ``list_boot_files`` in a thread; hashes are
cached by (path, size, mtime) so a page view re-reads only files that changed.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

MAX_FILES = 2000


@dataclass(frozen=True, slots=True)
class BootFile:
    name: str  # relative to the boot dir, '/'-separated
    size: int
    mtime: float
    sha256: str


@dataclass(frozen=True, slots=True)
class Listing:
    files: tuple[BootFile, ...]
    truncated: bool
    error: str | None = None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


class HashCache:
    def __init__(self) -> None:
        self._by_key: dict[tuple[str, int, int], str] = {}

    def sha256(self, path: Path, st: os.stat_result) -> str:
        key = (str(path), st.st_size, st.st_mtime_ns)
        digest = self._by_key.get(key)
        if digest is None:
            digest = _sha256(path)
            self._by_key[key] = digest
        return digest


def list_boot_files(boot_dir: Path, cache: HashCache, max_files: int = MAX_FILES) -> Listing:
    """Regular files under ``boot_dir`` (symlinked files included, directories not
    followed), sorted by name; an unreadable directory is reported, not raised."""
    if not boot_dir.is_dir():
        return Listing((), False, f"{boot_dir} is not a directory")
    found: list[BootFile] = []
    truncated = False
    errors: list[str] = []
    for dirpath, dirnames, filenames in os.walk(boot_dir, onerror=lambda e: errors.append(str(e))):
        dirnames.sort()
        for name in sorted(filenames):
            if len(found) >= max_files:
                truncated = True
                break
            path = Path(dirpath) / name
            try:
                st = path.stat()
                if not path.is_file():
                    continue
                digest = cache.sha256(path, st)
            except OSError as exc:
                errors.append(f"{path}: {exc.strerror}")
                continue
            found.append(
                BootFile(path.relative_to(boot_dir).as_posix(), st.st_size, st.st_mtime, digest)
            )
        if truncated:
            break
    found.sort(key=lambda f: f.name)
    return Listing(tuple(found), truncated, "; ".join(errors) or None)
