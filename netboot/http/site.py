"""The HTTP tree: boot scripts and files, enlistment, node API."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from twisted.web import resource, server

from netboot.bootconfig.scripts import ScriptRenderer
from netboot.http.boot import IPXEScripts, boot_files
from netboot.http.enlist import EnlistResource
from netboot.http.maas import maas_root
from netboot.http.metadata import MetadataResource
from netboot.http.nodes import NodesResource
from netboot.store.sqlite import SQLiteStore


def build_site(
    store: SQLiteStore,
    boot_dir: Path,
    http_base: str,
    clock: Callable[[], float],
    *,
    actions: Any = None,
) -> server.Site:
    root = resource.Resource()
    boot = resource.Resource()
    root.putChild(b"boot", boot)
    boot.putChild(b"ipxe", IPXEScripts(store, ScriptRenderer(), http_base))
    boot.putChild(b"files", boot_files(boot_dir))
    api = resource.Resource()
    root.putChild(b"api", api)
    api.putChild(b"enlist", EnlistResource(store, clock))
    api.putChild(b"nodes", NodesResource(store))
    if actions is not None:
        root.putChild(b"MAAS", maas_root(actions))
        root.putChild(b"metadata", MetadataResource(actions))
    site = server.Site(root)
    site.displayTracebacks = False
    return site
