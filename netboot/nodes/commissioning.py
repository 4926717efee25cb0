"""Commissioning, the pure parts: the inventory the commissioning environment reports,
the operator's script directory, and the verdict from the per-script results.

The inventory shape is documented in images/commission/README.md. Anything off raises
InvalidReport naming the field (HTTP 400, nothing stored).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from netboot.nodes.inventory import MAX_BODY_BYTES, InvalidReport, normalise_mac

SCRIPT_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
MAX_SCRIPT_BYTES = 1 << 20
MAX_OUTPUT_BYTES = 4 << 20
INVENTORY_RESULT = "00-netboot-inventory"  # the built-in script's result name


def _obj(raw: Any, field: str) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise InvalidReport(field, "must be an object")
    return raw


def _list(raw: Any, field: str, limit: int = 1024) -> list[Any]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise InvalidReport(field, "must be a list")
    if len(raw) > limit:
        raise InvalidReport(field, f"more than {limit} entries")
    return raw


def _str(raw: dict[str, Any], key: str, field: str) -> str:
    value = raw.get(key, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidReport(field, "must be a string")
    if len(value) > 1024:
        raise InvalidReport(field, "longer than 1024 characters")
    return value.strip()


def _int(raw: dict[str, Any], key: str, field: str, lo: int, hi: int, optional=False) -> int | None:
    value = raw.get(key)
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidReport(field, "must be an integer")
    if not lo <= value <= hi:
        raise InvalidReport(field, f"{value} is outside {lo}..{hi}")
    return value


def parse_inventory(body: bytes) -> dict[str, Any]:
    """Validate the commissioning inventory; return the normalised ``hardware`` dict."""
    if len(body) > MAX_BODY_BYTES:
        raise InvalidReport("(body)", f"larger than {MAX_BODY_BYTES} bytes")
    try:
        raw = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidReport("(body)", f"not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise InvalidReport("(body)", "must be a JSON object")
    cpu = _obj(raw.get("cpu"), "cpu")
    flags = _list(cpu.get("flags"), "cpu.flags", 4096)
    if not all(isinstance(f, str) and len(f) < 64 for f in flags):
        raise InvalidReport("cpu.flags", "must be a list of short strings")
    memory = _obj(raw.get("memory"), "memory")
    dmi = _obj(raw.get("dmi"), "dmi")
    dmi_out = {k: _str(dmi, k, f"dmi.{k}") for k in sorted(dmi) if k.isidentifier()}
    disks = []
    for i, d in enumerate(_list(raw.get("disks"), "disks")):
        f = f"disks[{i}]"
        d = _obj(d, f)
        rotational = d.get("rotational")
        if rotational is not None and not isinstance(rotational, bool):
            raise InvalidReport(f"{f}.rotational", "must be true, false or null")
        disks.append(
            {
                "name": _str(d, "name", f"{f}.name"),
                "size_bytes": _int(d, "size_bytes", f"{f}.size_bytes", 0, 1 << 60),
                "model": _str(d, "model", f"{f}.model"),
                "serial": _str(d, "serial", f"{f}.serial"),
                "block_size": _int(d, "block_size", f"{f}.block_size", 0, 1 << 20, True) or 512,
                "rotational": rotational,
            }
        )
    nics = []
    for i, n in enumerate(_list(raw.get("nics"), "nics")):
        f = f"nics[{i}]"
        n = _obj(n, f)
        link = n.get("link")
        if link is not None and not isinstance(link, bool):
            raise InvalidReport(f"{f}.link", "must be true, false or null")
        nics.append(
            {
                "name": _str(n, "name", f"{f}.name"),
                "mac": normalise_mac(n.get("mac"), f"{f}.mac"),
                "driver": _str(n, "driver", f"{f}.driver"),
                "speed_mbps": _int(n, "speed_mbps", f"{f}.speed_mbps", 0, 10**7, True),
                "link": link,
                "mtu": _int(n, "mtu", f"{f}.mtu", 0, 65536, True),
            }
        )
    pci = []
    for i, p in enumerate(_list(raw.get("pci"), "pci")):
        f = f"pci[{i}]"
        p = _obj(p, f)
        pci.append(
            {k: _str(p, k, f"{f}.{k}") for k in ("slot", "vendor", "device", "class", "driver")}
        )
    return {
        "cpu": {
            "count": _int(cpu, "count", "cpu.count", 1, 65536),
            "model": _str(cpu, "model", "cpu.model"),
            "flags": sorted(set(flags)),
        },
        "memory": {"total_mib": _int(memory, "total_mib", "memory.total_mib", 1, 1 << 32)},
        "dmi": dmi_out,
        "disks": disks,
        "nics": nics,
        "pci": pci,
    }


def check_script_name(name: str) -> str:
    if not SCRIPT_NAME_RE.match(name):
        raise InvalidReport("name", f"{name!r} is not a script name ([A-Za-z0-9._-], up to 128)")
    return name


@dataclass(frozen=True, slots=True)
class Script:
    name: str
    body: bytes


def operator_scripts(directory: Path | None) -> list[Script]:
    """The operator's commissioning scripts: regular files with valid names, in name
    order (so ``10-foo`` runs before ``20-bar``). Hidden files and oversized files are
    skipped. A missing directory means no operator scripts."""
    if directory is None or not directory.is_dir():
        return []
    out = []
    for path in sorted(directory.iterdir()):
        if not SCRIPT_NAME_RE.match(path.name) or path.name.endswith((".md", "~")):
            continue
        if not path.is_file() or path.stat().st_size > MAX_SCRIPT_BYTES:
            continue
        out.append(Script(path.name, path.read_bytes()))
    return out


@dataclass(frozen=True, slots=True)
class Verdict:
    ok: bool
    message: str


def verdict(results: list, expected: list[str], inventory_received: bool, env_ok: bool) -> Verdict:
    """READY only if the inventory arrived, every expected script reported and every
    result exited 0; otherwise a message naming what failed, with output tails."""
    problems = []
    if not env_ok:
        problems.append("the commissioning environment reported a failure")
    if not inventory_received:
        problems.append("no inventory was received")
    got = {r.name: r for r in results}
    for name in expected:
        if name not in got:
            problems.append(f"script {name} did not report")
    for r in results:
        if r.exit_status != 0:
            tail = r.output[-300:].decode("utf-8", "replace").strip().replace("\n", " | ")
            problems.append(f"script {r.name} exited {r.exit_status}: {tail}")
    if problems:
        return Verdict(False, "; ".join(problems))
    return Verdict(True, f"commissioned: inventory + {len(results)} script result(s), all passed")
