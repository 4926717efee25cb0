"""What the UI pages show, computed from store records: status colours, the node filter,
inventory and event rows, lease rows. Pure (no I/O); ``pages.py`` feeds it the store.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Any

from netboot.nodes.lifecycle import TRANSITIONS, NodeStatus
from netboot.store.models import Event, Node

S = NodeStatus
# Colour families like MAAS's machine list: ready green, owned blue, failed red,
# in-progress amber, new neutral.
TONES: dict[NodeStatus, str] = {
    S.NEW: "new",
    S.COMMISSIONING: "busy",
    S.FAILED_COMMISSIONING: "failed",
    S.READY: "ready",
    S.ALLOCATED: "owned",
    S.DEPLOYING: "owned",
    S.DEPLOYED: "owned",
    S.RELEASING: "busy",
    S.FAILED_DEPLOYMENT: "failed",
    S.FAILED_RELEASING: "failed",
    S.DISK_ERASING: "busy",
    S.FAILED_DISK_ERASING: "failed",
    S.BROKEN: "failed",
    S.RESCUE_MODE: "busy",
    S.ENTERING_RESCUE_MODE: "busy",
    S.FAILED_ENTERING_RESCUE_MODE: "failed",
    S.EXITING_RESCUE_MODE: "busy",
    S.FAILED_EXITING_RESCUE_MODE: "failed",
}


def status_classes(status: NodeStatus) -> str:
    """CSS classes for a status badge: the colour family and the exact status."""
    return f"status tone-{TONES[status]} status-{status.name.lower().replace('_', '-')}"


def parse_status_filter(value: str) -> NodeStatus | None:
    """``ready`` / ``READY`` / ``failed-commissioning`` / ``4`` -> NodeStatus; '' -> None.
    Raises ValueError naming the value for anything else."""
    text = value.strip()
    if not text:
        return None
    if text.isdigit():
        try:
            return NodeStatus(int(text))
        except ValueError:
            pass
    else:
        key = text.upper().replace("-", "_").replace(" ", "_")
        if key in NodeStatus.__members__:
            return NodeStatus[key]
    raise ValueError(f"unknown status {value!r}")


def _mac_key(text: str) -> str:
    return "".join(c for c in text.lower() if c in "0123456789abcdef")


def node_matches(node: Node, query: str) -> bool:
    """Case-insensitive substring match on hostname, system_id, UUID, vendor/product,
    serial, or any MAC (written with ':', '-', '.' or nothing between the digits)."""
    q = query.strip().lower()
    if not q:
        return True
    texts = (node.hostname, node.system_id, node.uuid or "", node.vendor, node.product, node.serial)
    if any(q in t.lower() for t in texts):
        return True
    mac_q = _mac_key(q)
    looks_like_mac = len(mac_q) >= 4 and all(c in "0123456789abcdef:-." for c in q)
    return looks_like_mac and any(mac_q in _mac_key(m) for m in node.macs)


def filter_nodes(
    nodes: Iterable[Node], query: str = "", status: NodeStatus | None = None
) -> list[Node]:
    return [n for n in nodes if (status is None or n.status == status) and node_matches(n, query)]


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def when(t: float | None) -> str:
    """UTC timestamp, seconds resolution (the appliance's logs use UTC too)."""
    if t is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t))


@dataclass(frozen=True, slots=True)
class EventRow:
    time: str
    actor: str
    kind: str
    change: str
    message: str


def event_rows(events: Sequence[Event]) -> list[EventRow]:
    """Newest first, with the status change spelled out."""
    rows = []
    for e in reversed(events):
        if e.from_status is not None and e.to_status is not None:
            change = f"{e.from_status.label} \u2192 {e.to_status.label}"
        elif e.to_status is not None:
            change = f"\u2192 {e.to_status.label}"
        else:
            change = ""
        rows.append(EventRow(when(e.time), e.actor, e.kind, change, e.message))
    return rows


@dataclass(frozen=True, slots=True)
class LeaseRow:
    mac: str
    ip: str
    hostname: str
    state: str
    expires: str
    holding: bool
    subnet: str
    system_id: str | None


def lease_rows(leases: Sequence[Any], nodes: Iterable[Node], now: float) -> list[LeaseRow]:
    """DHCP lease table rows (``netboot.dhcp.leases.Binding``): addresses held now first
    (by address), then the remembered ones; MACs linked to their node."""
    owner = {mac: n.system_id for n in nodes for mac in n.macs}
    rows = [
        LeaseRow(
            mac=b.mac,
            ip=str(IPv4Address(b.ip)),
            hostname=b.hostname,
            state=str(b.state.value if hasattr(b.state, "value") else b.state),
            expires=when(b.expires),
            holding=b.holds(now),
            subnet=b.subnet,
            system_id=owner.get(b.mac),
        )
        for b in leases
    ]
    rows.sort(key=lambda r: (not r.holding, int(IPv4Address(r.ip))))
    return rows


