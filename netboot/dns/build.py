"""Assemble the DNS service from its parts: one Resolver per process, then listeners."""

from __future__ import annotations

from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

from twisted.internet import defer

from netboot.dns.acl import RecursionAcl
from netboot.dns.cache import Cache, WireIndex
from netboot.dns.forwarder import Forwarder
from netboot.dns.live import DNSSource, LiveZones
from netboot.dns.resolver import Resolver
from netboot.dns.server import listen_dns
from netboot.dns.settings import DNSConfig
from netboot.dns.worker import WorkerPool, WorkerSpec
from netboot.dns.zone import ZoneSettings


def make_resolver(
    cfg: DNSConfig, server_address: IPv4Address, store: DNSSource, reactor: Any
) -> Resolver:
    settings = ZoneSettings(
        domain=cfg.domain,
        server_address=server_address,
        subnets=cfg.reverse_subnets,
        ttl=cfg.ttl,
        static_records=cfg.records,
    )
    forwarder = Forwarder(reactor, cfg.upstreams, cfg.forward_zones, timeout=cfg.upstream_timeout)
    return Resolver(
        zones=LiveZones(store, settings, reactor.seconds),
        acl=RecursionAcl(cfg.allow_recursion),
        cache=Cache(cfg.cache_size),
        index=WireIndex(cfg.cache_size),
        forwarder=forwarder,
        clock=reactor.seconds,
    )


def listen(reactor: Any, resolver: Resolver, cfg: DNSConfig) -> list[Any]:
    return listen_dns(reactor, resolver, str(cfg.bind), cfg.port, reuse_port=cfg.workers > 0)


class DNSListeners:
    """The UDP and TCP ports of one DNS service (and its workers), stopped together;
    ``resolver`` is the main process's, for its stats (/metrics)."""

    def __init__(
        self, ports: list[Any], workers: WorkerPool | None = None, resolver: Any = None
    ) -> None:
        self.ports = ports
        self.workers = workers
        self.resolver = resolver

    def stopListening(self) -> Any:  # noqa: N802 (the name _ListenerService calls)
        if self.workers is not None:
            self.workers.stop()
        return defer.DeferredList([defer.maybeDeferred(p.stopListening) for p in self.ports])


def start_dns(
    cfg: DNSConfig, server_address: IPv4Address, store: Any, reactor: Any
) -> DNSListeners:
    """Build the resolver and bind its listeners (called when the service starts); then
    start ``cfg.workers`` extra processes on the same port."""
    resolver = make_resolver(cfg, server_address, store, reactor)
    ports = listen(reactor, resolver, cfg)
    workers = None
    if cfg.workers > 0:
        workers = WorkerPool(
            reactor, WorkerSpec(cfg, server_address, Path(store.path)), cfg.workers
        )
        workers.start()
    return DNSListeners(ports, workers, resolver)
