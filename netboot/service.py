"""Build the appliance's MultiService from a Config: one named child per listener."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from twisted.application import internet, service
from twisted.logger import Logger

from netboot.bootconfig.scripts import ScriptRenderer
from netboot.bootconfig.tftpfiles import DynamicBootFiles
from netboot.config import Config
from netboot.dhcp.service import DHCPService
from netboot.dns.build import DNSListeners, start_dns
from netboot.http.site import build_site
from netboot.images.cache import ImageCache
from netboot.images.nodeboot import NodeBootFacts
from netboot.images.settings import deploy_settings, images_dir
from netboot.metrics import Metrics
from netboot.nodes.wiring import build_lifecycle
from netboot.power.service import PowerService
from netboot.store.sqlite import SQLiteStore
from netboot.tftp.server import listen_tftp
from netboot.tftp.workers import WorkerPool, worker_argv

log = Logger(namespace="netboot.service")


class _ListenerService(service.Service):
    """Start a listener with ``listen()`` on start, stop it on stop."""

    def __init__(self, name: str, listen: Callable[[], Any]) -> None:
        self.setName(name)
        self._listen = listen
        self._port: Any = None

    def startService(self) -> None:  # noqa: N802 (twisted API name)
        self._port = self._listen()
        super().startService()

    def stopService(self):  # noqa: N802 (twisted API name)
        super().stopService()
        if self._port is not None:
            port, self._port = self._port, None
            return port.stopListening()
        return None


def make_service(
    cfg: Config,
    store: SQLiteStore,
    reactor: Any,
    clock: Callable[[], float] = time.time,
    metrics: Metrics | None = None,
) -> service.MultiService:
    """The whole tree. A reload (netboot/reload.py) builds a second tree with the same
    ``metrics`` so that restarted listeners replace their entries in the served one."""
    top = service.MultiService()
    metrics = metrics if metrics is not None else Metrics(store, clock)
    # Power actions go through one queue (per node/BMC, retried, bounded); it also
    # polls power_state ([power] in the config, netboot/power/).
    power = PowerService(store, reactor, clock, cfg.power)
    power.setServiceParent(top)
    actions, node_timeouts = build_lifecycle(
        store, reactor, clock, cfg.lifecycle, power=power.lookup, deploy=cfg.deploy
    )
    node_timeouts.setServiceParent(top)
    site = build_site(
        store,
        cfg.boot_dir,
        cfg.http_base_url,
        clock,
        reactor=reactor,
        metrics=metrics,
        actions=actions,
        deploy=deploy_settings(cfg),
    )
    # What grub/pxelinux configs need beyond the node's status (netboot/images/nodeboot.py).
    boot_facts = NodeBootFacts(
        store, ImageCache(images_dir(cfg)), cfg.http_base_url, deploy_settings(cfg).domain
    )
    http = internet.TCPServer(cfg.http.port, site, interface=str(cfg.http.bind))
    http.setName("http")
    http.setServiceParent(top)

    def tftp_listen() -> Any:
        port = listen_tftp(
            reactor,
            cfg.boot_dir,
            str(cfg.tftp.bind),
            cfg.tftp.port,
            max_sessions=cfg.tftp.max_sessions,
            max_blksize=cfg.tftp.max_blksize,
            # pxelinux.cfg/01-<mac>, grub/grub.cfg-<mac> from node state; loader probes.
            open_file=DynamicBootFiles(
                store.node_by_mac,
                ScriptRenderer(),
                cfg.http_base_url,
                boot_facts,
                ImageCache(images_dir(cfg)),  # images/boot/...: the installer for grub
            ),
            reuse_port=cfg.tftp.workers > 1,
        )
        metrics.add_tftp("tftp", port.protocol.stats)
        return port

    _ListenerService("tftp", tftp_listen).setServiceParent(top)
    if cfg.tftp.workers > 1:  # extra processes on the same port: more cores for storms
        argv = worker_argv(
            cfg.boot_dir,
            str(cfg.tftp.bind),
            cfg.tftp.port,
            max_sessions=cfg.tftp.max_sessions,
            max_blksize=cfg.tftp.max_blksize,
            database=cfg.database_path,
            http_base=cfg.http_base_url,
        )
        WorkerPool(argv, cfg.tftp.workers - 1).setServiceParent(top)

    if cfg.dhcp is not None:
        dhcp = DHCPService(
            cfg.dhcp,
            cfg.database_path,
            cfg.http_base_url,
            reactor,
            store.node_by_mac,
            clock,
            boot=cfg.boot,
        )
        metrics.add_dhcp(",".join(cfg.dhcp.interfaces), dhcp.stats)
        dhcp.setServiceParent(top)

    if cfg.dns is not None:
        # Authoritative for the node domain, forwarding the rest (netboot/dns/).
        dns_cfg = cfg.dns

        def dns_listen() -> DNSListeners:
            listeners = start_dns(dns_cfg, cfg.server_address, store, reactor)
            metrics.add_dns("resolver", listeners.resolver.stats)
            metrics.add_dns("forwarder", listeners.resolver.forwarder.stats)
            return listeners

        _ListenerService("dns", dns_listen).setServiceParent(top)
    return top
