"""Image import as a job: resumable, joinable, visible while it runs.

One job per source (the job id is a hash of the source as given). The process that
takes ``jobs/<id>.lock`` runs the job; any other import of the same source *joins* it:
it follows ``jobs/<id>.json`` (the status file the runner rewrites atomically as it
goes, which the API and UI read too) until the job ends, and reports the same result.
Downloads land in ``partial/<id>/`` and survive a crash or ``kill -9``; the next run
resumes them. Nothing reaches the served tree before every file matched its manifest:
a truncated or corrupt download is refused with the reason, its partial file deleted,
and the previous version keeps serving.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from netboot.images.cache import STAMPS, ImageCache, ImageVersion, write_json_atomic
from netboot.images.lock import FileLock
from netboot.images.manifest import (
    FileEntry,
    Manifest,
    ManifestError,
    default_version,
    parse_manifest,
    parse_sha256sums,
)
from netboot.images.sources import (
    FetchError,
    debian_manifest,
    debian_package_image,
    fetch,
    local_deb,
    parse_source,
    read_small,
)
from netboot.images.verify import ImageRejected, sha256_file, stamp, verify_file

RUNNING, DONE, FAILED = "running", "done", "failed"
STATUS_INTERVAL = 0.25  # seconds between status file rewrites while bytes flow


class ImportFailed(Exception):
    """The import did not produce an image; the message is the reason."""


@dataclass(frozen=True, slots=True)
class JobStatus:
    job_id: str
    source: str
    state: str
    stage: str
    bytes_done: int
    bytes_total: int
    started: float
    updated: float
    pid: int
    image: str = ""  # kind/name/version once known
    error: str = ""
    message: str = ""

    @property
    def finished(self) -> bool:
        return self.state in (DONE, FAILED)


@dataclass(frozen=True, slots=True)
class ImportResult:
    image: str
    joined: bool  # another process ran the job; this one followed it
    already: bool  # the version was in the cache already: nothing was downloaded


@dataclass(frozen=True, slots=True)
class ImportOptions:
    kind: str | None = None  # for SHA256SUMS sources (no manifest)
    name: str | None = None
    version: str | None = None
    arch: str = "amd64"
    make_current: bool = True


ProgressFn = Callable[[JobStatus], None]


def job_id_for(source: str) -> str:
    return hashlib.sha256(source.encode()).hexdigest()[:12]


def read_status(cache: ImageCache, job_id: str) -> JobStatus | None:
    try:
        doc = json.loads((cache.root / "jobs" / f"{job_id}.json").read_text())
        return JobStatus(**doc)
    except (OSError, ValueError, TypeError):
        return None


def list_jobs(cache: ImageCache) -> list[JobStatus]:
    jobs_dir = cache.root / "jobs"
    if not jobs_dir.is_dir():
        return []
    out = []
    for path in sorted(jobs_dir.glob("*.json")):
        status = read_status(cache, path.stem)
        if status is None:
            continue
        if status.state == RUNNING and not FileLock(jobs_dir / f"{path.stem}.lock").held_by_other():
            # Its runner died: the job waits to be resumed by the next import.
            status = replace(status, state="interrupted")
        out.append(status)
    return out


class _Reporter:
    """Writes the status file (throttled) and feeds the caller's progress callback."""

    def __init__(
        self, cache: ImageCache, status: JobStatus, progress: ProgressFn | None, clock
    ) -> None:
        self.cache = cache
        self.status = status
        self.progress = progress
        self.clock = clock
        self._last = 0.0
        self.write(force=True)

    def update(self, force: bool = False, **changes) -> None:
        self.status = replace(self.status, updated=self.clock(), **changes)
        self.write(force)

    def add_bytes(self, n: int) -> None:
        self.status = replace(self.status, bytes_done=self.status.bytes_done + n)
        self.write(False)

    def write(self, force: bool) -> None:
        now = time.monotonic()
        if not force and now - self._last < STATUS_INTERVAL:
            return
        self._last = now
        self.status = replace(self.status, updated=self.clock())
        write_json_atomic(
            self.cache.root / "jobs" / f"{self.status.job_id}.json", asdict(self.status)
        )
        if self.progress is not None:
            self.progress(self.status)


