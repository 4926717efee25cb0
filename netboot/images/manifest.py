"""Image manifests: what an image is made of and the SHA-256 of every file.

A manifest is a small JSON document (``manifest.json``)::

    {"kind": "boot" | "deploy", "name": "installer", "version": "…", "arch": "amd64",
     "files": {"vmlinuz": {"sha256": "…", "size": 8123456}, …}, …}

Any other keys are kept as ``extra`` (a boot image says which file is the kernel and
which are initrds; a deploy image its OS release). A plain ``SHA256SUMS`` file
(``sha256sum`` output) can stand in for the file table. Parsing is strict: every
problem raises ManifestError naming the field, and names can never leave the image's
directory (no ``/``, no ``..``).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

KINDS = ("boot", "deploy")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
MAX_MANIFEST_BYTES = 1 << 20


class ManifestError(ValueError):
    """A manifest that cannot be used; ``field`` names the offending key."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"manifest {field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class FileEntry:
    name: str
    sha256: str
    size: int | None  # None: not stated (SHA256SUMS); then only the hash is checked


@dataclass(frozen=True, slots=True)
class Manifest:
    kind: str
    name: str
    version: str
    arch: str
    files: tuple[FileEntry, ...]
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ref(self) -> str:
        """``kind/name/version``: how nodes and logs refer to one image version."""
        return f"{self.kind}/{self.name}/{self.version}"

    @property
    def total_size(self) -> int:
        return sum(f.size or 0 for f in self.files)

    def file(self, name: str) -> FileEntry:
        for entry in self.files:
            if entry.name == name:
                return entry
        raise KeyError(name)

    def to_json(self) -> str:
        doc: dict[str, Any] = dict(self.extra)
        doc.update(
            kind=self.kind,
            name=self.name,
            version=self.version,
            arch=self.arch,
            files={
                f.name: {"sha256": f.sha256, **({"size": f.size} if f.size is not None else {})}
                for f in self.files
            },
        )
        return json.dumps(doc, indent=2, sort_keys=True) + "\n"


def check_name(value: Any, what: str) -> str:
    if not isinstance(value, str) or not _NAME.match(value) or value in (".", ".."):
        raise ManifestError(what, f"{value!r} is not a valid name (letters, digits, ._+-)")
    return value


def parse_manifest(data: bytes) -> Manifest:
    """Parse and validate manifest.json bytes."""
    if len(data) > MAX_MANIFEST_BYTES:
        raise ManifestError("(document)", f"larger than {MAX_MANIFEST_BYTES} bytes")
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError("(document)", f"not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ManifestError("(document)", "must be a JSON object")
    kind = doc.get("kind")
    if kind not in KINDS:
        raise ManifestError("kind", f"must be one of {', '.join(KINDS)}, not {kind!r}")
    files_doc = doc.get("files")
    if not isinstance(files_doc, dict) or not files_doc:
        raise ManifestError("files", "must be a non-empty object of name -> {sha256, size}")
    files = []
    for name, entry in sorted(files_doc.items()):
        check_name(name, f"files.{name}")
        if not isinstance(entry, dict):
            raise ManifestError(f"files.{name}", "must be an object with sha256 and size")
        sha = entry.get("sha256")
        if not isinstance(sha, str) or not _SHA256.match(sha):
            raise ManifestError(f"files.{name}.sha256", "must be 64 lowercase hex digits")
        size = entry.get("size")
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
            raise ManifestError(f"files.{name}.size", "must be a non-negative integer")
        files.append(FileEntry(name, sha, size))
    arch = doc.get("arch", "amd64")
    check_name(arch, "arch")
    version = doc.get("version")
    if version is None:
        version = default_version(files)
    extra = {k: v for k, v in doc.items() if k not in {"kind", "name", "version", "arch", "files"}}
    return Manifest(
        kind=kind,
        name=check_name(doc.get("name"), "name"),
        version=check_name(version, "version"),
        arch=arch,
        files=tuple(files),
        extra=extra,
    )


def default_version(files: list[FileEntry] | tuple[FileEntry, ...]) -> str:
    """A version derived from the content: the same files give the same version."""
    h = hashlib.sha256()
    for f in sorted(files, key=lambda f: f.name):
        h.update(f"{f.name}\0{f.sha256}\n".encode())
    return h.hexdigest()[:16]


def parse_sha256sums(text: str) -> list[FileEntry]:
    """``sha256sum`` output (``<hex>  <name>`` or ``<hex> *<name>``) -> entries."""
    entries = []
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(None, 1)
        if len(parts) != 2 or not _SHA256.match(parts[0].lower()):
            raise ManifestError(f"SHA256SUMS line {lineno}", f"not '<sha256>  <name>': {line!r}")
        name = parts[1].lstrip("*").removeprefix("./")
        entries.append(
            FileEntry(check_name(name, f"SHA256SUMS line {lineno}"), parts[0].lower(), None)
        )
    if not entries:
        raise ManifestError("SHA256SUMS", "lists no files")
    return entries
