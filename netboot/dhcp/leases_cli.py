"""``netboot leases``: the DHCP lease table, filtered by MAC, address or state; and
address pins (``--pin MAC IP``, ``--unpin MAC``) the running server honours within
seconds, like configured host reservations."""

from __future__ import annotations

import argparse
import json
import sqlite3
import time
from ipaddress import IPv4Address

from rich.console import Console
from rich.table import Table

from netboot.config import Config
from netboot.dhcp.leases import State
from netboot.store.leases import LeaseStore
from netboot.store.sqlite import open_store

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("leases", help="list DHCP leases (filter by --mac, --ip, --state)")
    p.add_argument("--mac", help="only this client MAC")
    p.add_argument("--ip", help="only this address")
    p.add_argument("--state", choices=[s.value for s in State], help="only leases in this state")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--pin", nargs=2, metavar=("MAC", "IP"), help="always give IP to MAC")
    p.add_argument("--hostname", default="", help="with --pin: the name to hand out")
    p.add_argument("--unpin", metavar="MAC", help="remove the pin of MAC")
    p.add_argument("--pins", action="store_true", help="list the pins")
    return p


def _pins(store: LeaseStore, args: argparse.Namespace) -> int:
    if args.pin:
        mac, ip = args.pin
        try:
            mac = _mac(mac)
            address = IPv4Address(ip)
            store.pin(mac, address, args.hostname, time.time())
        except ValueError as exc:
            print(f"netboot: {exc}")
            return 2
        except sqlite3.IntegrityError:
            print(f"netboot: {ip} is already pinned to another MAC")
            return 1
        print(f"pinned {address} to {mac}")
        return 0
    if args.unpin:
        if not store.unpin(args.unpin):
            print(f"netboot: no pin for {args.unpin}")
            return 1
        print(f"unpinned {args.unpin}")
        return 0
    pins = [{"mac": h.mac, "ip": str(h.ip), "hostname": h.hostname or ""} for h in store.pins()]
    if args.json:
        print(json.dumps(pins, indent=2))
    else:
        for pin in pins:
            print(f"{pin['mac']}  {pin['ip']}  {pin['hostname']}")
    return 0


def _mac(text: str) -> str:
    parts = text.lower().replace("-", ":").split(":")
    if len(parts) != 6 or not all(len(p) == 2 for p in parts):
        raise ValueError(f"{text!r} is not a MAC address like 52:54:00:12:34:56")
    bytes.fromhex("".join(parts))
    return ":".join(parts)


def run(cfg: Config, args: argparse.Namespace) -> int:
    if args.ip is not None:
        try:
            IPv4Address(args.ip)
        except ValueError:
            print(f"netboot: --ip {args.ip!r} is not an IPv4 address")
            return 2
    open_store(cfg.database_path).close()  # creates / migrates the schema if needed
    store = LeaseStore(cfg.database_path)
    try:
        if args.pin or args.unpin or args.pins:
            return _pins(store, args)
        rows = store.query(mac=args.mac, ip=args.ip, state=args.state)
    finally:
        store.close()
    now = time.time()
    records = [
        {
            "ip": str(IPv4Address(b.ip)),
            "mac": b.mac,
            "state": b.state.value,
            "expires": b.expires,
            "expires_in": round(b.expires - now),
            "hostname": b.hostname,
            "subnet": b.subnet,
            "client_id": b.key.hex(),
            "relay": b.relay.hex(),
        }
        for b in rows
    ]
    if args.json:
        print(json.dumps(records, indent=2))
        return 0
    table = Table(title=f"DHCP leases ({len(records)})")
    for column in ("ip", "mac", "state", "expires in", "hostname", "subnet"):
        table.add_column(column)
    for r in records:
        left = r["expires_in"]
        table.add_row(
            r["ip"],
            r["mac"],
            r["state"],
            f"{left} s" if left > 0 else "-",
            r["hostname"],
            r["subnet"],
        )
    Console(width=120).print(table)
    return 0
