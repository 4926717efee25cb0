"""Node -> MAAS 2.0 machine JSON (pure).

Field names, types and nesting follow MAAS's ``DISPLAYED_MACHINE_FIELDS`` closely enough
for python-libmaas 0.6.8 (``viscera/machines.py``) and Juju's gomaasapi strict
``machine_2_0`` schema (every key it requires is present, with the type it checks).
Secrets (power parameters, user data, the node token) are never rendered.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from netboot.nodes.lifecycle import NodeStatus
from netboot.store.models import Node

API = "/MAAS/api/2.0"
DEFAULT_ZONE_DESCRIPTION = "Default zone"


@dataclass(frozen=True, slots=True)
class SiteFacts:
    """What rendering needs from outside the node: the DNS domain of nodes."""

    domain: str = "maas"


def _id(*parts: str) -> int:
    # Stable small positive ids for objects netboot does not store as rows.
    return zlib.crc32("/".join(parts).encode()) & 0x7FFFFFFF


def zone_json(name: str) -> dict:
    return {
        "id": _id("zone", name),
        "name": name,
        "description": DEFAULT_ZONE_DESCRIPTION if name == "default" else "",
        "resource_uri": f"{API}/zones/{name}/",
    }


def pool_json() -> dict:
    return {
        "id": 0,
        "name": "default",
        "description": "Default pool",
        "resource_uri": f"{API}/resourcepool/0/",
    }


def domain_json(facts: SiteFacts) -> dict:
    return {
        "id": 0,
        "name": facts.domain,
        "authoritative": True,
        "is_default": True,
        "ttl": None,
        "resource_record_count": 0,
        "resource_uri": f"{API}/domains/0/",
    }


VLAN = {
    "id": 5001,
    "resource_uri": f"{API}/vlans/5001/",
    "name": "untagged",
    "fabric": "fabric-0",
    "fabric_id": 0,
    "vid": 0,
    "mtu": 1500,
    "dhcp_on": True,
    "external_dhcp": None,
    "relay_vlan": None,
    "primary_rack": None,
    "secondary_rack": None,
    "space": "undefined",
}


def _interfaces(node: Node, ips: dict[str, str]) -> list[dict]:
    names = {}
    for i, iface in enumerate(node.hardware.get("nics") or []):
        if isinstance(iface, dict) and iface.get("mac"):
            names[iface["mac"]] = iface.get("name") or f"eth{i}"
    out = []
    for i, mac in enumerate(sorted(node.macs, key=lambda m: (m != node.boot_mac, m))):
        iface_id = _id("iface", node.system_id, mac)
        links = []
        if mac in ips:
            links.append(
                {"id": _id("link", node.system_id, mac), "mode": "dhcp", "ip_address": ips[mac]}
            )
        out.append(
            {
                "id": iface_id,
                "resource_uri": f"{API}/nodes/{node.system_id}/interfaces/{iface_id}/",
                "system_id": node.system_id,
                "name": names.get(mac, f"eth{i}"),
                "type": "physical",
                "enabled": True,
                "tags": [],
                "vlan": VLAN,
                "links": links,
                "discovered": [],
                "mac_address": mac,
                "effective_mtu": 1500,
                "params": "",
                "parents": [],
                "children": [],
            }
        )
    return out


def _block_devices(node: Node) -> list[dict]:
    out = []
    for disk in node.disks:
        name = str(disk.get("name", ""))
        dev_id = _id("disk", node.system_id, name)
        serial = str(disk.get("serial", ""))
        model = str(disk.get("model", ""))
        size = int(disk.get("size_bytes", 0))
        out.append(
            {
                "id": dev_id,
                "resource_uri": f"{API}/nodes/{node.system_id}/blockdevices/{dev_id}/",
                "system_id": node.system_id,
                "uuid": None,
                "name": name,
                "type": "physical",
                "model": model or None,
                "serial": serial or None,
                "id_path": f"/dev/disk/by-id/{model}_{serial}" if serial else None,
                "path": f"/dev/disk/by-dname/{name}",
                "used_for": "Unused",
                "tags": list(disk.get("tags", [])),
                "block_size": int(disk.get("block_size", 512)),
                "size": size,
                "used_size": 0,
                "available_size": size,
                "filesystem": None,
                "partition_table_type": None,
                "partitions": [],
                "storage_pool": None,
            }
        )
    return out


def _hardware_info(node: Node) -> dict[str, str]:
    dmi = node.hardware.get("dmi") if isinstance(node.hardware.get("dmi"), dict) else {}
    info = {
        "system_vendor": node.vendor or "Unknown",
        "system_product": node.product or "Unknown",
        "system_serial": node.serial or "Unknown",
        "cpu_model": node.cpu_model or "Unknown",
        "mainboard_vendor": str(dmi.get("board_vendor") or "Unknown"),
        "mainboard_product": str(dmi.get("board_name") or "Unknown"),
        "chassis_type": str(dmi.get("chassis_type") or "Unknown"),
    }
    return info


def machine_json(node: Node, facts: SiteFacts, ips: dict[str, str] | None = None) -> dict:
    """The machine object; ``ips`` maps a MAC to its current address (from leases)."""
    ips = ips or {}
    interfaces = _interfaces(node, ips)
    blocks = _block_devices(node)
    boot_iface = next((i for i in interfaces if i["mac_address"] == node.boot_mac), None)
    return {
        "resource_uri": f"{API}/machines/{node.system_id}/",
        "system_id": node.system_id,
        "hostname": node.hostname,
        "fqdn": f"{node.hostname}.{facts.domain}",
        "domain": domain_json(facts),
        "description": "",
        "node_type": 0,
        "node_type_name": "Machine",
        "status": int(node.status),
        "status_name": node.status.label,
        "status_message": node.status_message or None,
        "status_action": "",
        "owner": node.owner,
        "owner_data": {str(k): str(v) for k, v in node.owner_data.items()},
        "tag_names": list(node.tags),
        "zone": zone_json(node.zone),
        "pool": pool_json(),
        "architecture": node.architecture or None,
        "osystem": node.osystem,
        "distro_series": node.distro_series,
        "hwe_kernel": None,
        "min_hwe_kernel": "",
        "cpu_count": node.cpu_count,
        "cpu_speed": 0,
        "memory": node.memory_mib,
        "storage": round(node.storage_bytes / 1e6, 1),
        "swap_size": None,
        "hardware_info": _hardware_info(node),
        "hardware_uuid": node.uuid,
        "power_type": node.power_type,
        "power_state": node.power_state,
        "netboot": node.status is not NodeStatus.DEPLOYED,
        "locked": False,
        "disable_ipv4": False,
        "address_ttl": None,
        "ip_addresses": [ips[m] for m in node.macs if m in ips],
        "boot_interface": boot_iface,
        "interface_set": interfaces,
        "boot_disk": blocks[0] if blocks else None,
        "physicalblockdevice_set": blocks,
        "blockdevice_set": blocks,
        "virtualblockdevice_set": [],
        "special_filesystems": [],
        "pod": None,
        "commissioning_status": 0,
        "commissioning_status_name": "Pending",
    }
