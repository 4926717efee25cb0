"""``GET /api/nodes``: the node table as JSON (read-only; the MAAS API comes later)."""

from __future__ import annotations

from twisted.web import resource
from twisted.web.server import Request

from netboot.http.enlist import json_response
from netboot.store.models import Node
from netboot.store.sqlite import SQLiteStore


def node_json(node: Node) -> dict:
    return {
        "system_id": node.system_id,
        "hostname": node.hostname,
        "status": int(node.status),
        "status_name": node.status.label,
        "boot_mac": node.boot_mac,
        "macs": list(node.macs),
        "uuid": node.uuid,
        "vendor": node.vendor,
        "product": node.product,
        "serial": node.serial,
        "cpu_count": node.cpu_count,
        "cpu_model": node.cpu_model,
        "memory_mib": node.memory_mib,
        "disks": list(node.disks),
    }


class NodesResource(resource.Resource):
    isLeaf = True

    def __init__(self, store: SQLiteStore) -> None:
        super().__init__()
        self.store = store

    def render_GET(self, request: Request) -> bytes:
        return json_response(request, 200, [node_json(n) for n in self.store.nodes()])
