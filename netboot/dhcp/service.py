"""The DHCP service: controller, one listener per interface (and 4011 in proxy mode),
lease reclaim, ARP conflict probes and the rogue-DHCP detector, started and stopped as
one twisted Service."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from twisted.application import service
from twisted.internet import threads
from twisted.internet.defer import DeferredList
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from netboot.dhcp.arp import ArpProber, Neighbours
from netboot.dhcp.replies import SERVER_PORT
from netboot.dhcp.rogue import RogueDetector
from netboot.dhcp.server import PXE_PORT, DHCPServer
from netboot.dhcp.settings import DHCPConfig
from netboot.dhcp.sockets import DHCPProtocol, listen_dhcp
from netboot.store.leases import LeaseStore

__all__ = ["DHCPService", "NodeNames"]

log = Logger(namespace="netboot.dhcp")
NAMES_REFRESH_SECONDS = 5.0  # node names and DHCP pins from the store
CHECKPOINT_SECONDS = 2.0  # WAL checkpoints off the packet path (store/leases.py)


class NodeNames:
    """MAC -> node hostname, held in memory and refreshed every few seconds from the
    store (option 12 and the lease's hostname need it; the packet path runs no SQL)."""

    def __init__(self, load: Callable[[], dict[str, str]]) -> None:
        self._load = load
        self._names: dict[str, str] = {}

    def refresh(self) -> None:
        try:
            self._names = self._load()
        except Exception as exc:  # a locked or migrating store: keep the last map
            log.info("node names not refreshed: {error}", error=repr(exc))

    def __call__(self, mac: str) -> str | None:
        return self._names.get(mac)


class DHCPService(service.Service):
    def __init__(
        self,
        cfg: DHCPConfig,
        database: Path,
        http_base: str,
        reactor: Any,
        node_by_mac: Callable[[str], Any] = lambda mac: None,  # unused: see NodeNames
        clock: Callable[[], float] = time.time,
        boot: Any = None,
    ) -> None:
        self.setName("dhcp")
        self.boot = boot  # bootconfig.settings.BootConfig: loader per firmware
        self.cfg = cfg
        self.database = database
        self.http_base = http_base
        self.reactor = reactor
        self.node_by_mac = node_by_mac
        self.clock = clock
        self.server: DHCPServer | None = None
        self.stats: Counter[str] = Counter()  # shared with the controller, for /metrics
        self._ports: list[Any] = []
        self._loops: list[LoopingCall] = []
        self._prober: ArpProber | None = None
        self._neighbours: Neighbours | None = None
        self._rogue: RogueDetector | None = None
        self._store: LeaseStore | None = None
        self._checkpoint: Any = None

    def startService(self) -> None:  # noqa: N802 (twisted API)
        cfg = self.cfg
        server, names = self._build_server()
        try:
            for iface in cfg.interfaces:
                self._ports.append(listen_dhcp(self.reactor, DHCPProtocol(server, iface)))
                if cfg.proxy:
                    proto = DHCPProtocol(server, iface, pxe_port=True)
                    self._ports.append(listen_dhcp(self.reactor, proto, PXE_PORT))
        except Exception:
            self._close_ports()
            raise
        if cfg.conflict_probe and not cfg.proxy:
            self._prober = ArpProber(self.reactor, list(cfg.interfaces), server.conflict)
            server.prober = self._prober

        store = self._store

        def refresh_from_store() -> None:
            names.refresh()
            try:
                server.subnets.set_pins(store.pins())
            except Exception as exc:  # keep the last pins
                log.info("DHCP pins not refreshed: {error}", error=repr(exc))

        refresher = LoopingCall(refresh_from_store)
        refresher.clock = self.reactor
        refresher.start(NAMES_REFRESH_SECONDS, now=True)
        self._loops.append(refresher)

        def checkpoint():
            d = threads.deferToThreadPool(
                self.reactor, self.reactor.getThreadPool(), store.checkpoint
            ).addErrback(lambda f: log.info("WAL checkpoint failed: {f}", f=f.value))
            self._checkpoint = d  # stopService waits for it before closing the store
            return d

        checkpoints = LoopingCall(checkpoint)
        checkpoints.clock = self.reactor
        checkpoints.start(CHECKPOINT_SECONDS, now=False)
        self._loops.append(checkpoints)
        reclaim = LoopingCall(server.reclaim)
        reclaim.clock = self.reactor
        reclaim.start(cfg.reclaim_seconds, now=True)
        self._loops.append(reclaim)
        if cfg.rogue_probe_seconds and not cfg.proxy:
            self._rogue = RogueDetector(
                self.reactor,
                cfg.interfaces,
                {str(s.server_id) for s in cfg.subnets},
                cfg.rogue_probe_seconds,
                server.alarm,
                self.clock,
            )
            self._rogue.start()
        log.info(
            "DHCP {mode} on {ifaces} (port {port}): {n} subnets, {leases} leases",
            mode=cfg.mode,
            ifaces=",".join(cfg.interfaces),
            port=SERVER_PORT,
            n=len(cfg.subnets),
            leases=len(server.table),
        )
        super().startService()

    def _build_server(self) -> tuple[DHCPServer, NodeNames]:
        """The controller and its store, from the configuration (no sockets yet)."""
        self._store = LeaseStore(self.database)
        self._neighbours = Neighbours()
        names = NodeNames(self._store.node_names)
        self.server = DHCPServer(
            self.cfg,
            self.http_base,
            self._store,
            self.reactor,
            self.clock,
            hostname_for=names,
            neighbours=self._neighbours,
            stats=self.stats,
            boot=self.boot,
            commit_mode=self.cfg.commit,
        )
        return self.server, names

    def _close_ports(self) -> list:
        stopping = [p.stopListening() for p in self._ports]
        self._ports.clear()
        return [d for d in stopping if d is not None]

    def stopService(self):  # noqa: N802 (twisted API)
        super().stopService()
        for loop in self._loops:
            if loop.running:
                loop.stop()
        self._loops.clear()
        if self._rogue is not None:
            self._rogue.stop()
        if self._prober is not None:
            self._prober.close()
        waits = self._close_ports()
        if self._checkpoint is not None and not self._checkpoint.called:
            waits.append(self._checkpoint)
        if self.server is not None:
            waits.append(self.server.committer.stop())

        def _closed(result: object) -> object:
            if self._store is not None:
                self._store.close()
            if self._neighbours is not None:
                self._neighbours.close()
            return result

        return DeferredList(waits).addBoth(_closed)
