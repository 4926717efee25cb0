#!/usr/bin/env python3
"""Pack a staging directory into a gzip'd newc cpio archive (an initramfs).

Usage: mkcpio.py STAGING_DIR OUTPUT.gz [--dev PATH:MODE:c|b:MAJOR:MINOR ...]

Every entry is owned by 0:0 and stamped with the same mtime (SOURCE_DATE_EPOCH, default 0),
entries are sorted, and gzip carries no name or timestamp: the same inputs give a
byte-identical archive. Device nodes are written straight into the archive (--dev), so
building needs neither root nor mknod.
"""

from __future__ import annotations

import argparse
import gzip
import os
import stat
import sys

TRAILER = "TRAILER!!!"


class NewcWriter:
    def __init__(self, mtime: int) -> None:
        self.out = bytearray()
        self.ino = 1
        self.mtime = mtime

    def add(
        self,
        name: str,
        mode: int,
        data: bytes = b"",
        rdev: tuple[int, int] = (0, 0),
        nlink: int = 1,
    ) -> None:
        encoded = name.encode() + b"\0"
        fields = (
            self.ino,
            mode,
            0,
            0,
            nlink,
            self.mtime,
            len(data),
            0,
            0,
            rdev[0],
            rdev[1],
            len(encoded),
            0,
        )
        self.ino += 1
        self.out += b"070701" + b"".join(b"%08X" % f for f in fields)
        self.out += encoded
        self._pad()
        self.out += data
        self._pad()

    def _pad(self) -> None:
        self.out += b"\0" * (-len(self.out) % 4)

    def finish(self) -> bytes:
        self.ino = 0
        self.add(TRAILER, 0, nlink=1)
        self.out += b"\0" * (-len(self.out) % 512)
        return bytes(self.out)


def parse_dev(spec: str) -> tuple[str, int, int, int, int]:
    path, mode, kind, major, minor = spec.split(":")
    ftype = {"c": stat.S_IFCHR, "b": stat.S_IFBLK}[kind]
    return path.strip("/"), ftype | int(mode, 8), int(major), int(minor), 0


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("staging")
    ap.add_argument("output")
    ap.add_argument("--dev", action="append", default=[], metavar="PATH:MODE:c|b:MAJ:MIN")
    args = ap.parse_args(argv)

    mtime = int(os.environ.get("SOURCE_DATE_EPOCH", "0"))
    entries: dict[str, tuple[int, bytes, tuple[int, int]]] = {}
    root = os.path.abspath(args.staging)
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root)
            st = os.lstat(full)
            if stat.S_ISLNK(st.st_mode):
                entries[rel] = (stat.S_IFLNK | 0o777, os.readlink(full).encode(), (0, 0))
            elif stat.S_ISDIR(st.st_mode):
                entries[rel] = (stat.S_IFDIR | 0o755, b"", (0, 0))
            elif stat.S_ISREG(st.st_mode):
                perm = 0o755 if st.st_mode & 0o111 else 0o644
                with open(full, "rb") as fh:
                    entries[rel] = (stat.S_IFREG | perm, fh.read(), (0, 0))
            else:
                print(f"mkcpio: skipping special file {rel}", file=sys.stderr)
    for spec in args.dev:
        path, mode, major, minor, _ = parse_dev(spec)
        entries[path] = (mode, b"", (major, minor))

    # Parents before children: make sure every directory on each path exists as an entry.
    for rel in list(entries):
        parent = os.path.dirname(rel)
        while parent and parent not in entries:
            entries[parent] = (stat.S_IFDIR | 0o755, b"", (0, 0))
            parent = os.path.dirname(parent)

    writer = NewcWriter(mtime)
    for rel in sorted(entries, key=lambda p: p.split("/")):
        mode, data, rdev = entries[rel]
        writer.add(rel, mode, data, rdev, nlink=2 if stat.S_ISDIR(mode) else 1)
    archive = writer.finish()

    tmp = args.output + ".tmp"
    with (
        open(tmp, "wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=9, mtime=0) as gz,
    ):
        gz.write(archive)
    os.replace(tmp, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
