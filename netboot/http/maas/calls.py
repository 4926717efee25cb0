"""What a MAAS API operation sees: the decoded request (``Call``) and the appliance
(``Context``), plus the two outcomes that are not lifecycle errors (404, 409)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from netboot.http.maas.forms import Form
from netboot.http.maas.render import SiteFacts, machine_json
from netboot.nodes.actions import NodeActions
from netboot.store.models import Node
from netboot.store.nodes_ext import ApiKey


class NotFound(LookupError):
    pass


class Conflict(RuntimeError):
    pass


@dataclass
class Call:
    """One API request as the operations see it."""

    form: Form
    key: ApiKey | None
    params: dict[str, str]
    base_url: str  # http://host:port, from the request, for describe/
    ctx: Context

    @property
    def actor(self) -> str:
        return self.key.username if self.key else "anonymous"


@dataclass
class Context:
    actions: NodeActions
    facts: SiteFacts
    ips: Callable[[], dict[str, str]]  # MAC -> current address (leases)

    @property
    def store(self) -> Any:
        return self.actions.store

    def machine(self, node: Node, ips: dict[str, str] | None = None) -> dict:
        return machine_json(node, self.facts, self.ips() if ips is None else ips)