def run_import(
    cache: ImageCache,
    source: str,
    options: ImportOptions = ImportOptions(),  # noqa: B008 (frozen)
    *,
    progress: ProgressFn | None = None,
    in_use: Callable[[], Iterable[str]] | None = None,
    clock: Callable[[], float] = time.time,
    join_timeout: float = 3600.0,
) -> ImportResult:
    """Import ``source`` (a manifest/SHA256SUMS path or URL, or ``debian:<package>``)
    into the cache, or join the job already importing it. Raises ImportFailed."""
    cache.ensure()
    job_id = job_id_for(source)
    lock = FileLock(cache.root / "jobs" / f"{job_id}.lock")
    if not lock.try_acquire():
        return _join(cache, job_id, progress, join_timeout)
    try:
        previous = read_status(cache, job_id)
        started = clock()
        status = JobStatus(job_id, source, RUNNING, "manifest", 0, 0, started, started, os.getpid())
        if previous is not None and previous.state == RUNNING:
            status = replace(status, message="resuming an interrupted import")
        reporter = _Reporter(cache, status, progress, clock)
        try:
            image, already = _run(cache, source, options, reporter, job_id)
        except (ImageRejected, FetchError, ManifestError, ImportFailed) as exc:
            reporter.update(force=True, state=FAILED, error=str(exc))
            raise ImportFailed(str(exc)) from None
        removed: list[str] = []
        if in_use is not None:
            removed = cache.prune(in_use())
        note = "already in the cache" if already else "imported"
        if reporter.status.message.startswith("resumed"):
            note += f" ({reporter.status.message})"
        if removed:
            note += f"; pruned {', '.join(removed)}"
        reporter.update(force=True, state=DONE, stage="done", image=image.ref, message=note)
        return ImportResult(image.ref, joined=False, already=already)
    finally:
        lock.release()


def _join(
    cache: ImageCache, job_id: str, progress: ProgressFn | None, timeout: float
) -> ImportResult:
    lock = FileLock(cache.root / "jobs" / f"{job_id}.lock")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = read_status(cache, job_id)
        if status is not None and progress is not None:
            progress(status)
        if not lock.held_by_other():
            status = read_status(cache, job_id)
            if status is None or not status.finished:
                raise ImportFailed(f"job {job_id} stopped before finishing; run the import again")
            if status.state == FAILED:
                raise ImportFailed(status.error)
            return ImportResult(status.image, joined=True, already=False)
        time.sleep(0.2)
    raise ImportFailed(f"job {job_id} still running after {timeout:.0f}s")


