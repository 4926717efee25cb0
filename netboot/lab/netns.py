"""A private lab network: network namespaces, a bridge and tap/veth ports (pyroute2).

Everything lives inside namespaces this module creates, so nothing the lab runs (DHCP
server, QEMU nodes, test clients) can see or touch the host's interfaces. ``close()``
kills every process started here, by PID, and removes the namespaces; it is safe to call
twice and runs from ``__exit__`` even when a test fails.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import time
from collections.abc import Sequence
from ipaddress import IPv4Interface
from pathlib import Path
from typing import IO, Any

from pyroute2 import NetNS, config, netns

BRIDGE = "nbbr0"
BRIDGE_MAC = "02:6e:62:00:00:01"  # locally administered

# NetNS forks a helper that opens its netlink socket inside the namespace; pyroute2
# waits 2 s for it, which a loaded 2-core CI box can exceed (seen: a tap failed with
# NetlinkError 61 "No data available" after "no response from the child").
config.default_communicate_timeout = max(config.default_communicate_timeout, 30)


def _enter(name: str) -> None:
    # Runs in the child between fork and exec: join the namespace before exec'ing.
    netns.setns(name, flags=0)
    os.setsid()


class LabNetwork:
    """A namespace holding a bridge at ``address`` (e.g. 10.66.0.1/24)."""

    def __init__(self, address: str = "10.66.0.1/24", prefix: str = "nb") -> None:
        self.name = f"{prefix}-{os.getpid()}-{secrets.token_hex(3)}"
        self.address = IPv4Interface(address)
        self.bridge = BRIDGE
        self._namespaces: list[str] = []
        self._procs: list[subprocess.Popen] = []
        self._ports = 0
        try:
            self._create(self.name)
            with NetNS(self.name) as ns:
                ns.link("add", ifname=BRIDGE, kind="bridge")
                # Forward immediately: no STP listening delay for booting firmware.
                idx = ns.link_lookup(ifname=BRIDGE)[0]
                ns.link("set", index=idx, br_forward_delay=0)
                # A fixed MAC: a bridge with an inherited one takes the lowest MAC of its
                # ports, so a host joining later could change the appliance's MAC under
                # clients that had already ARPed it; they then lost it until their entry
                # went stale (30-60 s of silence, seen as a DNS "stall" after a DHCP test).
                ns.link("set", index=idx, address=BRIDGE_MAC)
                ns.addr(
                    "add",
                    index=idx,
                    address=str(self.address.ip),
                    prefixlen=self.address.network.prefixlen,
                )
                ns.link("set", index=idx, state="up")
                ns.link("set", index=ns.link_lookup(ifname="lo")[0], state="up")
        except BaseException:
            self.close()
            raise

    def _create(self, name: str) -> None:
        netns.create(name)
        self._namespaces.append(name)

    def _next_port(self, kind: str) -> str:
        self._ports += 1
        return f"{kind}{self._ports}"

    def add_tap(self) -> str:
        """A persistent tap on the bridge, for a QEMU node started in this namespace."""
        tap = self._next_port("nbtap")
        with NetNS(self.name) as ns:
            ns.link("add", ifname=tap, kind="tuntap", mode="tap")
            idx = ns.link_lookup(ifname=tap)[0]
            ns.link("set", index=idx, master=ns.link_lookup(ifname=BRIDGE)[0])
            ns.link("set", index=idx, state="up")
        return tap

    def add_host(self, address: str | None = None) -> LabHost:
        """A second namespace joined to the bridge by a veth pair (a test client host)."""
        host = LabHost(self, f"{self.name}-h{len(self._namespaces)}", address)
        return host

    def popen(
        self,
        args: Sequence[str],
        *,
        namespace: str | None = None,
        stdout: IO[Any] | int | None = None,
        stderr: IO[Any] | int | None = None,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> subprocess.Popen:
        """Start ``args`` inside the lab namespace; it is killed by ``close()``."""
        ns = namespace or self.name
        proc = subprocess.Popen(
            list(args),
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            env=env,
            cwd=cwd,
            preexec_fn=lambda: _enter(ns),
        )
        self._procs.append(proc)
        return proc

    def run(
        self, args: Sequence[str], *, namespace: str | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess:
        proc = self.popen(args, namespace=namespace, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill(proc)
            raise
        return subprocess.CompletedProcess(list(args), proc.returncode, out, err)

    def close(self) -> None:
        for proc in reversed(self._procs):
            _kill(proc)
        self._procs.clear()
        for name in reversed(self._namespaces):
            if name in netns.listnetns():
                netns.remove(name)
        self._namespaces.clear()

    def __enter__(self) -> LabNetwork:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LabHost:
    """A client namespace with one veth port on the lab bridge."""

    def __init__(self, lab: LabNetwork, name: str, address: str | None) -> None:
        self.lab = lab
        self.name = name
        self.interface = "eth0"
        lab._create(name)
        peer = lab._next_port("nbveth")
        with NetNS(lab.name) as ns:
            ns.link(
                "add", ifname=peer, kind="veth", peer={"ifname": self.interface, "net_ns_fd": name}
            )
            idx = ns.link_lookup(ifname=peer)[0]
            ns.link("set", index=idx, master=ns.link_lookup(ifname=BRIDGE)[0])
            ns.link("set", index=idx, state="up")
        with NetNS(name) as ns:
            idx = ns.link_lookup(ifname=self.interface)[0]
            if address:
                iface = IPv4Interface(address)
                ns.addr("add", index=idx, address=str(iface.ip), prefixlen=iface.network.prefixlen)
            ns.link("set", index=idx, state="up")
            ns.link("set", index=ns.link_lookup(ifname="lo")[0], state="up")

    @property
    def mac(self) -> str:
        with NetNS(self.name) as ns:
            link = ns.get_links(ns.link_lookup(ifname=self.interface)[0])[0]
            return link.get("IFLA_ADDRESS")

    def popen(self, args: Sequence[str], **kw: Any) -> subprocess.Popen:
        return self.lab.popen(args, namespace=self.name, **kw)

    def run(self, args: Sequence[str], timeout: float = 60) -> subprocess.CompletedProcess:
        return self.lab.run(args, namespace=self.name, timeout=timeout)


def _kill(proc: subprocess.Popen) -> None:
    """Stop one process we started (its own session, so its children too), by PID."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 5
    while proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        proc.wait(timeout=5)
