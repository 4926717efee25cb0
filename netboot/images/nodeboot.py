"""Boot facts of a node for the loader configs: is its install done, which installer.

``NodeBootFacts(node) -> NodeBoot`` reads the store (the current deploy episode's
``installed`` mark) and the image cache (the installer a DEPLOYING, DISK_ERASING or
rescue node boots, checked on use). The TFTP provider (grub.cfg-<mac>, pxelinux.cfg/01-<mac>) and
the iPXE scripts hand it to ScriptRenderer, so every loader answers the same way.
"""

from __future__ import annotations

from typing import Any

from twisted.logger import Logger

from netboot.bootconfig.scripts import NO_FACTS, NodeBoot
from netboot.images.cache import ImageCache
from netboot.images.deploycfg import DeployConfigError
from netboot.images.installerboot import installer_boot
from netboot.images.verify import ImageRejected
from netboot.nodes.lifecycle import NodeStatus
from netboot.store.models import Node

log = Logger(namespace="netboot.boot")

__all__ = ["NodeBootFacts", "installer_purpose"]

# Statuses whose machine boots the installer, and its netboot.purpose.
_INSTALLER_PURPOSE = {
    NodeStatus.DEPLOYING: "deploy",
    NodeStatus.DISK_ERASING: "erase",
    NodeStatus.ENTERING_RESCUE_MODE: "rescue",
    NodeStatus.RESCUE_MODE: "rescue",
}


def installer_purpose(node: Node | None) -> str | None:
    """``deploy``, ``erase`` or ``rescue`` for a node that boots the installer now."""
    return None if node is None else _INSTALLER_PURPOSE.get(node.status)


class NodeBootFacts:
    def __init__(self, store: Any, cache: ImageCache, http_base: str, domain: str = "") -> None:
        self.store = store
        self.cache = cache
        self.http_base = http_base
        self.domain = domain

    def __call__(self, node: Node | None) -> NodeBoot:
        purpose = installer_purpose(node)
        if node is None or purpose is None:
            return NO_FACTS
        if node.status is NodeStatus.DEPLOYING:
            dep = self.store.current_deployment(node.system_id)
            if dep is not None and dep.installed is not None:
                return NodeBoot(installed=True)
        try:
            boot = installer_boot(node, self.cache, self.http_base, purpose, self.domain)
        except (DeployConfigError, ImageRejected) as exc:
            log.warn(
                "{host} ({system_id}) cannot boot the installer: {error}",
                host=node.hostname,
                system_id=node.system_id,
                error=str(exc),
            )
            return NodeBoot(error=str(exc))
        return NodeBoot(installer=boot)