def _run(
    cache: ImageCache, source: str, options: ImportOptions, reporter: _Reporter, job_id: str
) -> tuple[ImageVersion, bool]:
    staging = cache.root / "partial" / job_id
    staging.mkdir(parents=True, exist_ok=True)
    if source.startswith("debian:") or source.endswith(".deb"):
        manifest, locate = _debian(source.removeprefix("debian:"), staging, reporter)
        is_url = False
    else:
        manifest, src = _manifest_from(source, options)
        locate, is_url = src.locate, src.is_url
    reporter.update(force=True, image=manifest.ref, bytes_total=manifest.total_size)

    present = cache.get(manifest.kind, manifest.name, manifest.version)
    if present is not None:
        try:
            cache.verify(present)
        except ImageRejected:
            present = None  # damaged in place: import it again
        else:
            shutil.rmtree(staging, ignore_errors=True)
            if options.make_current:
                present = cache.set_current(manifest.kind, manifest.name, manifest.version)
            return present, True

    # Partial files from an older version of the same source are useless: start over.
    marker = staging / ".version"
    if marker.exists() and marker.read_text() != manifest.ref:
        shutil.rmtree(staging)
        staging.mkdir(parents=True)
    marker.write_text(manifest.ref)

    reporter.update(force=True, stage="download")
    resumed = []
    for entry in manifest.files:
        final = staging / entry.name
        if final.exists() and entry.size is not None and final.stat().st_size == entry.size:
            reporter.add_bytes(entry.size)  # finished in an earlier run
            continue
        part = staging / f"{entry.name}.part"
        if final.exists():
            os.replace(final, part)
        offset = fetch(locate(entry.name), is_url, part, entry.size, reporter.add_bytes)
        if offset:
            resumed.append(f"{entry.name} at {offset} bytes")
        got = part.stat().st_size
        if entry.size is not None and got < entry.size:
            # Kept as .part: the next import of this source continues from here.
            raise ImageRejected(
                f"{entry.name}: truncated: {got} bytes, the manifest says {entry.size} "
                "(the partial download is kept; import again to resume)"
            )
        os.replace(part, final)

    reporter.update(force=True, stage="verify")
    stamps = {}
    for entry in manifest.files:
        path = staging / entry.name
        try:
            verify_file(path, entry)
        except ImageRejected:
            path.unlink(missing_ok=True)  # never resume from bad bytes
            raise
        stamps[entry.name] = stamp(path)
    (staging / "manifest.json").write_text(manifest.to_json())
    write_json_atomic(staging / STAMPS, stamps)
    marker.unlink()
    note = f"resumed {', '.join(resumed)}" if resumed else ""
    reporter.update(force=True, stage="install", message=note)
    installed = cache.install(staging, manifest, make_current=options.make_current)
    shutil.rmtree(staging.parent / f"{staging.name}.deb", ignore_errors=True)  # Debian sources
    return installed, False


def _manifest_from(source: str, options: ImportOptions):
    src = parse_source(source)
    data = read_small(src.locate(src.manifest_name), src.is_url)
    if src.manifest_name.endswith(".json"):
        manifest = parse_manifest(data)
    else:
        if not (options.kind and options.name):
            raise ManifestError(
                "kind/name",
                f"{src.manifest_name} has no image kind and name: give --kind and --name",
            )
        try:
            entries = parse_sha256sums(data.decode())
        except UnicodeDecodeError:
            raise ManifestError("SHA256SUMS", "not text") from None
        entries = [_with_size(src, e) for e in entries]
        doc = {
            "kind": options.kind,
            "name": options.name,
            "version": options.version or default_version(entries),
            "arch": options.arch,
            "files": {
                e.name: {"sha256": e.sha256, **({"size": e.size} if e.size else {})}
                for e in entries
            },
        }
        manifest = parse_manifest(json.dumps(doc).encode())
    return manifest, src


def _with_size(src, entry: FileEntry) -> FileEntry:
    if not src.is_url:
        try:
            return replace(entry, size=Path(src.locate(entry.name)).stat().st_size)
        except OSError:
            return entry
    return entry


def _debian(package: str, staging: Path, reporter: _Reporter):
    """``package`` is a package name (apt downloads it) or the path of a .deb."""
    work = staging.parent / f"{staging.name}.deb"
    if package.endswith(".deb"):
        reporter.update(force=True, stage="download", message=f"checking {package}")
        package = local_deb(Path(package).expanduser().resolve(), work)
    else:
        reporter.update(force=True, stage="download", message=f"apt-get download {package}")
    files_dir = debian_package_image(package, work)
    deb = next(work.glob("*.deb"))
    version = subprocess.run(
        ["dpkg-deb", "-f", str(deb), "Version"], capture_output=True, text=True, check=True
    ).stdout.strip()
    entries = []
    for path in sorted(files_dir.iterdir()):
        entries.append(FileEntry(path.name, sha256_file(path), path.stat().st_size))
    manifest: Manifest = debian_manifest(package, version, entries)
    return manifest, lambda name: str(files_dir / name)
