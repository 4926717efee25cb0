"""Helpers for DHCP tests in lab namespaces: an appliance with a custom [dhcp] table, a
routed segment behind a relay namespace, and lease rows read from the store file."""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from pyroute2 import NetNS

from netboot.lab.appliance import LabAppliance
from netboot.lab.netns import LabNetwork


def appliance_with_dhcp(
    lab: LabNetwork, workdir: Path, boot_dir: Path, dhcp_table: str
) -> LabAppliance:
    """A LabAppliance whose [dhcp] table is replaced by ``dhcp_table`` (TOML body)."""
    app = LabAppliance(lab, workdir, boot_dir)
    text = app.config_path.read_text()
    text = re.sub(r"\[dhcp\]\n(?:(?!\n\[).)*", "[dhcp]\n" + dhcp_table.strip(), text, flags=re.S)
    app.config_path.write_text(text)
    return app


def rows(app: LabAppliance, sql: str, args: tuple = ()) -> list[tuple]:
    db = sqlite3.connect(app.state_dir / "netboot.sqlite3")
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()


def wait_for(check: Callable[[], object], timeout: float, what: str) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class RelaySegment:
    """client ns <-veth-> relay ns <-veth on the lab bridge-> appliance.

    The relay namespace has ``up_address`` on the lab bridge and ``down_address`` on
    the client's segment; the appliance namespace routes the client segment via the
    relay, as a routed rack network would.
    """

    def __init__(self, lab: LabNetwork, up_address: str, down_address: str, segment: str):
        self.relay = lab.add_host(up_address)
        self.client_ns = f"{lab.name}-c{len(lab._namespaces)}"
        lab._create(self.client_ns)
        self.down_if = "rl-down"
        self.client_if = "eth0"
        with NetNS(self.relay.name) as ns:
            ns.link(
                "add",
                ifname=self.down_if,
                kind="veth",
                peer={"ifname": self.client_if, "net_ns_fd": self.client_ns},
            )
            idx = ns.link_lookup(ifname=self.down_if)[0]
            ip, prefix = down_address.split("/")
            ns.addr("add", index=idx, address=ip, prefixlen=int(prefix))
            ns.link("set", index=idx, state="up")
        with NetNS(self.client_ns) as ns:
            idx = ns.link_lookup(ifname=self.client_if)[0]
            ns.link("set", index=idx, state="up")
            ns.link("set", index=ns.link_lookup(ifname="lo")[0], state="up")
        with NetNS(lab.name) as ns:
            ns.route("add", dst=segment, gateway=up_address.split("/")[0])
        self.lab = lab

    def client_run(self, args, timeout: float = 60):
        return self.lab.run(args, namespace=self.client_ns, timeout=timeout)

    def client_popen(self, args, **kw):
        return self.lab.popen(args, namespace=self.client_ns, **kw)
