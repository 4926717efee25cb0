"""``netboot nodes [list|show NAME|commission NAME|release NAME [--erase [--secure]]|
rescue NAME|exit-rescue NAME]``: the node table and a node's details for people (rich)
or scripts (``--json``), and the everyday actions.

Actions go through NodeActions (the same code as the web UI and the MAAS API), straight
on the store file: the appliance need not be reachable, and a running one sees the new
status at once (its next request reads the store). NAME is a hostname, a system id or
any of the node's MACs.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from netboot.config import Config
from netboot.http.nodes import node_json
from netboot.http.ui.views import TONES, event_rows, filter_nodes, human_bytes, parse_status_filter
from netboot.store.models import Node
from netboot.store.sqlite import SQLiteStore, open_store

# rich styles per colour family, as in the web UI.
STYLES = {"ready": "bold green", "owned": "bold blue", "failed": "bold red", "busy": "yellow"}
ACTION_TIMEOUT = 300.0  # seconds to wait for a power driver


def add_parser(sub: argparse._SubParsersAction) -> None:
    nodes = sub.add_parser("nodes", help="list, show, commission and release nodes")
    nodes.add_argument("--json", action="store_true", help="print JSON instead of a table")
    verbs = nodes.add_subparsers(dest="nodes_command")
    listing = verbs.add_parser("list", help="the node table (the default)")
    # SUPPRESS: `nodes --json list` must not be reset by the sub-command's default.
    listing.add_argument("--json", action="store_true", default=argparse.SUPPRESS)
    listing.add_argument("--status", default="", help="only nodes in this status (e.g. ready)")
    listing.add_argument("--search", "-s", default="", help="hostname, MAC, system id, serial")
    show = verbs.add_parser("show", help="one node: inventory, events, commissioning output")
    show.add_argument("name", help="hostname, system id or MAC")
    show.add_argument("--json", action="store_true", default=argparse.SUPPRESS)
    for verb, text in (
        ("commission", "commission a node"),
        ("release", "release a node"),
        ("rescue", "boot a node into rescue mode (a root shell on its console)"),
        ("exit-rescue", "leave rescue mode: back to the state it came from"),
    ):
        action = verbs.add_parser(verb, help=text)
        action.add_argument("name", help="hostname, system id or MAC")
        action.add_argument("--comment", default="", help="reason recorded in the event")
        if verb == "release":
            action.add_argument(
                "--erase",
                action=argparse.BooleanOptionalAction,
                default=None,
                help="erase the disks first (default: [deploy] erase_on_release)",
            )
            action.add_argument(
                "--secure",
                action="store_true",
                help="secure erase (the disk's secure discard, else quick); implies --erase",
            )


def run(cfg: Config, args: argparse.Namespace) -> int:
    command = getattr(args, "nodes_command", None) or "list"
    store = open_store(cfg.database_path)
    try:
        if command == "list":
            return _list(store, args)
        node = find_node(store, args.name)
        if node is None:
            print(f"netboot: no node named {args.name!r}", file=sys.stderr)
            return 1
        if command == "show":
            return _show(store, node, args.json)
        return _act(store, node, command, args.comment, args, cfg)
    finally:
        store.close()


def print_nodes(cfg: Config, as_json: bool = False) -> int:
    """The node table (``netboot nodes``), kept for callers of the old entry point."""
    return run(cfg, argparse.Namespace(nodes_command="list", json=as_json, status="", search=""))


def find_node(store: SQLiteStore, name: str) -> Node | None:
    by_id = store.node(name)
    if by_id is not None:
        return by_id
    if ":" in name or "-" in name:
        by_mac = store.node_by_mac(name.lower().replace("-", ":"))
        if by_mac is not None:
            return by_mac
    return next((n for n in store.nodes() if n.hostname == name), None)


def status_text(node: Node) -> Text:
    return Text(node.status.label, style=STYLES.get(TONES[node.status], ""))


def _disks(node: Node) -> str:
    return ", ".join(f"{d['name']} {d['size_bytes'] / 2**30:.1f}G" for d in node.disks) or "-"


def _list(store: SQLiteStore, args: argparse.Namespace) -> int:
    try:
        status = parse_status_filter(getattr(args, "status", ""))
    except ValueError as exc:
        print(f"netboot: --status: {exc}", file=sys.stderr)
        return 2
    nodes = filter_nodes(store.nodes(), getattr(args, "search", ""), status)
    if args.json:
        print(json.dumps([node_json(n) for n in nodes], indent=2, sort_keys=True))
        return 0
    table = Table(title=f"{len(nodes)} node(s)")
    columns = ("hostname", "system_id", "status", "power", "MAC", "vendor / product")
    for column in (*columns, "CPUs", "RAM", "disks", "owner"):
        table.add_column(column, justify="right" if column in ("CPUs", "RAM") else "left")
    for n in nodes:
        table.add_row(
            n.hostname,
            n.system_id,
            status_text(n),
            n.power_state,
            n.boot_mac,
            f"{n.vendor} / {n.product}".strip(" /") or "-",
            str(n.cpu_count),
            f"{n.memory_mib} MiB",
            _disks(n),
            n.owner or "",
        )
    Console(width=160).print(table)
    return 0


def _show(store: SQLiteStore, node: Node, as_json: bool) -> int:
    events = store.events(node.system_id)
    results = store.script_results(node.system_id)
    if as_json:
        body = node_json(node)
        body["events"] = [
            {
                "time": e.time,
                "actor": e.actor,
                "kind": e.kind,
                "from": None if e.from_status is None else e.from_status.name,
                "to": None if e.to_status is None else e.to_status.name,
                "message": e.message,
            }
            for e in events
        ]
        body["commissioning"] = [
            {"name": r.name, "exit_status": r.exit_status, "time": r.time} for r in results
        ]
        print(json.dumps(body, indent=2, sort_keys=True))
        return 0
    console = Console(width=160)
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="bold")
    facts.add_column()
    rows: list[tuple[str, Any]] = [
        ("hostname", node.hostname),
        ("system_id", node.system_id),
        ("status", status_text(node)),
        ("status message", node.status_message or "-"),
        ("power", f"{node.power_state} ({node.power_type})"),
        ("owner", node.owner or "-"),
        ("MACs", ", ".join(m + (" (boot)" if m == node.boot_mac else "") for m in node.macs)),
        ("vendor / product", f"{node.vendor} / {node.product}".strip(" /") or "-"),
        ("serial", node.serial or "-"),
        ("UUID", node.uuid or "-"),
        ("CPUs", f"{node.cpu_count} {node.cpu_model}".strip()),
        ("memory", human_bytes(node.memory_mib * 2**20)),
        ("architecture", node.architecture),
    ]
    for key, value in rows:
        facts.add_row(key, value)
    console.print(facts)
    disks = Table(title="disks")
    for column in ("name", "size", "model", "serial"):
        disks.add_column(column)
    for d in node.disks:
        disks.add_row(
            str(d.get("name", "")),
            human_bytes(int(d.get("size_bytes", 0) or 0)),
            str(d.get("model", "")),
            str(d.get("serial", "")),
        )
    console.print(disks)
    if results:
        scripts = Table(title="commissioning output")
        for column in ("script", "exit", "bytes"):
            scripts.add_column(column)
        for r in results:
            style = "green" if r.exit_status == 0 else "red"
            scripts.add_row(r.name, Text(str(r.exit_status), style=style), str(len(r.output)))
        console.print(scripts)
    history = Table(title="events (newest first)")
    for column in ("time", "actor", "event", "status", "message"):
        history.add_column(column)
    for e in event_rows(events):
        history.add_row(e.time, e.actor, e.kind, e.change, e.message)
    console.print(history)
    return 0


def _act(
    store: SQLiteStore,
    node: Node,
    verb: str,
    comment: str,
    args: argparse.Namespace | None = None,
    cfg: Config | None = None,
) -> int:
    from twisted.internet import reactor

    from netboot.nodes.actions import (
        IllegalTransition,
        InvalidAction,
        NodeActions,
        NodeNotFound,
        PowerActionFailed,
    )
    from netboot.nodes.wiring import power_lookup

    deploy = getattr(cfg, "deploy", None)
    actions = NodeActions(
        store,
        power_lookup(reactor),
        erase_on_release=bool(getattr(deploy, "erase_on_release", False)),
        erase_mode=getattr(deploy, "erase_mode", "quick"),
    )
    actor = f"cli:{getpass.getuser()}"
    before = node.status
    try:
        if verb == "commission":
            d = actions.commission(node.system_id, actor, comment)
        elif verb == "rescue":
            d = actions.rescue_mode(node.system_id, actor, comment)
        elif verb == "exit-rescue":
            d = actions.exit_rescue_mode(node.system_id, actor, comment)
        else:
            secure = bool(getattr(args, "secure", False))
            erase = getattr(args, "erase", None)
            d = actions.release(
                node.system_id,
                actor,
                erase=True if secure else erase,
                erase_mode="secure" if secure else None,
                comment=comment,
            )
        after = wait_for(d, reactor, ACTION_TIMEOUT)
    except IllegalTransition as exc:
        print(f"netboot: cannot {verb} {node.hostname}: it is {exc.current.label}", file=sys.stderr)
        return 1
    except (InvalidAction, NodeNotFound, PowerActionFailed, TimeoutError) as exc:
        print(f"netboot: {verb} {node.hostname} failed: {exc}", file=sys.stderr)
        return 1
    print(f"{node.hostname} ({node.system_id}): {before.label} -> {after.status.label}")
    return 0


def wait_for(d: Any, reactor: Any, timeout: float) -> Any:
    """The result of Deferred ``d``, running ``reactor`` only if it has not fired yet
    (the manual driver answers at once); its failure is raised."""
    outcome: list[Any] = []
    d.addBoth(outcome.append)
    if not outcome:
        stop: Callable[[], None] = reactor.stop
        timer = reactor.callLater(timeout, stop)
        d.addBoth(lambda r: (timer.active() and timer.cancel(), stop(), r)[-1])
        reactor.run(installSignalHandlers=True)
        if not outcome:
            raise TimeoutError(f"no answer from the power driver within {timeout:g} s")
    result = outcome[0]
    if hasattr(result, "raiseException"):
        result.raiseException()
    return result