def disk_rows(node: Node) -> list[dict]:
    """Disks from enlistment, enriched with commissioning's per-disk facts when present."""
    rows = []
    for d in node.disks:
        rows.append(
            {
                "name": str(d.get("name", "")),
                "size": human_bytes(int(d.get("size_bytes", 0) or 0)),
                "model": str(d.get("model", "")),
                "serial": str(d.get("serial", "")),
            }
        )
    return rows


@dataclass(frozen=True, slots=True)
class Action:
    name: str  # the form's ``action`` value and NodeActions' method
    label: str
    css: str = ""


_DEPLOYABLE = frozenset({S.READY, S.ALLOCATED, S.FAILED_DEPLOYMENT})
_RELEASABLE = frozenset(
    {
        S.ALLOCATED,
        S.DEPLOYING,
        S.DEPLOYED,
        S.FAILED_DEPLOYMENT,
        S.FAILED_RELEASING,
        S.FAILED_DISK_ERASING,
    }
)


def available_actions(status: NodeStatus) -> list[Action]:
    """The buttons a node page offers in ``status`` (NodeActions re-checks every one)."""
    actions = []
    if S.COMMISSIONING in TRANSITIONS[status]:
        actions.append(Action("commission", "Commission", "primary"))
    if status in _DEPLOYABLE:
        actions.append(Action("deploy", "Deploy", "primary"))
    if status in _RELEASABLE:
        actions.append(Action("release", "Release"))
    if S.ENTERING_RESCUE_MODE in TRANSITIONS[status]:
        actions.append(Action("rescue_mode", "Rescue mode"))
    if S.EXITING_RESCUE_MODE in TRANSITIONS[status]:
        actions.append(Action("exit_rescue_mode", "Exit rescue mode", "primary"))
    actions.append(Action("power_on", "Power on"))
    actions.append(Action("power_off", "Power off"))
    if status is S.BROKEN:
        actions.append(Action("mark_fixed", "Mark fixed"))
    elif S.BROKEN in TRANSITIONS[status]:
        actions.append(Action("mark_broken", "Mark broken", "danger"))
    return actions


ACTION_NAMES = frozenset(
    {
        "commission",
        "deploy",
        "release",
        "power_on",
        "power_off",
        "mark_broken",
        "mark_fixed",
        "rescue_mode",
        "exit_rescue_mode",
    }
)


def image_rows(images: Sequence[Any]) -> list[dict]:
    """Image cache versions (``netboot.images.cache.ImageVersion``) for the images page:
    current ones first, then by reference."""
    rows = [
        {
            "ref": image.manifest.ref,
            "kind": image.manifest.kind,
            "arch": image.manifest.arch,
            "current": image.current,
            "size": image.manifest.total_size,
            "files": [(f.name, f.size, f.sha256) for f in image.manifest.files],
        }
        for image in images
    ]
    rows.sort(key=lambda r: (not r["current"], r["ref"]))
    return rows


def deploy_releases(images: Sequence[Any]) -> list[str]:
    """What Deploy can offer: the names (and release/series) of current deploy images."""
    names: set[str] = set()
    for image in images:
        m = image.manifest
        if image.current and m.kind == "deploy":
            names.add(m.name)
            names.update(str(m.extra[k]) for k in ("release", "series") if m.extra.get(k))
    return sorted(names)


PAGE_SIZE = 100  # node rows per page: rendering 1,000 rows would hold the reactor ~0.2 s


@dataclass(frozen=True, slots=True)
class Page:
    items: list[Any]
    number: int  # 1-based
    pages: int
    total: int

    @property
    def first_index(self) -> int:
        return (self.number - 1) * PAGE_SIZE + 1 if self.total else 0


def paginate(items: Sequence[Any], requested: str, size: int = PAGE_SIZE) -> Page:
    """The ``requested`` page (1-based; anything unparseable or out of range is clamped)."""
    pages = max(1, -(-len(items) // size))
    try:
        number = int(requested)
    except ValueError:
        number = 1
    number = min(max(number, 1), pages)
    start = (number - 1) * size
    return Page(list(items[start : start + size]), number, pages, len(items))
