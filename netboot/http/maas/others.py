"""MAAS API operations outside machines: version, whoami, and the small read-only
lists Juju and python-libmaas ask for (zones, resource pools, domains, boot resources,
spaces, devices, tags), plus tagging nodes (which ``allocate`` matches on)."""

from __future__ import annotations

import re

from netboot.http.maas.calls import Call, NotFound
from netboot.http.maas.forms import BadForm
from netboot.http.maas.render import API, domain_json, pool_json, zone_json

VERSION = "2.9.2"
CAPABILITIES = [
    "networks-management",
    "static-ipaddresses",
    "ipv6-deployment-ubuntu",
    "devices-management",
    "storage-deployment-ubuntu",
    "network-deployment-ubuntu",
]


# -- version, describe, users -------------------------------------------------------------


def version(call: Call) -> dict:
    return {"capabilities": CAPABILITIES, "version": VERSION, "subversion": "netboot"}


def whoami(call: Call) -> dict:
    assert call.key is not None
    name = call.key.username
    return {
        "username": name,
        "email": "",
        "is_superuser": True,
        "is_local": True,
        "resource_uri": f"{API}/users/{name}/",
    }


# -- zones, pools, domains, tags, misc ----------------------------------------------------


def zones_read(call: Call) -> list[dict]:
    names = {"default"} | {n.zone for n in call.ctx.store.nodes()}
    return [zone_json(n) for n in sorted(names)]


def zone_read(call: Call) -> dict:
    name = call.params["name"]
    if name != "default" and name not in {n.zone for n in call.ctx.store.nodes()}:
        raise NotFound(f"No zone named {name!r}.")
    return zone_json(name)


def pools_read(call: Call) -> list[dict]:
    return [pool_json()]


def domains_read(call: Call) -> list[dict]:
    return [domain_json(call.ctx.facts)]


def boot_resources_read(call: Call) -> list[dict]:
    return [
        {
            "id": 1,
            "type": "Synced",
            "name": "debian/bookworm",
            "architecture": "amd64/generic",
            "resource_uri": f"{API}/boot-resources/1/",
        }
    ]


def empty_list(call: Call) -> list:
    return []


def tags_read(call: Call) -> list[dict]:
    names = sorted({t for n in call.ctx.store.nodes() for t in n.tags})
    return [_tag_json(t) for t in names]


def _tag_json(name: str) -> dict:
    return {
        "name": name,
        "definition": "",
        "comment": "",
        "kernel_opts": "",
        "resource_uri": f"{API}/tags/{name}/",
    }


def tag_update_nodes(call: Call) -> dict:
    """``POST tags/{name}/?op=update_nodes add=<id>... remove=<id>...``."""
    name = call.params["name"]
    if not re.match(r"^[\w-]{1,256}$", name):
        raise BadForm("name", f"{name!r} is not a valid tag name")
    add, remove = call.form.texts("add"), call.form.texts("remove")
    nodes = {}
    for sid in add + remove:
        node = call.ctx.store.node(sid)
        if node is None:
            raise BadForm("add" if sid in add else "remove", f"unknown system_id {sid!r}")
        nodes[sid] = node
    added = removed = 0
    for sid, node in nodes.items():
        tags = list(node.tags)
        if sid in add and name not in tags:
            tags.append(name)
            added += 1
        if sid in remove and name in tags:
            tags.remove(name)
            removed += 1
        if tags != list(node.tags):
            call.ctx.store.update_node(
                sid, {"tags": tags}, call.ctx.actions.clock(), call.actor, "tags", f"tag {name}"
            )
    return {"added": added, "removed": removed}
