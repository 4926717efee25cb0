"""Where images come from: a manifest on disk or over HTTP, or a Debian package.

``fetch`` copies one file into a ``.part`` file and resumes where a previous attempt
stopped: local files continue from the same offset, HTTP asks for ``Range: bytes=N-``
(RFC 9110 section 14) and starts over if the server answers 200 instead of 206. The
caller verifies the finished file against the manifest; nothing here trusts the source.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from netboot.images.manifest import FileEntry, Manifest, ManifestError, check_name

CHUNK = 1 << 20
HTTP_TIMEOUT = 60.0
USER_AGENT = "netboot-images/1"


class FetchError(Exception):
    """A source could not be read; the message names the URL or path."""


@dataclass(frozen=True, slots=True)
class Source:
    """A manifest location: ``base`` + file name gives each file's location."""

    spec: str  # as the operator gave it (job identity)
    base: str  # directory path or URL ending in '/'
    manifest_name: str
    is_url: bool

    def locate(self, name: str) -> str:
        if self.is_url:
            return urllib.parse.urljoin(self.base, urllib.parse.quote(name))
        return str(Path(self.base) / name)


def parse_source(spec: str) -> Source:
    """A path or http(s) URL of a manifest.json or SHA256SUMS (or a directory holding one)."""
    if re.match(r"^https?://", spec):
        parsed = urllib.parse.urlsplit(spec)
        path = parsed.path or "/"
        if path.endswith("/"):
            return Source(spec, spec, "manifest.json", True)
        base, _, name = spec.rpartition("/")
        return Source(spec, base + "/", name, True)
    if "://" in spec:
        raise FetchError(f"{spec}: only http://, https:// and local paths are supported")
    path = Path(spec).expanduser().resolve()
    if path.is_dir():
        name = "manifest.json" if (path / "manifest.json").exists() else "SHA256SUMS"
        return Source(spec, str(path), name, False)
    return Source(spec, str(path.parent), path.name, False)


def read_small(location: str, is_url: bool, limit: int = 1 << 20) -> bytes:
    if not is_url:
        try:
            with open(location, "rb") as fh:
                data = fh.read(limit + 1)
        except OSError as exc:
            raise FetchError(f"{location}: {exc.strerror}") from None
    else:
        try:
            with _open_url(location, None) as resp:
                data = resp.read(limit + 1)
        except (urllib.error.URLError, OSError) as exc:
            raise FetchError(f"{location}: {_reason(exc)}") from None
    if len(data) > limit:
        raise FetchError(f"{location}: larger than {limit} bytes")
    return data


