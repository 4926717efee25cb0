"""MAAS API operations on machines: the collection (list, create, allocate, bulk
release) and one machine (read, update, deploy, release, commission, owner data, power,
broken/fixed). Input is checked here, before any action runs (400 names the field and
nothing changes); the state change itself is NodeActions'."""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

from twisted.internet import defer

from netboot.http.maas.calls import Call, Conflict, NotFound
from netboot.http.maas.forms import BadForm, Form
from netboot.nodes.actions import NoMatchingNode
from netboot.nodes.constraints import parse_constraints
from netboot.nodes.inventory import InvalidReport, normalise_mac
from netboot.nodes.lifecycle import NodeStatus
from netboot.store.models import Node
from netboot.store.nodes_ext import HostnameTaken, MacInUse, create_node

_HOSTNAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_ZONE_RE = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
_RELEASABLE = {
    NodeStatus.READY,
    NodeStatus.ALLOCATED,
    NodeStatus.DEPLOYING,
    NodeStatus.DEPLOYED,
    NodeStatus.FAILED_DEPLOYMENT,
    NodeStatus.FAILED_RELEASING,
    NodeStatus.FAILED_DISK_ERASING,
}


# -- helpers ------------------------------------------------------------------------------


def _node(call: Call) -> Node:
    node = call.ctx.store.node(call.params["system_id"])
    if node is None:
        raise NotFound(f"No machine matches the given query ({call.params['system_id']}).")
    return node


def _then_machine(call: Call, d: defer.Deferred) -> defer.Deferred:
    return d.addCallback(lambda node: call.ctx.machine(node))


def _status_filter(value: str) -> NodeStatus:
    key = value.strip().upper().replace(" ", "_").replace("-", "_")
    if key.isdigit():
        try:
            return NodeStatus(int(key))
        except ValueError:
            pass
    elif key in NodeStatus.__members__:
        return NodeStatus[key]
    raise BadForm("status", f"{value!r} is not a node status")


# -- machines (collection) ----------------------------------------------------------------


def machines_read(call: Call) -> list[dict]:
    f = call.form
    ids = set(f.texts("id"))
    hostnames = {h.split(".")[0] for h in f.texts("hostname")}
    try:
        macs = {normalise_mac(m, "mac_address") for m in f.texts("mac_address")}
    except InvalidReport as exc:
        raise BadForm("mac_address", exc.message) from None
    zones = set(f.texts("zone"))
    domains = set(f.texts("domain"))
    agent = f.text("agent_name")
    tags = {t for v in f.texts("tags") for t in v.replace(",", " ").split()}
    statuses = {_status_filter(s) for s in f.texts("status")}
    pools = set(f.texts("pool"))
    ips = call.ctx.ips()
    out = []
    for node in call.ctx.store.nodes():
        if ids and node.system_id not in ids:
            continue
        if hostnames and node.hostname not in hostnames:
            continue
        if macs and not macs & set(node.macs):
            continue
        if zones and node.zone not in zones:
            continue
        if domains and call.ctx.facts.domain not in domains:
            continue
        if agent is not None and node.agent_name != agent:
            continue
        if tags and not tags <= set(node.tags):
            continue
        if statuses and node.status not in statuses:
            continue
        if pools and "default" not in pools:
            continue
        out.append(call.ctx.machine(node, ips))
    return out


def machines_allocate(call: Call) -> dict:
    f = call.form
    constraints = parse_constraints(f.as_text_lists())
    try:
        node = call.ctx.actions.allocate(
            constraints,
            call.actor,
            agent_name=f.text("agent_name") or "",
            comment=f.text("comment") or "",
            dry_run=f.flag("dry_run"),
        )
    except NoMatchingNode as exc:
        raise Conflict(f"No available machine matches constraints: {exc}") from None
    body = call.ctx.machine(node)
    body["constraints_by_type"] = {}
    return body


def machines_release(call: Call) -> defer.Deferred:
    """Bulk release (Juju): every id must exist (400) and be releasable (409) before any
    is released; machines already Ready count as released."""
    ids = call.form.texts("machines")
    if not ids:
        raise BadForm("machines", "at least one system_id is required")
    nodes = []
    unknown = []
    for sid in ids:
        node = call.ctx.store.node(sid)
        (nodes.append(node) if node else unknown.append(sid))
    if unknown:
        raise BadForm("machines", f"unknown system_ids: {', '.join(unknown)}")
    stuck = [f"{n.system_id} ({n.status.label})" for n in nodes if n.status not in _RELEASABLE]
    if stuck:
        raise Conflict(f"Machine(s) cannot be released in their current state: {', '.join(stuck)}")
    comment = call.form.text("comment") or ""
    erase, mode = _erase_options(call)
    ds = [
        call.ctx.actions.release(
            n.system_id, call.actor, erase=erase, erase_mode=mode, comment=comment
        )
        for n in nodes
    ]
    d = defer.gatherResults(ds, consumeErrors=True)
    d.addErrback(lambda f: f.value.subFailure if isinstance(f.value, defer.FirstError) else f)
    d.addCallback(lambda _: [n.system_id for n in nodes])
    return d


