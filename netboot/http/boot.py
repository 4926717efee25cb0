"""HTTP boot resources: per-node iPXE scripts and the boot files (kernel, initrds, loaders).

Files are served by twisted.web.static.File: Range requests (RFC 9110 section 14),
Content-Length, Last-Modified, and streaming through a producer in 64 KiB chunks as the
client's TCP window allows, so a large initrd never blocks the reactor and a slow client
holds no more than a socket buffer of it. `BootFiles` adds a strong ETag (inode, size,
mtime: a file replaced by rename gets a new one), If-None-Match (304) and If-Range (a
stale validator turns a Range request into a full 200 answer).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from twisted.logger import Logger
from twisted.web import http, resource, static
from twisted.web.server import Request

from netboot.bootconfig.scripts import NO_FACTS, NodeBoot, ScriptRenderer, boot_purpose
from netboot.nodes.inventory import InvalidReport, normalise_mac
from netboot.store.models import Node
from netboot.store.sqlite import SQLiteStore

log = Logger(namespace="netboot.http")

CHUNK_BYTES = 256 * 1024  # per read + write of a streamed boot file (static.File: 64 KiB)


class IPXEScripts(resource.Resource):
    """``/boot/ipxe/<mac>``: the script for whatever that machine should boot now."""

    def __init__(
        self,
        store: SQLiteStore,
        renderer: ScriptRenderer,
        http_base: str,
        boot_facts: Callable[[Node | None], NodeBoot] | None = None,
    ) -> None:
        super().__init__()
        self.store = store
        self.renderer = renderer
        self.http_base = http_base
        # netboot.images.nodeboot.NodeBootFacts: an installed node boots its disk.
        self.boot_facts = boot_facts or (lambda _node: NO_FACTS)

    def getChild(self, path: bytes, request: Request) -> resource.Resource:
        try:
            mac = normalise_mac(path.decode("ascii", "replace"), "mac")
        except InvalidReport:
            return resource.ErrorPage(404, "Not Found", "not a MAC address")
        return _IPXEScript(self, mac)


class _IPXEScript(resource.Resource):
    isLeaf = True

    def __init__(self, parent: IPXEScripts, mac: str) -> None:
        super().__init__()
        self.parent = parent
        self.mac = mac

    def render_GET(self, request: Request) -> bytes:
        node = self.parent.store.node_by_mac(self.mac)
        facts = self.parent.boot_facts(node)
        script = self.parent.renderer.ipxe(node, self.mac, self.parent.http_base, facts)
        log.info(
            "iPXE script {purpose} for {mac} ({peer})",
            purpose=boot_purpose(node, facts.installed).value,
            mac=self.mac,
            peer=request.getClientAddress().host,
        )
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        request.setHeader(b"cache-control", b"no-store")
        return script.encode()


class BootFiles(static.File):
    """Static boot files; never lists directories, never follows paths out of the root."""

    def directoryListing(self) -> resource.Resource:  # noqa: N802 (twisted API name)
        return resource.ForbiddenResource("directory listing is disabled")

    def render_GET(self, request: Request) -> bytes | int:  # noqa: N802 (twisted API name)
        try:
            st = os.stat(self.path)
        except OSError:
            return super().render_GET(request)  # 404 / 403 as static.File decides
        if os.path.isdir(self.path):
            return super().render_GET(request)
        etag = f'"{st.st_ino:x}-{st.st_size:x}-{st.st_mtime_ns:x}"'.encode()
        if_range = request.getHeader(b"if-range")
        if if_range is not None and if_range.strip() != etag:
            # RFC 9110 section 13.1.5: validator does not match -> send the whole file.
            request.requestHeaders.removeHeader(b"range")
        if request.setETag(etag) is http.CACHED:
            return b""
        return super().render_GET(request)

    render_HEAD = render_GET  # noqa: N815 (twisted API name)

    def makeProducer(self, request: Request, fileForReading: Any) -> static.StaticProducer:  # noqa: N802
        producer = super().makeProducer(request, fileForReading)
        # Fewer, larger reads and writes per client: a boot storm streams gigabytes.
        producer.bufferSize = CHUNK_BYTES
        return producer


def boot_files(root: Path) -> BootFiles:
    return BootFiles(str(root), defaultType="application/octet-stream")
