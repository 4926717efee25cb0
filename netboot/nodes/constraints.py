"""Allocation constraints (MAAS ``allocate`` parameters) and the pure matcher.

Parsing from API form fields lives here too, so the UI/CLI and the API read the same
names: ``name``/``system_id``, ``arch``, ``cpu_count`` (minimum), ``mem`` (minimum MiB),
``tags``/``not_tags`` (all / none of), ``zone``/``not_in_zone``, ``pool`` (only the
default pool exists). A bad value raises ConstraintError naming the field.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from netboot.store.models import Node

DEFAULT_POOL = "default"


class ConstraintError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class Constraints:
    name: str | None = None
    system_id: str | None = None
    arch: tuple[str, ...] = ()  # any of these
    cpu_count: float | None = None
    mem: float | None = None
    tags: tuple[str, ...] = ()
    not_tags: tuple[str, ...] = ()
    zone: str | None = None
    not_in_zone: tuple[str, ...] = ()

    def describe(self) -> str:
        parts = []
        for key in ("name", "system_id", "cpu_count", "mem", "zone"):
            value = getattr(self, key)
            if value is not None:
                parts.append(f"{key}={value:g}" if isinstance(value, float) else f"{key}={value}")
        for key in ("arch", "tags", "not_tags", "not_in_zone"):
            if getattr(self, key):
                parts.append(f"{key}={','.join(getattr(self, key))}")
        return " ".join(parts) or "any"


def _arch_matches(wanted: str, have: str) -> bool:
    # MAAS: "amd64" matches "amd64/generic"; "amd64/generic" only itself.
    if "/" in wanted:
        return wanted == have
    return have.split("/", 1)[0] == wanted


def matches(node: Node, c: Constraints) -> bool:
    """True when ``node`` satisfies every given constraint (status is not checked)."""
    if c.name is not None and c.name not in (node.hostname, node.hostname.split(".")[0]):
        return False
    if c.system_id is not None and c.system_id != node.system_id:
        return False
    if c.arch and not any(_arch_matches(a, node.architecture) for a in c.arch):
        return False
    if c.cpu_count is not None and node.cpu_count < c.cpu_count:
        return False
    if c.mem is not None and node.memory_mib < c.mem:
        return False
    if not set(c.tags) <= set(node.tags):
        return False
    if set(c.not_tags) & set(node.tags):
        return False
    if c.zone is not None and node.zone != c.zone:
        return False
    return node.zone not in c.not_in_zone


def _words(values: Sequence[str]) -> tuple[str, ...]:
    # MAAS accepts "a,b", "a b" and repeated keys alike.
    out: list[str] = []
    for value in values:
        out.extend(w for w in value.replace(",", " ").split() if w)
    return tuple(dict.fromkeys(out))


def _number(field: str, values: Sequence[str]) -> float | None:
    if not values or values[-1] == "":
        return None
    try:
        number = float(values[-1])
    except ValueError:
        raise ConstraintError(field, f"{values[-1]!r} is not a number") from None
    if number < 0 or number != number or number == float("inf"):
        raise ConstraintError(field, f"{values[-1]!r} must be a non-negative number")
    return number


def _one(values: Sequence[str]) -> str | None:
    return values[-1] if values and values[-1] != "" else None


# Accepted by MAAS's allocate but not supported here: refusing beats silently ignoring a
# constraint a caller relies on.
UNSUPPORTED = ("storage", "interfaces", "not_subnets", "subnets", "fabrics", "not_fabrics")


def parse_constraints(form: Mapping[str, Sequence[str]]) -> Constraints:
    """Build Constraints from form fields (each a list of values, as parsed from HTTP)."""
    for key in UNSUPPORTED:
        if _one(form.get(key, ())):
            raise ConstraintError(key, "this constraint is not supported by this appliance")
    for key in ("pool", "not_in_pool"):
        pools = _words(form.get(key, ()))
        if key == "pool" and pools and pools != (DEFAULT_POOL,):
            raise ConstraintError(key, f"unknown pool {pools[0]!r} (only {DEFAULT_POOL!r})")
    return Constraints(
        name=_one(form.get("name", ())),
        system_id=_one(form.get("system_id", ())),
        arch=tuple(a for a in form.get("arch", ()) if a),
        cpu_count=_number("cpu_count", form.get("cpu_count", ())),
        mem=_number("mem", form.get("mem", ())),
        tags=_words(form.get("tags", ())),
        not_tags=_words(form.get("not_tags", ())),
        zone=_one(form.get("zone", ())),
        not_in_zone=_words(form.get("not_in_zone", ())),
    )
