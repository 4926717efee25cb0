"""``netboot images import|list|verify|prune|current`` and ``netboot sshkey add|list|delete``.

``import`` runs the import job in the foreground with a rich progress bar; a second
``import`` of the same source while the first runs joins it (same bar, same result).
Exit codes: 0 done, 1 the image was refused or could not be fetched (the reason is
printed; the previous version keeps serving), 2 bad arguments.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from netboot.config import Config
from netboot.images.cache import ImageCache
from netboot.images.jobs import ImportFailed, ImportOptions, JobStatus, list_jobs, run_import
from netboot.images.manifest import KINDS, ManifestError
from netboot.images.settings import images_dir
from netboot.images.verify import ImageRejected


def add_parser(sub) -> None:
    images = sub.add_parser("images", help="boot and deploy images: import, list, verify")
    verbs = images.add_subparsers(dest="images_command", required=True)
    imp = verbs.add_parser(
        "import",
        help="import an image from a manifest.json or SHA256SUMS (path or URL), "
        "or from Debian's packages (debian:<package>)",
    )
    imp.add_argument("source")
    imp.add_argument("--kind", choices=KINDS, help="for SHA256SUMS sources")
    imp.add_argument("--name", help="for SHA256SUMS sources")
    imp.add_argument("--version", help="for SHA256SUMS sources (default: from the hashes)")
    imp.add_argument("--arch", default="amd64")
    imp.add_argument("--no-current", action="store_true", help="import without serving it")
    imp.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    lst = verbs.add_parser("list", help="image versions and import jobs")
    lst.add_argument("--json", action="store_true")
    ver = verbs.add_parser("verify", help="re-hash image files against their manifests")
    ver.add_argument("ref", nargs="*", help="kind/name[/version] (default: every version)")
    verbs.add_parser("prune", help="delete versions no node uses that are not current")
    cur = verbs.add_parser("current", help="serve another cached version of an image")
    cur.add_argument("ref", help="kind/name/version")

    keys = sub.add_parser("sshkey", help="operators' SSH keys, installed on nodes they deploy")
    kverbs = keys.add_subparsers(dest="sshkey_command", required=True)
    add = kverbs.add_parser("add", help="add a public key (file, or - for stdin)")
    add.add_argument("username")
    add.add_argument("keyfile")
    kl = kverbs.add_parser("list")
    kl.add_argument("username")
    kd = kverbs.add_parser("delete")
    kd.add_argument("username")
    kd.add_argument("key", help="the whole key line")


def run(cfg: Config, args: argparse.Namespace) -> int:
    if args.command == "sshkey":
        return _sshkey(cfg, args)
    cache = ImageCache(images_dir(cfg))
    verb = args.images_command
    if verb == "import":
        return _import(cfg, cache, args)
    if verb == "list":
        return _list(cache, args.json)
    if verb == "verify":
        return _verify(cache, args.ref)
    if verb == "prune":
        removed = cache.prune(_in_use(cfg))
        print("pruned: " + (", ".join(removed) if removed else "nothing"))
        return 0
    if verb == "current":
        try:
            kind, name, version = args.ref.split("/")
            image = cache.set_current(kind, name, version)
        except (ValueError, ManifestError, ImageRejected) as exc:
            print(f"netboot: {exc}", file=sys.stderr)
            return 1
        print(f"current: {image.ref}")
        return 0
    return 2


def _in_use(cfg: Config) -> set[str]:
    if not cfg.database_path.exists():
        return set()
    from netboot.store.sqlite import open_store

    store = open_store(cfg.database_path)
    try:
        return store.images_in_use()
    finally:
        store.close()


def _import(cfg: Config, cache: ImageCache, args: argparse.Namespace) -> int:
    options = ImportOptions(
        kind=args.kind,
        name=args.name,
        version=args.version,
        arch=args.arch,
        make_current=not args.no_current,
    )
    console = Console(stderr=True)
    if args.quiet or not console.is_terminal:
        progress_cb, bar = _line_progress(console), None
    else:
        bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=console,
        )
        task = bar.add_task("import", total=None)

        def progress_cb(status: JobStatus) -> None:
            bar.update(
                task,
                description=f"{status.stage:8} {status.image or status.source}",
                completed=status.bytes_done,
                total=status.bytes_total or None,
            )

    try:
        if bar is not None:
            with bar:
                result = run_import(
                    cache, args.source, options, progress=progress_cb, in_use=lambda: _in_use(cfg)
                )
        else:
            result = run_import(
                cache, args.source, options, progress=progress_cb, in_use=lambda: _in_use(cfg)
            )
    except ImportFailed as exc:
        print(f"netboot: image refused: {exc}", file=sys.stderr)
        current = _current_summary(cache)
        if current:
            print(f"netboot: still serving: {current}", file=sys.stderr)
        return 1
    how = (
        "joined the running import of"
        if result.joined
        else ("already had" if result.already else "imported")
    )
    print(f"{how} {result.image}")
    return 0


def _line_progress(console: Console):
    """Without a terminal: one line per stage (and at most one per 5 s while bytes flow)."""
    last = {"stage": "", "t": 0.0}

    def cb(status: JobStatus) -> None:
        now = time.monotonic()
        if status.stage != last["stage"] or now - last["t"] >= 5:
            last.update(stage=status.stage, t=now)
            total = f"/{status.bytes_total}" if status.bytes_total else ""
            console.print(
                f"import {status.job_id}: {status.state} {status.stage} "
                f"{status.bytes_done}{total} bytes {status.image}",
                highlight=False,
                soft_wrap=True,
            )

    return cb


def _current_summary(cache: ImageCache) -> str:
    return ", ".join(i.ref for i in cache.images() if i.current)


def _list(cache: ImageCache, as_json: bool) -> int:
    images = cache.images()
    jobs = list_jobs(cache)
    if as_json:
        doc = {
            "images": [
                {
                    "ref": i.ref,
                    "kind": i.manifest.kind,
                    "name": i.manifest.name,
                    "version": i.manifest.version,
                    "arch": i.manifest.arch,
                    "current": i.current,
                    "size": i.manifest.total_size,
                }
                for i in images
            ],
            "jobs": [asdict(j) for j in jobs],
        }
        print(json.dumps(doc, indent=2, sort_keys=True))
        return 0
    table = Table(title="images")
    for col in ("kind", "name", "version", "arch", "size", "current"):
        table.add_column(col)
    for i in images:
        m = i.manifest
        table.add_row(
            m.kind, m.name, m.version, m.arch, f"{m.total_size:,}", "*" if i.current else ""
        )
    console = Console()
    console.print(table)
    if jobs:
        jt = Table(title="import jobs")
        for col in ("job", "state", "stage", "bytes", "image", "error"):
            jt.add_column(col)
        for j in jobs:
            jt.add_row(
                j.job_id, j.state, j.stage, f"{j.bytes_done:,}/{j.bytes_total:,}", j.image, j.error
            )
        console.print(jt)
    return 0


def _verify(cache: ImageCache, refs: list[str]) -> int:
    selected = []
    for image in cache.images():
        if not refs or any(
            image.ref == r or image.ref.startswith(r.rstrip("/") + "/") for r in refs
        ):
            selected.append(image)
    if refs and not selected:
        print(f"netboot: no image matches {' '.join(refs)}", file=sys.stderr)
        return 1
    bad = 0
    for image in selected:
        try:
            cache.verify(image)
        except ImageRejected as exc:
            bad += 1
            print(f"BAD {image.ref}: {exc}")
        else:
            print(f"ok  {image.ref}")
    return 1 if bad else 0


def _sshkey(cfg: Config, args: argparse.Namespace) -> int:
    from netboot.store.sqlite import open_store

    store = open_store(cfg.database_path)
    try:
        if args.sshkey_command == "add":
            text = sys.stdin.read() if args.keyfile == "-" else Path(args.keyfile).read_text()
            keys = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
            for key in keys:
                if not key.startswith(("ssh-", "ecdsa-", "sk-")) or len(key.split()) < 2:
                    print(f"netboot: not an SSH public key: {key[:40]!r}", file=sys.stderr)
                    return 2
            for key in keys:
                store.add_ssh_key(args.username, key, time.time())
            print(f"added {len(keys)} key(s) for {args.username}")
            return 0
        if args.sshkey_command == "list":
            for key in store.ssh_keys(args.username):
                print(key)
            return 0
        if store.delete_ssh_key(args.username, args.key.strip()):
            return 0
        print("netboot: no such key", file=sys.stderr)
        return 1
    finally:
        store.close()
