"""Render the per-node iPXE script from the node's state (jinja2, StrictUndefined)."""

from __future__ import annotations

from enum import Enum

from jinja2 import Environment, PackageLoader, StrictUndefined

from netboot.nodes.lifecycle import NodeStatus
from netboot.store.models import Node


class BootPurpose(Enum):
    ENLIST = "enlist"
    LOCAL = "local"


def boot_purpose(node: Node | None) -> BootPurpose:
    """What a machine should boot now: the narrow interface between inventory and PXE."""
    if node is None:
        return BootPurpose.ENLIST
    if node.status is NodeStatus.DEPLOYED:
        return BootPurpose.LOCAL
    # NEW and everything not built yet re-enlists: refreshing inventory is harmless.
    return BootPurpose.ENLIST


class ScriptRenderer:
    def __init__(self) -> None:
        self._env = Environment(
            loader=PackageLoader("netboot", "templates"),
            undefined=StrictUndefined,
            autoescape=False,
            keep_trailing_newline=True,
        )

    def ipxe(self, node: Node | None, mac: str, http_base: str) -> str:
        purpose = boot_purpose(node)
        template = self._env.get_template(f"ipxe/{purpose.value}.ipxe.j2")
        return template.render(
            mac=mac,
            http_base=http_base,
            hostname=node.hostname if node else None,
        )
