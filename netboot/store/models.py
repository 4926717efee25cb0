"""Plain records the store returns. Frozen: callers never mutate store state by accident."""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address

from netboot.nodes.lifecycle import NodeStatus


@dataclass(frozen=True, slots=True)
class Node:
    system_id: str
    hostname: str
    status: NodeStatus
    boot_mac: str
    macs: tuple[str, ...]
    uuid: str | None
    vendor: str
    product: str
    serial: str
    cpu_count: int
    cpu_model: str
    memory_mib: int
    disks: tuple[dict, ...]
    token: str
    created: float
    updated: float
    # Lifecycle fields (migration 2). Secrets (power parameters, user data) are not here.
    owner: str | None = None
    owner_data: dict[str, str] = field(default_factory=dict)
    agent_name: str = ""
    zone: str = "default"
    tags: tuple[str, ...] = ()
    architecture: str = "amd64/generic"
    power_type: str = "manual"
    power_state: str = "unknown"
    osystem: str = ""
    distro_series: str = ""
    status_message: str = ""
    status_deadline: float | None = None
    hardware: dict = field(default_factory=dict)  # commissioning inventory

    @property
    def storage_bytes(self) -> int:
        return sum(int(d.get("size_bytes", 0)) for d in self.disks)


@dataclass(frozen=True, slots=True)
class Event:
    system_id: str
    time: float
    actor: str
    kind: str
    from_status: NodeStatus | None
    to_status: NodeStatus | None
    message: str


@dataclass(frozen=True, slots=True)
class Lease:
    mac: str
    ip: IPv4Address
    expires: float
    hostname: str
