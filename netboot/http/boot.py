"""HTTP boot resources: per-node iPXE scripts and the boot files (kernel, initrds, loaders).

Files are served by twisted.web.static.File: Range requests, Content-Length and
streaming through a producer, so a large initrd never blocks the reactor.
"""

from __future__ import annotations

from pathlib import Path

from twisted.logger import Logger
from twisted.web import resource, static
from twisted.web.server import Request

from netboot.bootconfig.scripts import ScriptRenderer, boot_purpose
from netboot.nodes.inventory import InvalidReport, normalise_mac
from netboot.store.sqlite import SQLiteStore

log = Logger(namespace="netboot.http")


class IPXEScripts(resource.Resource):
    """``/boot/ipxe/<mac>``: the script for whatever that machine should boot now."""

    def __init__(self, store: SQLiteStore, renderer: ScriptRenderer, http_base: str) -> None:
        super().__init__()
        self.store = store
        self.renderer = renderer
        self.http_base = http_base

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
        script = self.parent.renderer.ipxe(node, self.mac, self.parent.http_base)
        log.info(
            "iPXE script {purpose} for {mac} ({peer})",
            purpose=boot_purpose(node).value,
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


def boot_files(root: Path) -> BootFiles:
    return BootFiles(str(root), defaultType="application/octet-stream")