def fetch(
    location: str,
    is_url: bool,
    part: Path,
    expected_size: int | None,
    progress: Callable[[int], None],
) -> int:
    """Copy ``location`` into ``part``, resuming from ``part``'s current size. Returns the
    offset it resumed from (0: from the start)."""
    offset = part.stat().st_size if part.exists() else 0
    if expected_size is not None and offset > expected_size:
        part.unlink()  # longer than the file can be: start over
        offset = 0
    if expected_size is not None and offset == expected_size:
        progress(offset)
        return offset
    if offset:
        progress(offset)
    if not is_url:
        try:
            with open(location, "rb") as src, open(part, "ab") as dst:
                src.seek(offset)
                _copy(src, dst, progress)
        except OSError as exc:
            raise FetchError(f"{location}: {exc.strerror}") from None
        return offset
    try:
        with _open_url(location, offset or None) as resp:
            status = resp.status
            mode = "ab"
            if offset and status == 200:
                progress(-offset)  # no range support: the whole file comes again
                mode = "wb"
                offset = 0
            elif status not in (200, 206):
                raise FetchError(f"{location}: HTTP {status}")
            with open(part, mode) as dst:
                _copy(resp, dst, progress)
            return offset
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and expected_size is not None and offset >= expected_size:
            return offset
        raise FetchError(f"{location}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        raise FetchError(f"{location}: {_reason(exc) or type(exc).__name__}") from None


def _open_url(url: str, offset: int | None):
    headers = {"User-Agent": USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    return urllib.request.urlopen(
        urllib.request.Request(url, headers=headers), timeout=HTTP_TIMEOUT
    )


def _copy(src, dst, progress: Callable[[int], None]) -> None:
    while chunk := src.read(CHUNK):
        dst.write(chunk)
        progress(len(chunk))
    dst.flush()
    os.fsync(dst.fileno())


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    return str(reason if reason is not None else exc)


# -- Debian packages ----------------------------------------------------------------------

# Boot images Debian ships as packages: package -> (image name, kernel path, initrd path)
# inside the package. The installer's own netboot kernel and initrd (d-i); the kernel is
# byte-identical to linux-image's vmlinuz (LAB-NOTES).
DEBIAN_BOOT_PACKAGES = {
    "debian-installer-12-netboot-amd64": (
        "debian-installer",
        "amd64",
        "usr/lib/debian-installer/images/12/amd64/text/debian-installer/amd64/linux",
        "usr/lib/debian-installer/images/12/amd64/text/debian-installer/amd64/initrd.gz",
    ),
}


def local_deb(path: Path, workdir: Path, run=subprocess.run) -> str:
    """Check a .deb the operator downloaded against apt's index (the SHA256 of that
    package version in the signed archive metadata) and put it in ``workdir``; return the
    package name. A version apt does not know cannot be vouched for and is refused."""
    fields = {}
    for field in ("Package", "Version"):
        proc = run(["dpkg-deb", "-f", str(path), field], capture_output=True, text=True, timeout=60)
        if proc.returncode != 0:
            raise FetchError(f"{path}: not a Debian package ({proc.stderr.strip()[-200:]})")
        fields[field] = proc.stdout.strip()
    package, version = fields["Package"], fields["Version"]
    proc = run(
        ["apt-cache", "show", f"{package}={version}"], capture_output=True, text=True, timeout=60
    )
    known = {
        line.split(":", 1)[1].strip()
        for line in proc.stdout.splitlines()
        if line.startswith("SHA256:")
    }
    if not known:
        raise FetchError(
            f"{path}: {package} {version} is not in apt's index, so it cannot be verified "
            "(apt-get update, or import it with a manifest)"
        )
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest not in known:
        raise FetchError(
            f"{path}: wrong checksum: sha256 {digest}, apt's index says {', '.join(sorted(known))}"
        )
    workdir.mkdir(parents=True, exist_ok=True)
    for old in workdir.glob("*.deb"):
        old.unlink()
    shutil.copyfile(path, workdir / path.name)
    return package


def debian_package_image(package: str, workdir: Path, run=subprocess.run) -> Path:
    """Download ``package`` with apt (which checks it against the signed archive index),
    unpack its kernel and initrd into ``workdir``/files and return that directory.
    The caller hashes the files into a manifest."""
    if package not in DEBIAN_BOOT_PACKAGES:
        raise FetchError(
            f"debian:{package}: not a known boot image package "
            f"(known: {', '.join(sorted(DEBIAN_BOOT_PACKAGES))})"
        )
    workdir.mkdir(parents=True, exist_ok=True)
    debs = list(workdir.glob(f"{package}_*.deb"))
    if not debs:
        dl = workdir / "download"
        shutil.rmtree(dl, ignore_errors=True)
        dl.mkdir()
        proc = run(
            ["apt-get", "download", "-q", package],
            cwd=dl,
            capture_output=True,
            text=True,
            timeout=1800,
        )
        if proc.returncode != 0:
            raise FetchError(
                f"debian:{package}: apt-get download failed: {proc.stderr.strip()[-500:]} "
                "(try: apt-get update)"
            )
        got = list(dl.glob("*.deb"))
        if len(got) != 1:
            raise FetchError(f"debian:{package}: apt-get download gave {len(got)} files")
        os.replace(got[0], workdir / got[0].name)
        shutil.rmtree(dl, ignore_errors=True)
        debs = [workdir / got[0].name]
    deb = debs[0]
    tree = workdir / "tree"
    shutil.rmtree(tree, ignore_errors=True)
    proc = run(["dpkg-deb", "-x", str(deb), str(tree)], capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise FetchError(f"{deb.name}: dpkg-deb -x failed: {proc.stderr.strip()[-500:]}")
    _, _, kernel, initrd = DEBIAN_BOOT_PACKAGES[package]
    files = workdir / "files"
    shutil.rmtree(files, ignore_errors=True)
    files.mkdir()
    for rel, name in ((kernel, "linux"), (initrd, "initrd.gz")):
        src = tree / rel
        if not src.is_file():
            raise FetchError(f"{deb.name}: has no {rel}")
        os.replace(src, files / name)
    shutil.rmtree(tree, ignore_errors=True)
    return files


def debian_manifest(package: str, deb_version: str, files: list[FileEntry]) -> Manifest:
    name, arch, _, _ = DEBIAN_BOOT_PACKAGES[package]
    version = re.sub(r"[^A-Za-z0-9._+-]", "_", deb_version)
    try:
        check_name(version, "version")
    except ManifestError as exc:
        raise FetchError(f"debian:{package}: unusable version {deb_version!r}") from exc
    return Manifest(
        kind="boot",
        name=name,
        version=version,
        arch=arch,
        files=tuple(files),
        extra={
            "kernel": "linux",
            "initrds": ["initrd.gz"],
            "source": f"debian:{package}={deb_version}",
        },
    )
