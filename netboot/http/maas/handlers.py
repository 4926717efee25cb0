"""The MAAS 2.0 operations netboot implements, as one table (handler, method, op).

Each operation is a function ``(call) -> result`` where the result is JSON-able, a
plain string, or a Deferred of either (``machines.py``, ``others.py``). Input errors
raise BadForm / InvalidAction / ConstraintError naming the field (400); lifecycle errors
are mapped to HTTP codes in exactly one place (``api.py``). The ``describe/`` document is
built from this same table, so what python-libmaas binds is what the server dispatches.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from netboot.http.maas import machines, others
from netboot.http.maas.calls import Call, Conflict, Context, NotFound
from netboot.http.maas.others import VERSION
from netboot.http.maas.render import API


@dataclass(frozen=True)
class Operation:
    method: str
    op: str | None
    action: str  # the action name python-libmaas binds (describe/)
    func: Callable[[Call], Any]
    anon: bool = False  # also allowed without credentials
    doc: str = ""


@dataclass(frozen=True)
class HandlerInfo:
    name: str
    path: str  # "/MAAS/api/2.0/machines/{system_id}/"
    params: tuple[str, ...] = ()
    anon_name: str | None = None  # anonymous twin (e.g. "AnonMachinesHandler")
    ops: list[Operation] = field(default_factory=list)


# -- the table ----------------------------------------------------------------------------

HANDLERS: list[HandlerInfo] = [
    HandlerInfo(
        "VersionHandler",
        f"{API}/version/",
        ops=[Operation("GET", None, "read", others.version, True)],
    ),
    HandlerInfo(
        "UsersHandler", f"{API}/users/", ops=[Operation("GET", "whoami", "whoami", others.whoami)]
    ),
    HandlerInfo(
        "MachinesHandler",
        f"{API}/machines/",
        anon_name="AnonMachinesHandler",
        ops=[
            Operation("GET", None, "read", machines.machines_read),
            Operation("POST", None, "create", machines.machines_create, True),
            Operation("POST", "allocate", "allocate", machines.machines_allocate),
            Operation("POST", "release", "release", machines.machines_release),
        ],
    ),
    HandlerInfo(
        "MachineHandler",
        f"{API}/machines/{{system_id}}/",
        ("system_id",),
        ops=[
            Operation("GET", None, "read", machines.machine_read),
            Operation("PUT", None, "update", machines.machine_update),
            Operation("POST", "deploy", "deploy", machines.machine_deploy),
            Operation("POST", "release", "release", machines.machine_release),
            Operation("POST", "commission", "commission", machines.machine_commission),
            Operation("POST", "set_owner_data", "set_owner_data", machines.machine_set_owner_data),
            Operation("POST", "power_on", "power_on", machines.machine_power_on),
            Operation("POST", "power_off", "power_off", machines.machine_power_off),
            Operation(
                "GET", "query_power_state", "query_power_state", machines.machine_query_power_state
            ),
            Operation("POST", "mark_broken", "mark_broken", machines.machine_mark_broken),
            Operation("POST", "mark_fixed", "mark_fixed", machines.machine_mark_fixed),
            Operation("POST", "rescue_mode", "rescue_mode", machines.machine_rescue_mode),
            Operation(
                "POST", "exit_rescue_mode", "exit_rescue_mode", machines.machine_exit_rescue_mode
            ),
        ],
    ),
    HandlerInfo(
        "ZonesHandler", f"{API}/zones/", ops=[Operation("GET", None, "read", others.zones_read)]
    ),
    HandlerInfo(
        "ZoneHandler",
        f"{API}/zones/{{name}}/",
        ("name",),
        ops=[Operation("GET", None, "read", others.zone_read)],
    ),
    HandlerInfo(
        "ResourcePoolsHandler",
        f"{API}/resourcepools/",
        ops=[Operation("GET", None, "read", others.pools_read)],
    ),
    HandlerInfo(
        "DomainsHandler",
        f"{API}/domains/",
        ops=[Operation("GET", None, "read", others.domains_read)],
    ),
    HandlerInfo(
        "BootResourcesHandler",
        f"{API}/boot-resources/",
        ops=[Operation("GET", None, "read", others.boot_resources_read)],
    ),
    HandlerInfo(
        "SpacesHandler", f"{API}/spaces/", ops=[Operation("GET", None, "read", others.empty_list)]
    ),
    HandlerInfo(
        "DevicesHandler", f"{API}/devices/", ops=[Operation("GET", None, "read", others.empty_list)]
    ),
    HandlerInfo(
        "TagsHandler", f"{API}/tags/", ops=[Operation("GET", None, "read", others.tags_read)]
    ),
    HandlerInfo(
        "TagHandler",
        f"{API}/tags/{{name}}/",
        ("name",),
        ops=[Operation("POST", "update_nodes", "update_nodes", others.tag_update_nodes)],
    ),
]

# Collection path segment -> (collection handler, item handler)
ROUTES: dict[str, tuple[HandlerInfo | None, HandlerInfo | None]] = {}
for _h in HANDLERS:
    _segment = _h.path[len(API) + 1 :].split("/", 1)[0]
    _coll, _item = ROUTES.get(_segment, (None, None))
    ROUTES[_segment] = (_coll, _h) if _h.params else (_h, _item)


def find_operation(handler: HandlerInfo, method: str, op: str | None) -> Operation | None:
    for operation in handler.ops:
        if operation.method == method and operation.op == op:
            return operation
    return None


def describe(base_url: str) -> dict:
    """The ``describe/`` document (``maasserver/api/doc.py`` shape)."""

    def handler_doc(h: HandlerInfo, name: str, ops: list[Operation]) -> dict:
        return {
            "name": name,
            "doc": (ops[0].func.__doc__ or name).strip() if ops else name,
            "path": h.path,
            "uri": base_url + h.path,
            "params": list(h.params),
            "actions": [
                {
                    "name": o.action,
                    "method": o.method,
                    "op": o.op,
                    "restful": o.op is None,
                    "doc": (o.func.__doc__ or o.action).strip(),
                }
                for o in ops
            ],
        }

    resources = []
    handlers = []
    for h in HANDLERS:
        auth = handler_doc(h, h.name, h.ops)
        anon_ops = [o for o in h.ops if o.anon]
        anon = None
        if h.anon_name and anon_ops:
            anon = handler_doc(h, h.anon_name, anon_ops)
        elif anon_ops and len(anon_ops) == len(h.ops):
            anon = handler_doc(h, h.name, anon_ops)
        resources.append({"name": h.name, "anon": anon, "auth": auth})
        handlers.append(auth)
    return {
        "doc": "MAAS API (netboot subset)",
        "hash": VERSION,
        "resources": resources,
        "handlers": handlers,
    }


__all__ = [
    "HANDLERS",
    "ROUTES",
    "Call",
    "Conflict",
    "Context",
    "NotFound",
    "Operation",
    "describe",
    "find_operation",
]