def machines_create(call: Call) -> dict:
    f = call.form
    macs_raw = f.texts("mac_addresses")
    if not macs_raw:
        raise BadForm("mac_addresses", "at least one MAC address is required")
    try:
        macs = tuple(dict.fromkeys(normalise_mac(m, "mac_addresses") for m in macs_raw))
    except InvalidReport as exc:
        raise BadForm("mac_addresses", exc.message) from None
    arch = f.text("architecture") or "amd64/generic"
    if "/" not in arch:
        arch = f"{arch}/generic"
    if arch.split("/", 1)[0] not in ("amd64", "arm64", "i386"):
        raise BadForm("architecture", f"{arch!r} is not a supported architecture")
    hostname = f.text("hostname")
    if hostname is not None:
        hostname = hostname.split(".")[0].lower()
        if not _HOSTNAME_RE.match(hostname):
            raise BadForm("hostname", f"{hostname!r} is not a valid host name")
    power_type = f.text("power_type") or "manual"
    params = call.ctx.actions.check_power(power_type, _power_parameters(f))
    try:
        node = create_node(
            call.ctx.store,
            macs=macs,
            now=call.ctx.actions.clock(),
            actor=call.actor,
            hostname=hostname,
            architecture=arch,
            power_type=power_type,
            power_parameters=params,
        )
    except MacInUse as exc:
        raise BadForm("mac_addresses", str(exc)) from None
    except HostnameTaken as exc:
        raise BadForm("hostname", str(exc)) from None
    return call.ctx.machine(node)


def _power_parameters(f: Form) -> dict[str, str]:
    params: dict[str, str] = {}
    blob = f.text("power_parameters")
    if blob:
        try:
            decoded = json.loads(blob)
        except ValueError:
            raise BadForm("power_parameters", "is not a JSON object") from None
        if not isinstance(decoded, dict):
            raise BadForm("power_parameters", "is not a JSON object")
        params.update({str(k): str(v) for k, v in decoded.items()})
    for key in f.names():
        if key.startswith("power_parameters_"):
            params[key[len("power_parameters_") :]] = f.text(key) or ""
    return params


# -- one machine --------------------------------------------------------------------------


def machine_read(call: Call) -> dict:
    return call.ctx.machine(_node(call))


def machine_update(call: Call) -> dict:
    node = _node(call)
    f = call.form
    fields: dict[str, Any] = {}
    hostname = f.text("hostname")
    if hostname is not None:
        hostname = hostname.split(".")[0].lower()
        if not _HOSTNAME_RE.match(hostname):
            raise BadForm("hostname", f"{hostname!r} is not a valid host name")
        other = [n for n in call.ctx.store.nodes() if n.hostname == hostname]
        if other and other[0].system_id != node.system_id:
            raise BadForm("hostname", f"hostname {hostname!r} is already in use")
        fields["hostname"] = hostname
    zone = f.text("zone")
    if zone is not None:
        if not _ZONE_RE.match(zone):
            raise BadForm("zone", f"{zone!r} is not a valid zone name")
        fields["zone"] = zone
    arch = f.text("architecture")
    if arch is not None:
        if arch.split("/", 1)[0] not in ("amd64", "arm64", "i386"):
            raise BadForm("architecture", f"{arch!r} is not a supported architecture")
        fields["architecture"] = arch if "/" in arch else f"{arch}/generic"
    power_type = f.text("power_type")
    params = _power_parameters(f)
    if power_type is not None or params:
        ptype = power_type or node.power_type
        if not power_type:  # only parameters given: merge into the stored ones
            params = {**call.ctx.store.power_parameters(node.system_id), **params}
        call.ctx.actions.set_power(node.system_id, call.actor, ptype, params)
    if fields:
        call.ctx.store.update_node(
            node.system_id,
            fields,
            call.ctx.actions.clock(),
            call.actor,
            "updated",
            "updated " + ", ".join(sorted(fields)),
        )
    return call.ctx.machine(_node(call))


