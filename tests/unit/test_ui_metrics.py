"""netboot.metrics without sockets: the collectors read the protocols' stats objects and
the store; the registry renders in the Prometheus text format, parsed back here with
prometheus_client's own parser."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from netboot.metrics import Metrics
from netboot.nodes.lifecycle import NodeStatus


@dataclass(slots=True)
class FakeTFTPStats:
    transfers_ok: int = 0
    transfers_failed: int = 0
    transfers_aborted: int = 0
    bytes_sent: int = 0
    errors_sent: int = 0


class FakeStore:
    def __init__(self, broken_leases: bool = False) -> None:
        self.broken_leases = broken_leases

    def node_status_counts(self) -> dict[int, int]:
        return {int(NodeStatus.NEW): 3, int(NodeStatus.READY): 1}

    def lease_state_counts(self) -> dict[str, int]:
        if self.broken_leases:
            raise RuntimeError("no such table: leases")
        return {"active": 2, "released": 1}

    def leases_held(self, now: float) -> int:
        return 2


def samples(metrics: Metrics) -> dict[tuple[str, tuple], float]:
    text = generate_latest(metrics.registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_protocol_counters_are_read_at_scrape_time():
    metrics = Metrics(FakeStore(), lambda: 0.0, process=False)
    dhcp: Counter[str] = Counter()
    tftp = FakeTFTPStats()
    metrics.add_dhcp("br-prov", dhcp)
    metrics.add_tftp("tftp", tftp)
    metrics.add_dns("resolver", Counter(authoritative=4))
    dhcp["sent_offer"] += 2
    tftp.transfers_ok += 1
    tftp.bytes_sent += 1468
    got = samples(metrics)
    labels = (("interface", "br-prov"), ("outcome", "sent_offer"))
    assert got[("netboot_dhcp_messages_total", labels)] == 2
    ok = (("listener", "tftp"), ("result", "ok"))
    assert got[("netboot_tftp_transfers_total", ok)] == 1
    assert got[("netboot_tftp_bytes_sent_total", (("listener", "tftp"),))] == 1468
    dns = (("counter", "authoritative"), ("listener", "resolver"))
    assert got[("netboot_dns_events_total", dns)] == 4
    dhcp["sent_offer"] += 1  # the next scrape sees the live object
    assert samples(metrics)[("netboot_dhcp_messages_total", labels)] == 3


def test_a_restarted_listener_replaces_its_stats():
    metrics = Metrics(FakeStore(), lambda: 0.0, process=False)
    metrics.add_tftp("tftp", FakeTFTPStats(transfers_ok=5))
    metrics.add_tftp("tftp", FakeTFTPStats(transfers_ok=1))
    ok = (("listener", "tftp"), ("result", "ok"))
    assert samples(metrics)[("netboot_tftp_transfers_total", ok)] == 1


def test_node_gauges_cover_every_status_and_lease_gauges_every_state():
    got = samples(Metrics(FakeStore(), lambda: 0.0, process=False))
    assert got[("netboot_nodes", (("status", "new"),))] == 3
    assert got[("netboot_nodes", (("status", "ready"),))] == 1
    assert all(("netboot_nodes", (("status", s.name.lower()),)) in got for s in NodeStatus)
    assert got[("netboot_dhcp_leases", (("state", "active"),))] == 2
    assert got[("netboot_dhcp_leases", (("state", "declined"),))] == 0
    assert got[("netboot_dhcp_addresses_held", ())] == 2


def test_a_failing_store_read_costs_only_its_own_gauges():
    got = samples(Metrics(FakeStore(broken_leases=True), lambda: 0.0, process=False))
    assert got[("netboot_nodes", (("status", "new"),))] == 3
    assert not any(name.startswith("netboot_dhcp_leases") for name, _ in got)


def test_a_reloaded_dhcp_service_replaces_the_old_interface_series():
    metrics = Metrics(FakeStore(), lambda: 0.0, process=False)
    metrics.add_dhcp("br0", Counter(sent_offer=5))
    metrics.add_dhcp("br0,br1", Counter(sent_offer=1))
    got = samples(metrics)
    assert (
        "netboot_dhcp_messages_total",
        (("interface", "br0"), ("outcome", "sent_offer")),
    ) not in got
    assert (
        got[("netboot_dhcp_messages_total", (("interface", "br0,br1"), ("outcome", "sent_offer")))]
        == 1
    )


def test_http_requests_are_counted_by_area_with_a_bounded_label_set():
    metrics = Metrics(FakeStore(), lambda: 0.0, process=False)

    class Req:
        def __init__(self, path: bytes, method: bytes = b"GET", code: int = 200) -> None:
            self.path, self.method, self.code, self.sentLength = path, method, code, 10

    for path in (b"/ui/", b"/ui/nodes/x", b"/MAAS/api/2.0/", b"/", b"/wp-admin/x", b"/etc/passwd"):
        metrics.observe_request(Req(path))
    metrics.observe_request(Req(b"/ui/", b"BREW", 405))
    got = samples(metrics)
    count = "netboot_http_requests_total"
    assert got[(count, (("area", "ui"), ("code", "200"), ("method", "GET")))] == 2
    assert got[(count, (("area", "MAAS"), ("code", "200"), ("method", "GET")))] == 1
    assert got[(count, (("area", "root"), ("code", "200"), ("method", "GET")))] == 1
    assert got[(count, (("area", "other"), ("code", "200"), ("method", "GET")))] == 2
    assert got[(count, (("area", "ui"), ("code", "405"), ("method", "other")))] == 1
    assert got[("netboot_http_response_bytes_total", (("area", "ui"),))] == 30
