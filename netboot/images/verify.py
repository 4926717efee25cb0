"""Checking image files against their manifest: full SHA-256 on import and on request,
a cheap stat stamp on every use.

``verify_file`` reads the whole file (1 MiB at a time) and raises ImageRejected with the
reason an operator needs: which file, truncated (size) or corrupt (hash). After a full
verification the cache records each file's (size, mtime, inode) stamp; ``check_stamp``
compares it on use, so a file changed or truncated behind netboot's back is refused
without re-reading gigabytes per request.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

from netboot.images.manifest import FileEntry

CHUNK = 1 << 20

Progress = Callable[[int], None]  # called with the number of bytes just processed


class ImageRejected(Exception):
    """An image (or one of its files) failed a check; the message says which and why."""


def sha256_file(path: Path, progress: Progress | None = None) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
            if progress is not None:
                progress(len(chunk))
    return h.hexdigest()


def verify_file(path: Path, entry: FileEntry, progress: Progress | None = None) -> None:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise ImageRejected(f"{entry.name}: missing") from None
    if entry.size is not None and size != entry.size:
        what = "truncated" if size < entry.size else "too long"
        raise ImageRejected(f"{entry.name}: {what}: {size} bytes, the manifest says {entry.size}")
    digest = sha256_file(path, progress)
    if digest != entry.sha256:
        raise ImageRejected(
            f"{entry.name}: wrong checksum: sha256 {digest}, the manifest says {entry.sha256}"
        )


def stamp(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def check_stamp(path: Path, expected: list[int] | None, name: str) -> None:
    if expected is None:
        raise ImageRejected(f"{name}: never verified (run `netboot images verify`)")
    try:
        now = stamp(path)
    except FileNotFoundError:
        raise ImageRejected(f"{name}: missing from the image cache") from None
    if now != expected:
        raise ImageRejected(
            f"{name}: changed since it was verified (size {now[0]}, was {expected[0]}); "
            "run `netboot images verify` or import the image again"
        )
