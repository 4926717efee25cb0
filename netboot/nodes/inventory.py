"""Validate the inventory a booted node POSTs (enlistment) into a typed report.

The body shape is documented in images/enlist/README.md. Anything off (wrong type,
unparseable MAC, absurd size) raises InvalidReport naming the field, and the HTTP layer
answers 400 without touching the store.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from typing import Any

MAX_BODY_BYTES = 1 << 20
_MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


class InvalidReport(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class Interface:
    name: str
    mac: str
    ipv4: str | None


@dataclass(frozen=True, slots=True)
class Disk:
    name: str
    size_bytes: int
    model: str
    serial: str


@dataclass(frozen=True, slots=True)
class EnlistReport:
    boot_mac: str
    interfaces: tuple[Interface, ...]
    uuid: str | None
    vendor: str
    product: str
    serial: str
    cpu_count: int
    cpu_model: str
    memory_mib: int
    disks: tuple[Disk, ...]
    raw: dict[str, Any]

    @property
    def macs(self) -> tuple[str, ...]:
        seen = [self.boot_mac] + [i.mac for i in self.interfaces]
        return tuple(dict.fromkeys(seen))


def normalise_mac(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise InvalidReport(field, "must be a MAC address string")
    mac = value.strip().lower().replace("-", ":")
    if not _MAC_RE.match(mac):
        raise InvalidReport(field, f"{value!r} is not a MAC address")
    return mac


def parse_enlist_body(body: bytes) -> EnlistReport:
    """Decode and validate a JSON enlistment body."""
    if len(body) > MAX_BODY_BYTES:
        raise InvalidReport("(body)", f"larger than {MAX_BODY_BYTES} bytes")
    try:
        raw = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidReport("(body)", f"not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise InvalidReport("(body)", "must be a JSON object")

    interfaces = tuple(_interface(v, i) for i, v in enumerate(_list(raw, "interfaces")))
    boot_mac_raw = raw.get("boot_mac")
    if boot_mac_raw is None:
        if not interfaces:
            raise InvalidReport("boot_mac", "required when no interfaces are given")
        boot_mac = interfaces[0].mac
    else:
        boot_mac = normalise_mac(boot_mac_raw, "boot_mac")

    dmi = _dict(raw, "dmi")
    cpu = _dict(raw, "cpu")
    memory = _dict(raw, "memory")
    return EnlistReport(
        boot_mac=boot_mac,
        interfaces=interfaces,
        uuid=_uuid(dmi.get("product_uuid")),
        vendor=_text(dmi, "sys_vendor", "dmi.sys_vendor"),
        product=_text(dmi, "product_name", "dmi.product_name"),
        serial=_text(dmi, "product_serial", "dmi.product_serial"),
        cpu_count=_count(cpu, "count", "cpu.count", 1, 65536),
        cpu_model=_text(cpu, "model", "cpu.model"),
        memory_mib=_count(memory, "total_mib", "memory.total_mib", 1, 1 << 32),
        disks=tuple(_disk(v, i) for i, v in enumerate(_list(raw, "disks"))),
        raw=raw,
    )


def _list(raw: dict[str, Any], key: str) -> list[Any]:
    value = raw.get(key, [])
    if not isinstance(value, list):
        raise InvalidReport(key, "must be a list")
    if len(value) > 1024:
        raise InvalidReport(key, "too many entries")
    return value


def _dict(raw: dict[str, Any], key: str) -> dict[str, Any]:
    value = raw.get(key, {})
    if not isinstance(value, dict):
        raise InvalidReport(key, "must be an object")
    return value


def _text(raw: dict[str, Any], key: str, field: str) -> str:
    value = raw.get(key, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidReport(field, "must be a string")
    if len(value) > 1024:
        raise InvalidReport(field, "longer than 1024 characters")
    return value.strip()


def _count(raw: dict[str, Any], key: str, field: str, lo: int, hi: int) -> int:
    value = raw.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidReport(field, "must be an integer")
    if not lo <= value <= hi:
        raise InvalidReport(field, f"{value} is outside {lo}..{hi}")
    return value


def _uuid(value: Any) -> str | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise InvalidReport("dmi.product_uuid", "must be a string")
    try:
        return str(uuid.UUID(value.strip()))
    except ValueError:
        raise InvalidReport("dmi.product_uuid", f"{value!r} is not a UUID") from None


def _interface(value: Any, index: int) -> Interface:
    field = f"interfaces[{index}]"
    if not isinstance(value, dict):
        raise InvalidReport(field, "must be an object")
    ipv4 = value.get("ipv4")
    if ipv4 is not None and not isinstance(ipv4, str):
        raise InvalidReport(f"{field}.ipv4", "must be a string or null")
    return Interface(
        name=_text(value, "name", f"{field}.name"),
        mac=normalise_mac(value.get("mac"), f"{field}.mac"),
        ipv4=ipv4 or None,
    )


def _disk(value: Any, index: int) -> Disk:
    field = f"disks[{index}]"
    if not isinstance(value, dict):
        raise InvalidReport(field, "must be an object")
    return Disk(
        name=_text(value, "name", f"{field}.name"),
        size_bytes=_count(value, "size_bytes", f"{field}.size_bytes", 0, 1 << 60),
        model=_text(value, "model", f"{field}.model"),
        serial=_text(value, "serial", f"{field}.serial"),
    )
