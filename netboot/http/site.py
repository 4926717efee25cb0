"""The HTTP tree: boot scripts and files, enlistment, node API, web UI, /metrics."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from twisted.web import resource, server, util

from netboot.bootconfig.scripts import ScriptRenderer
from netboot.http.boot import IPXEScripts, boot_files
from netboot.http.deploy import DeployResource
from netboot.http.enlist import EnlistResource
from netboot.http.images import ImageFiles, ImagesAPI
from netboot.http.maas import maas_root
from netboot.http.metadata import MetadataResource
from netboot.http.nodes import NodesResource
from netboot.http.ui import build_ui
from netboot.images.cache import ImageCache
from netboot.images.deploycfg import DeploySettings
from netboot.images.nodeboot import NodeBootFacts
from netboot.metrics import Metrics
from netboot.store.sqlite import SQLiteStore


def build_site(
    store: SQLiteStore,
    boot_dir: Path,
    http_base: str,
    clock: Callable[[], float],
    *,
    reactor: Any = None,
    actions: Any = None,
    metrics: Metrics | None = None,
    deploy: DeploySettings | None = None,
) -> server.Site:
    root = resource.Resource()
    boot = resource.Resource()
    root.putChild(b"boot", boot)
    facts = (
        NodeBootFacts(store, ImageCache(deploy.images_dir), http_base, deploy.domain)
        if deploy is not None
        else None
    )
    boot.putChild(b"ipxe", IPXEScripts(store, ScriptRenderer(), http_base, facts))
    boot.putChild(b"files", boot_files(boot_dir))
    api = resource.Resource()
    root.putChild(b"api", api)
    api.putChild(b"enlist", EnlistResource(store, clock))
    api.putChild(b"nodes", NodesResource(store))
    cache = ImageCache(deploy.images_dir) if deploy is not None else None
    root.putChild(b"ui", build_ui(store, boot_dir, clock, reactor, actions, images=cache))
    if actions is not None:
        root.putChild(b"MAAS", maas_root(actions))
        root.putChild(b"metadata", MetadataResource(actions))
    if deploy is not None:  # images, the installer's API (netboot/http/deploy.py, images.py)
        root.putChild(b"images", ImageFiles(ImageCache(deploy.images_dir)))
        api.putChild(b"images", ImagesAPI(ImageCache(deploy.images_dir)))
        if actions is not None:
            api.putChild(b"deploy", DeployResource(actions, deploy, http_base, clock))
    root.putChild(b"", util.Redirect(b"/ui/"))
    metrics = metrics or Metrics(store, clock)
    root.putChild(b"metrics", metrics.resource())
    site = metrics.site(root)
    site.displayTracebacks = False
    return site