def machine_deploy(call: Call) -> defer.Deferred:
    node = _node(call)
    f = call.form
    user_data = None
    raw = f.raw("user_data")
    if raw and raw[-1].strip():
        try:
            user_data = base64.b64decode(b"".join(raw[-1].split()), validate=True)
        except (binascii.Error, ValueError):
            raise BadForm("user_data", "is not valid base64") from None
    series = f.text("distro_series") or "bookworm"
    osystem = f.text("osystem") or "debian"
    if "/" in series:  # "debian/bookworm"
        osystem, series = series.split("/", 1)
    for name, value in (("distro_series", series), ("osystem", osystem)):
        if not re.match(r"^[a-z0-9][a-z0-9._-]{0,63}$", value):
            raise BadForm(name, f"{value!r} is not a valid name")
    d = call.ctx.actions.deploy(
        node.system_id,
        call.actor,
        osystem=osystem,
        distro_series=series,
        user_data=user_data,
        agent_name=f.text("agent_name"),
        comment=f.text("comment") or "",
    )
    return _then_machine(call, d)


def _erase_options(call: Call) -> tuple[bool | None, str | None]:
    """MAAS's release flags -> (erase, mode). ``erase=true`` erases in the configured
    mode (``[deploy] erase_mode``); ``secure_erase`` or ``quick_erase`` pick the mode
    (and imply erase). No flag at all: the ``[deploy] erase_on_release`` default.
    Unlike MAAS, a plain ``erase`` never overwrites whole disks (docs/deploy.md)."""
    f = call.form
    secure, quick = f.flag("secure_erase"), f.flag("quick_erase")
    mode = "secure" if secure else ("quick" if quick else None)
    if f.text("erase") is not None:
        return f.flag("erase") or secure or quick, mode
    return (True if mode else None), mode


def machine_release(call: Call) -> defer.Deferred:
    node = _node(call)
    erase, mode = _erase_options(call)
    return _then_machine(
        call,
        call.ctx.actions.release(
            node.system_id,
            call.actor,
            erase=erase,
            erase_mode=mode,
            comment=call.form.text("comment") or "",
        ),
    )


def machine_commission(call: Call) -> defer.Deferred:
    node = _node(call)
    if call.form.flag("enable_ssh"):
        raise BadForm("enable_ssh", "SSH into the commissioning environment is not supported")
    return _then_machine(
        call,
        call.ctx.actions.commission(node.system_id, call.actor, call.form.text("comment") or ""),
    )


def machine_rescue_mode(call: Call) -> defer.Deferred:
    """MAAS's ``op=rescue_mode``: ENTERING_RESCUE_MODE and a power cycle."""
    node = _node(call)
    return _then_machine(
        call,
        call.ctx.actions.rescue_mode(node.system_id, call.actor, call.form.text("comment") or ""),
    )


def machine_exit_rescue_mode(call: Call) -> defer.Deferred:
    """MAAS's ``op=exit_rescue_mode``: back to the state rescue started from."""
    node = _node(call)
    return _then_machine(
        call,
        call.ctx.actions.exit_rescue_mode(
            node.system_id, call.actor, call.form.text("comment") or ""
        ),
    )


def machine_set_owner_data(call: Call) -> dict:
    node = _node(call)
    updates = {
        k: call.form.text(k) or "" for k in call.form.names() if k not in ("op", "system_id")
    }
    node = call.ctx.actions.set_owner_data(node.system_id, call.actor, updates)
    return call.ctx.machine(node)


def machine_power_on(call: Call) -> defer.Deferred:
    return _then_machine(call, call.ctx.actions.power_on(_node(call).system_id, call.actor))


def machine_power_off(call: Call) -> defer.Deferred:
    return _then_machine(call, call.ctx.actions.power_off(_node(call).system_id, call.actor))


def machine_query_power_state(call: Call) -> defer.Deferred:
    d = call.ctx.actions.power_query(_node(call).system_id, call.actor)
    return d.addCallback(lambda state: {"state": state.value})


def machine_mark_broken(call: Call) -> dict:
    node = _node(call)
    comment = call.form.text("comment") or call.form.text("error_description") or ""
    return call.ctx.machine(call.ctx.actions.mark_broken(node.system_id, call.actor, comment))


def machine_mark_fixed(call: Call) -> dict:
    node = _node(call)
    return call.ctx.machine(
        call.ctx.actions.mark_fixed(node.system_id, call.actor, call.form.text("comment") or "")
    )
