"""``netboot power``: check BMC settings, set a node's power, power it on/off, query it.

```
netboot power types                                  # power types and their parameters
netboot power check ipmi power_address=10.0.0.5 power_user=admin power_pass=-
netboot power set NODE ipmi power_address=... power_user=... power_pass=-
netboot power on|off|query NODE                      # through the power queue
```
NODE is a hostname or system_id. ``NAME=-`` prompts for the value without echo (keeps
passwords out of the shell history and ``ps``). ``set`` validates and asks the BMC
before storing (``--no-check`` stores after validation only). Exit 0 on success, 1 when
the BMC or driver failed, 2 for bad input (the field is named).
"""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from netboot.config import Config
from netboot.power import registry
from netboot.power.base import InvalidPowerParameters, validate_parameters

ACTOR_PREFIX = "cli"


def add_parser(sub: Any) -> None:
    power = sub.add_parser("power", help="power drivers: check a BMC, set, on, off, query")
    verbs = power.add_subparsers(dest="power_command", required=True)
    verbs.add_parser("types", help="list power types and their parameters")
    check = verbs.add_parser("check", help="validate parameters and ask the BMC for the state")
    check.add_argument("power_type")
    check.add_argument("params", nargs="*", metavar="NAME=VALUE")
    set_ = verbs.add_parser("set", help="store a node's power type and parameters (checked)")
    set_.add_argument("node", help="hostname or system_id")
    set_.add_argument("power_type")
    set_.add_argument("params", nargs="*", metavar="NAME=VALUE")
    set_.add_argument("--no-check", action="store_true", help="do not ask the BMC first")
    for verb in ("on", "off", "query"):
        verbs.add_parser(verb, help=f"power {verb} a node").add_argument("node")


def parse_params(pairs: list[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise InvalidPowerParameters(pair, "expected NAME=VALUE")
        if value == "-":
            value = getpass.getpass(f"{name}: ")
        params[name] = value
    return params


def run(cfg: Config, args: argparse.Namespace) -> int:
    command = args.power_command
    if command == "types":
        return _types()
    try:
        if command == "check":
            params = parse_params(args.params)
            return _check(cfg, args.power_type, params)
        from netboot.store.sqlite import SQLiteStore

        store = SQLiteStore(cfg.database_path)
        try:
            node = _find(store, args.node)
            if node is None:
                print(f"netboot: no node {args.node!r}", file=sys.stderr)
                return 2
            if command == "set":
                return _set(cfg, store, node, args.power_type, parse_params(args.params), args)
            return _act(cfg, store, node, command)
        finally:
            store.close()
    except InvalidPowerParameters as exc:
        print(f"netboot: invalid power parameter {exc}", file=sys.stderr)
        return 2


def _types() -> int:
    for power_type in registry.power_types():
        driver = registry.driver_for(power_type, None)
        print(f"{power_type}{'' if driver.can_query else '  (cannot query)'}")
        for spec in driver.parameters:
            flags = ", ".join(
                f for f, on in (("required", spec.required), ("secret", spec.secret)) if on
            )
            print(f"  {spec.name:<18} {spec.doc}" + (f" [{flags}]" if flags else ""))
    return 0


def _check(cfg: Config, power_type: str, params: dict[str, str]) -> int:
    from twisted.internet import reactor

    from netboot.nodes.table import wait_for

    try:
        driver = registry.driver_for(power_type, reactor, cfg.power.drivers)
    except KeyError:
        raise InvalidPowerParameters(
            "power_type", f"unknown power type {power_type!r} ({', '.join(registry.DRIVERS)})"
        ) from None
    validate_parameters(driver, params)  # bad input: exit 2 naming the field
    result = wait_for(registry.check(driver, params), reactor, cfg.power.drivers.timeout + 5)
    print(("ok: " if result.ok else "failed: ") + result.message)
    return 0 if result.ok else 1


def _find(store: Any, name: str) -> Any:
    node = store.node(name)
    if node is not None:
        return node
    return next((n for n in store.nodes() if n.hostname == name), None)


def _actor() -> str:
    return f"{ACTOR_PREFIX}:{getpass.getuser()}"


def _set(
    cfg: Config, store: Any, node: Any, power_type: str, params: dict[str, str], args: Any
) -> int:
    try:
        driver = registry.driver_for(power_type, None)
    except KeyError:
        raise InvalidPowerParameters("power_type", f"unknown power type {power_type!r}") from None
    cleaned = validate_parameters(driver, params)
    if not args.no_check and _check(cfg, power_type, cleaned) != 0:
        print("netboot: not stored (use --no-check to store anyway)", file=sys.stderr)
        return 1
    from netboot.nodes.actions import NodeActions

    actions = NodeActions(store, lambda name: registry.driver_for(name, None))
    actions.set_power(node.system_id, _actor(), power_type, cleaned)
    shown = registry.public_parameters(power_type, cleaned)
    print(f"{node.hostname} ({node.system_id}): power {power_type} {shown}")
    return 0


def _act(cfg: Config, store: Any, node: Any, verb: str) -> int:
    from twisted.internet import reactor

    from netboot.nodes.actions import NodeActions, PowerActionFailed
    from netboot.nodes.table import wait_for
    from netboot.power.service import PowerService

    power = PowerService(store, reactor, config=cfg.power)
    actions = NodeActions(store, power.lookup)
    call = {"on": actions.power_on, "off": actions.power_off, "query": actions.power_query}[verb]
    deadline = cfg.power.retry.deadline + cfg.power.retry.attempt_timeout
    try:
        outcome = wait_for(call(node.system_id, _actor()), reactor, deadline)
    except (PowerActionFailed, TimeoutError) as exc:
        print(f"netboot: power {verb} of {node.hostname} failed: {exc}", file=sys.stderr)
        return 1
    if verb == "query":
        print(f"{node.hostname} ({node.system_id}): {outcome.value}")
        return 0 if outcome.value != "error" else 1
    print(f"{node.hostname} ({node.system_id}): power {verb} done ({node.power_type})")
    return 0
