"""Put a QEMU lab node straight into a lifecycle state through the store.

For e2e tests whose subject starts after enlistment and commissioning (test_deploy.py
and test_commission.py drive those for real): the node is enlisted with the inventory
its NodeSpec gives QEMU, then walked through the named states.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable

from netboot.lab.qemu import NodeSpec
from netboot.nodes.inventory import parse_enlist_body
from netboot.nodes.lifecycle import NodeStatus
from netboot.store.sqlite import SQLiteStore


def enlist_as(
    store: SQLiteStore,
    spec: NodeSpec,
    statuses: Iterable[NodeStatus],
    comment: str = "set up by the test",
    fields: dict[str, str] | None = None,
) -> str:
    """Enlist `spec` as its enlistment image would, walk it through `statuses`; its id."""
    report = parse_enlist_body(
        json.dumps(
            {
                "boot_mac": spec.mac,
                "interfaces": [{"name": "eth0", "mac": spec.mac}],
                "dmi": {"product_uuid": spec.uuid},
                "cpu": {"count": spec.cpus, "model": "qemu"},
                "memory": {"total_mib": spec.memory_mib},
                "disks": [{"name": "vda", "size_bytes": spec.disk_gib << 30}],
            }
        ).encode()
    )
    enlisted, _ = store.enlist(report, time.time(), "test")
    for status in statuses:
        store.transition(enlisted.system_id, status, time.time(), "test", comment, fields=fields)
    return enlisted.system_id
