"""``netboot nodes``: the node table, for people (rich) or scripts (JSON)."""

from __future__ import annotations

import json

from rich.console import Console
from rich.table import Table

from netboot.config import Config
from netboot.http.nodes import node_json
from netboot.store.models import Node
from netboot.store.sqlite import open_store


def _disks(node: Node) -> str:
    return ", ".join(f"{d['name']} {d['size_bytes'] / 2**30:.1f}G" for d in node.disks) or "-"


def print_nodes(cfg: Config, as_json: bool = False) -> int:
    store = open_store(cfg.database_path)
    try:
        nodes = store.nodes()
    finally:
        store.close()
    if as_json:
        print(json.dumps([node_json(n) for n in nodes], indent=2, sort_keys=True))
        return 0
    table = Table(title=f"{len(nodes)} node(s)")
    for column in (
        "hostname",
        "system_id",
        "MAC",
        "UUID",
        "vendor / product",
        "CPUs",
        "RAM",
        "disks",
        "status",
    ):
        table.add_column(column)
    for n in nodes:
        table.add_row(
            n.hostname,
            n.system_id,
            n.boot_mac,
            n.uuid or "-",
            f"{n.vendor} / {n.product}".strip(" /") or "-",
            str(n.cpu_count),
            f"{n.memory_mib} MiB",
            _disks(n),
            n.status.label,
        )
    Console(width=160).print(table)
    return 0
