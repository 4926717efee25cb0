"""Prometheus metrics at ``/metrics`` (prometheus-client, text or OpenMetrics format).

The protocols keep their own plain stats objects (the DHCP server's ``stats`` Counter,
the TFTP server's ``TFTPStats``, the DNS server's counters); ``service.py`` hands them
to ``Metrics`` and the collectors here read them at scrape time, so the hot paths only
ever increment an int. HTTP requests are counted by ``MetricsSite`` when each response
finishes; node and lease counts come from the store, one query each per scrape.

Everything is collected in the reactor thread (``MetricsResource`` renders
synchronously), so no collector reads a Counter while the reactor is changing it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.process_collector import ProcessCollector
from twisted.logger import Logger
from twisted.web import resource, server
from twisted.web.server import Request

from netboot.dhcp.leases import State as LeaseState
from netboot.nodes.lifecycle import NodeStatus

log = Logger(namespace="netboot.metrics")

# First path segments counted under their own name; anything else is "other", so a
# scanner walking random URLs cannot blow up the label set.
HTTP_AREAS = frozenset({"boot", "api", "MAAS", "metadata", "ui", "metrics", "preseeds", "images"})
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})


class StatsSources:
    """The live stats objects of the running listeners, keyed by listener name (a
    restarted listener replaces its entry; Prometheus handles the counter reset)."""

    def __init__(self) -> None:
        self.dhcp: dict[str, Mapping[str, int]] = {}
        self.tftp: dict[str, Any] = {}
        self.dns: dict[str, Any] = {}


def _int_fields(stats: Any) -> dict[str, int]:
    """Counters of a stats object: a Mapping's items, or a dataclass's int fields."""
    if isinstance(stats, Mapping):
        return {str(k): int(v) for k, v in list(stats.items())}
    if dataclasses.is_dataclass(stats):
        return {
            f.name: int(getattr(stats, f.name))
            for f in dataclasses.fields(stats)
            if isinstance(getattr(stats, f.name), int)
        }
    return {k: int(v) for k, v in vars(stats).items() if isinstance(v, int)}


class ProtocolCollector:
    """DHCP, TFTP and DNS counters, read from the protocols' own stats objects."""

    def __init__(self, sources: StatsSources) -> None:
        self.sources = sources

    def collect(self) -> Iterator[Metric]:
        dhcp = CounterMetricFamily(
            "netboot_dhcp_messages",
            "The DHCP server's counters, by interface(s) and outcome (its stats keys: "
            "sent_offer, sent_ack, sent_nak, dropped_malformed, conflicts, ...)",
            labels=["interface", "outcome"],
        )
        for iface, stats in sorted(self.sources.dhcp.items()):
            for outcome, value in sorted(_int_fields(stats).items()):
                dhcp.add_metric([iface, outcome], value)
        yield dhcp

        transfers = CounterMetricFamily(
            "netboot_tftp_transfers",
            "TFTP transfers finished, by result (aborted: the client sent an ERROR)",
            labels=["listener", "result"],
        )
        others: dict[str, CounterMetricFamily] = {}
        for name, stats in sorted(self.sources.tftp.items()):
            for field, value in sorted(_int_fields(stats).items()):
                if field.startswith("transfers_"):
                    transfers.add_metric([name, field.removeprefix("transfers_")], value)
                    continue
                family = others.get(field)
                if family is None:
                    family = others[field] = CounterMetricFamily(
                        f"netboot_tftp_{field}",
                        f"TFTP {field.replace('_', ' ')}",
                        labels=["listener"],
                    )
                family.add_metric([name], value)
        yield transfers
        yield from others.values()

        if self.sources.dns:
            dns = CounterMetricFamily(
                "netboot_dns_events", "DNS server counters, by name", labels=["listener", "counter"]
            )
            for name, stats in sorted(self.sources.dns.items()):
                for field, value in sorted(_int_fields(stats).items()):
                    dns.add_metric([name, field], value)
            yield dns


