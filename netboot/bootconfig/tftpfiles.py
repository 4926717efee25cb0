"""Dynamic TFTP files: per-machine loader configs rendered from the store, and probes.

This is the TFTP server's `open_file(name, peer)` provider (tftp/server.py). `name` is
already normalised (no leading "/", no "..", "/" separators). It answers:

* `pxelinux.cfg/01-<mac>` -> that machine's pxelinux config (ScriptRenderer.pxelinux);
  `pxelinux.cfg/default` -> enlistment. pxelinux asks `pxelinux.cfg/<uuid>` first and
  hex-IP names after the MAC; those are refused at once (error 1), never looked up.
* `grub/grub.cfg` -> the dispatcher that loads `grub/grub.cfg-${net_default_mac}`
  (Debian's signed grub asks only `/grub/grub.cfg`); `grub/grub.cfg-<mac>` -> that
  machine's grub config; `grub/grub.cfg-default` -> enlistment.
* `images/boot/<name>/<version>/<file>` -> a boot image's file from the image cache
  (checked on use), for loaders without HTTP: grub boots the installer this way.
* Optional probes answered without touching the disk, so loaders never wait on them:
  grub's module lists `grub/<platform>/*.lst` get an empty file (grub then loads
  nothing and prints no error); iPXE's `autoexec.ipxe` and shim's `revocations_*.efi`
  / `shim_certificate_*.efi` get "file not found", which they treat as "none".
Anything else returns None: the server serves it from the boot root.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from typing import Any, BinaryIO

from twisted.logger import Logger

from netboot.bootconfig.scripts import NO_FACTS, NodeBoot, ScriptRenderer, boot_purpose
from netboot.images.cache import ImageCache
from netboot.images.verify import ImageRejected
from netboot.store.models import Node
from netboot.tftp.paths import FileNotFound

__all__ = ["DynamicBootFiles"]

log = Logger(namespace="netboot.tftp")

_MAC = r"[0-9a-f]{2}(?:[:-][0-9a-f]{2}){5}"
_PXELINUX_MAC = re.compile(rf"pxelinux\.cfg/01-({_MAC})", re.IGNORECASE)
_GRUB_MAC = re.compile(rf"grub/grub\.cfg-({_MAC})", re.IGNORECASE)
_GRUB_LST = re.compile(r"grub/[a-z0-9_]+-[a-z0-9]+/[a-z]+\.lst")
_IMAGE_FILE = re.compile(r"images/boot/([A-Za-z0-9._-]+)/([A-Za-z0-9._-]+)/([A-Za-z0-9._-]+)")
_NOT_FOUND_PROBES = re.compile(
    r"(?:.*/)?(?:autoexec\.ipxe|revocations_[a-z]+\.efi|shim_certificate_\d+\.efi)",
    re.IGNORECASE,
)

NodeLookup = Callable[[str], Node | None]
BootFacts = Callable[[Node | None], NodeBoot]


class DynamicBootFiles:
    """`open_file` provider for TFTPServerProtocol, backed by a node lookup by MAC."""

    def __init__(
        self,
        node_by_mac: NodeLookup,
        renderer: ScriptRenderer,
        http_base: str,
        boot_facts: BootFacts | None = None,
        images: ImageCache | None = None,
    ) -> None:
        self.node_by_mac = node_by_mac
        self.renderer = renderer
        self.http_base = http_base
        # netboot.images.nodeboot.NodeBootFacts: installed? which installer?
        self.boot_facts = boot_facts or (lambda _node: NO_FACTS)
        self.images = images

    def __call__(self, name: str, peer: tuple[Any, ...]) -> BinaryIO | None:
        if match := _PXELINUX_MAC.fullmatch(name):
            mac = _mac(match.group(1))
            return self._config("pxelinux", mac, self.renderer.pxelinux, peer)
        if name == "pxelinux.cfg/default":
            return _file(self.renderer.pxelinux(None, None, self.http_base))
        if name.startswith("pxelinux.cfg/"):
            raise FileNotFound(name, "pxelinux probe (only 01-<mac> and default exist)")
        if name == "grub/grub.cfg":
            return _file(self.renderer.grub_dispatch())
        if match := _GRUB_MAC.fullmatch(name):
            mac = _mac(match.group(1))
            return self._config("grub", mac, self.renderer.grub, peer)
        if name == "grub/grub.cfg-default":
            return _file(self.renderer.grub(None, None, self.http_base))
        if _GRUB_LST.fullmatch(name):
            return _file("")  # optional module list: empty means "nothing to preload"
        if _NOT_FOUND_PROBES.fullmatch(name):
            raise FileNotFound(name, "optional probe")
        if self.images is not None and (match := _IMAGE_FILE.fullmatch(name)):
            return self._image_file(name, *match.groups())
        return None

    def _image_file(self, name: str, image: str, version: str, filename: str) -> BinaryIO:
        assert self.images is not None
        found = self.images.get("boot", image, version)
        if found is None:
            raise FileNotFound(name, "no such boot image")
        try:
            path = self.images.checked_path(found, filename)
        except ImageRejected as exc:
            log.warn("refusing {file}: {error}", file=name, error=str(exc))
            raise FileNotFound(name, str(exc)) from None
        return open(path, "rb")  # noqa: SIM115 (the TFTP session closes it)

    def _config(
        self,
        loader: str,
        mac: str,
        render: Callable[[Node | None, str | None, str, NodeBoot], str],
        peer: tuple[Any, ...],
    ) -> BinaryIO:
        node = self.node_by_mac(mac)
        facts = self.boot_facts(node)
        log.info(
            "{loader} config {purpose} for {mac} ({peer})",
            loader=loader,
            purpose=boot_purpose(node, facts.installed).value,
            mac=mac,
            peer=peer[0],
        )
        return _file(render(node, mac, self.http_base, facts))


def _mac(text: str) -> str:
    return text.lower().replace("-", ":")


def _file(text: str) -> BinaryIO:
    return io.BytesIO(text.encode())
