"""Assemble the DNS service from its parts: one Resolver per process, then listeners."""

from __future__ import annotations

import os
from dataclasses import replace
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any

from twisted.internet import defer
from twisted.internet.error import CannotListenError

from netboot.dns.acl import RecursionAcl
from netboot.dns.cache import Cache, WireIndex
from netboot.dns.forwarder import Forwarder
from netboot.dns.live import DNSSource, LiveZones
from netboot.dns.resolver import Resolver
from netboot.dns.server import DNSDatagramProtocol, DNSStreamFactory, listen_dns
from netboot.dns.settings import DNSConfig, Upstream
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
    forwarder = Forwarder(
        reactor,
        cfg.upstreams,
        cfg.forward_zones,
        timeout=cfg.upstream_timeout,
        hold_down=cfg.hold_down,
    )
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
    start ``cfg.workers`` extra processes on the same port.

    Workers keep their own caches in front of this process's: their upstream is a
    private loopback listener here, so a name missed by a worker is usually a hit here,
    and the real upstreams see one query per name, not one per process."""
    resolver = make_resolver(cfg, server_address, store, reactor)
    ports = listen(reactor, resolver, cfg)
    workers = None
    if cfg.workers > 0:
        front, port = _listen_for_workers(reactor, resolver, cfg)
        ports += front
        attempts = 1 + len(cfg.upstreams) + max((len(u) for _, u in cfg.forward_zones), default=0)
        worker_cfg = replace(
            cfg,
            upstreams=(Upstream(IPv4Address("127.0.0.1"), port),),
            forward_zones=(),
            upstream_timeout=min(30.0, cfg.upstream_timeout * attempts + 1.0),
            hold_down=False,
        )
        spec = WorkerSpec(worker_cfg, server_address, Path(store.path), os.getpid())
        workers = WorkerPool(reactor, spec, cfg.workers)
        workers.start()
    return DNSListeners(ports, workers, resolver=resolver)


def _listen_for_workers(reactor: Any, resolver: Resolver, cfg: DNSConfig) -> tuple[list, int]:
    """UDP + TCP on 127.0.0.1:<free port>, answering recursion for loopback only, with
    this process's cache, in-flight table aside, and forwarder."""
    shared = Resolver(
        zones=resolver.zones,
        acl=RecursionAcl([IPv4Network("127.0.0.0/8")]),
        cache=resolver.cache,
        index=WireIndex(cfg.cache_size),
        forwarder=resolver.forwarder,
        clock=reactor.seconds,
    )
    last: Exception | None = None
    for _ in range(20):  # the UDP port must also be free on TCP
        udp = reactor.listenUDP(0, DNSDatagramProtocol(shared, reactor.seconds), "127.0.0.1")
        port = udp.getHost().port
        try:
            tcp = reactor.listenTCP(port, DNSStreamFactory(shared, reactor), interface="127.0.0.1")
        except CannotListenError as exc:
            last = exc
            udp.stopListening()
            continue
        return [udp, tcp], port
    raise RuntimeError(f"no free loopback port for the DNS workers: {last}")