class StoreCollector:
    """Per-status node counts and per-state lease rows, from the store at scrape time.
    A failing read costs its own gauges (with a log line), never the whole scrape."""

    def __init__(self, store: Any, clock: Callable[[], float]) -> None:
        self.store = store
        self.clock = clock

    def collect(self) -> Iterator[Metric]:
        for part in (self._nodes, self._leases):
            try:
                families = list(part())
            except Exception:
                log.failure("metrics: reading the store failed in {part}", part=part.__name__)
                continue
            yield from families

    def _nodes(self) -> Iterator[Metric]:
        counts = self.store.node_status_counts()
        nodes = GaugeMetricFamily(
            "netboot_nodes", "Nodes in each lifecycle status (MAAS numbering)", labels=["status"]
        )
        for status in NodeStatus:
            nodes.add_metric([status.name.lower()], counts.get(int(status), 0))
        yield nodes

    def _leases(self) -> Iterator[Metric]:
        by_state = self.store.lease_state_counts()
        leases = GaugeMetricFamily(
            "netboot_dhcp_leases", "DHCP lease table rows, by lease state", labels=["state"]
        )
        for state in sorted({s.value for s in LeaseState} | set(by_state)):
            leases.add_metric([state], by_state.get(state, 0))
        yield leases
        yield GaugeMetricFamily(
            "netboot_dhcp_addresses_held",
            "Addresses held now (active, declined or conflicting leases not yet expired)",
            value=self.store.leases_held(self.clock()),
        )


class Metrics:
    """The appliance's registry (its own, not prometheus-client's global one)."""

    def __init__(self, store: Any, clock: Callable[[], float], process: bool = True) -> None:
        self.registry = CollectorRegistry()
        self.sources = StatsSources()
        self.http_requests = Counter(
            "netboot_http_requests",
            "HTTP requests answered, by area (first path segment), method and status code",
            ["area", "method", "code"],
            registry=self.registry,
        )
        self.http_bytes = Counter(
            "netboot_http_response_bytes",
            "HTTP response body bytes sent, by area",
            ["area"],
            registry=self.registry,
        )
        self.registry.register(ProtocolCollector(self.sources))
        self.registry.register(StoreCollector(store, clock))
        if process:
            ProcessCollector(registry=self.registry)

    # -- hand-over from service.py -----------------------------------------------------

    def add_dhcp(self, interfaces: str, stats: Mapping[str, int]) -> None:
        """The DHCP service's counters (one service per process: a reload that changes
        its interfaces replaces the old series instead of freezing it)."""
        self.sources.dhcp = {interfaces: stats}

    def add_tftp(self, name: str, stats: Any) -> None:
        self.sources.tftp[name] = stats

    def add_dns(self, name: str, stats: Any) -> None:
        self.sources.dns[name] = stats

    # -- HTTP ----------------------------------------------------------------------------

    def observe_request(self, request: Request) -> None:
        segments = (request.path or b"/").split(b"/")
        first = segments[1].decode("latin-1") if len(segments) > 1 else ""
        area = first if first in HTTP_AREAS else ("root" if first == "" else "other")
        method = request.method.decode("latin-1") if request.method else "?"
        self.http_requests.labels(
            area, method if method in HTTP_METHODS else "other", str(request.code)
        ).inc()
        self.http_bytes.labels(area).inc(getattr(request, "sentLength", 0) or 0)

    def resource(self) -> MetricsResource:
        return MetricsResource(self.registry)

    def site(self, root: resource.Resource) -> MetricsSite:
        return MetricsSite(root, self)


class MetricsResource(resource.Resource):
    """``GET /metrics``: render the registry in the reactor thread."""

    isLeaf = True

    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__()
        self.registry = registry

    def render_GET(self, request: Request) -> bytes:
        accept = (request.getHeader(b"accept") or b"").decode("latin-1")
        encoder, content_type = choose_encoder(accept)
        request.setHeader(b"content-type", content_type.encode("latin-1"))
        request.setHeader(b"cache-control", b"no-store")
        return encoder(self.registry)


class MetricsSite(server.Site):
    """A Site that counts every finished request in ``metrics``."""

    def __init__(self, root: resource.Resource, metrics: Metrics, **kw: Any) -> None:
        super().__init__(root, **kw)
        self.metrics = metrics

    def log(self, request: Request) -> None:
        try:
            self.metrics.observe_request(request)
        except Exception:  # counting must never cost a response
            log.failure("metrics: counting a request failed")
        super().log(request)
