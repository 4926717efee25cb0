"""Prometheus /metrics on the appliance in a lab namespace: real clients (dhclient,
scapy DISCOVERs, tftp-hpa, curl) generate traffic, then /metrics is scraped with curl
from the client namespace and parsed with prometheus_client's own text parser."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from netboot.lab.appliance import LabAppliance
from netboot.lab.netns import LabHost, LabNetwork
from tests.conftest import require_root

PROBE = Path(__file__).with_name("dhcp_probe.py")
pytestmark = pytest.mark.netns


@dataclass
class MetricsLab:
    lab: LabNetwork
    app: LabAppliance
    client: LabHost


@pytest.fixture(scope="module")
def mlab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MetricsLab]:
    """One appliance for the module: the tests below run in order on its counters."""
    require_root()
    work = tmp_path_factory.mktemp("metrics")
    boot = work / "boot"
    boot.mkdir()
    (boot / "undionly.kpxe").write_bytes(os.urandom(70_000))
    (boot / "vmlinuz").write_bytes(os.urandom(1_000_000))
    with LabNetwork(prefix="nbmet") as lab:
        app = LabAppliance(lab, work / "appliance", boot).start()
        try:
            app.wait_ready(60)
            yield MetricsLab(lab, app, lab.add_host("10.66.0.50/24"))
        finally:
            app.stop()


def scrape(host: LabHost, app: LabAppliance) -> dict[tuple[str, tuple], float]:
    """``{(sample name, sorted label items): value}`` of one scrape."""
    result = host.run(["curl", "-sS", "--max-time", "10", f"{app.http_base}/metrics"])
    assert result.returncode == 0, result.stderr
    samples = {}
    for family in text_string_to_metric_families(result.stdout.decode()):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples: dict, name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    assert key in samples, f"{name}{labels} not exported; have: " + ", ".join(
        sorted({k[0] for k in samples})
    )
    return samples[key]


def dhclient_lease(host: LabHost, workdir: Path) -> None:
    lease_file = workdir / "dhclient.leases"
    proc = host.popen(
        ["dhclient", "-d", "-4", "-1", "-lf", str(lease_file), "-pf", str(workdir / "dhc.pid")]
        + ["-sf", "/bin/true", host.interface],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            if lease_file.exists() and "fixed-address" in lease_file.read_text():
                return
            time.sleep(0.2)
        raise AssertionError("dhclient got no lease within 60 s")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_metrics_count_dhcp_tftp_http_and_nodes(mlab: MetricsLab):
    lab, appliance, client = mlab.lab, mlab.app, mlab.client
    dhcp_host = lab.add_host()  # no address: it asks for one
    interface = lab.bridge  # the only DHCP interface of the lab appliance

    before = scrape(client, appliance)
    assert value(before, "netboot_nodes", status="new") == 0
    assert value(before, "netboot_tftp_transfers_total", listener="tftp", result="ok") == 0

    # DHCP: two PXE DISCOVERs (OFFER each, no lease) and one full dhclient exchange.
    for arch in (0, 7):
        result = client.run(
            [
                sys.executable,
                str(PROBE),
                "--arch",
                str(arch),
                "--vendor-class",
                f"PXEClient:Arch:0000{arch}:UNDI:002001",
            ],
            timeout=30,
        )
        assert result.returncode == 0, result.stdout + result.stderr
    dhclient_lease(dhcp_host, appliance.workdir)

    # TFTP: one whole file with tftp-hpa. HTTP: a boot file, a 404, an enlistment.
    dest = appliance.workdir / "got.kpxe"
    tftp = client.run(
        ["tftp", "10.66.0.1", "-m", "binary", "-c", "get", "undionly.kpxe", str(dest)], timeout=60
    )
    assert tftp.returncode == 0 and dest.stat().st_size == 70_000, tftp.stderr
    for path in ("/boot/files/vmlinuz", "/boot/files/nope"):
        client.run(["curl", "-sS", "-o", "/dev/null", f"{appliance.http_base}{path}"])
    body = json.dumps(
        {"boot_mac": "52:54:00:00:00:99", "cpu": {"count": 1}, "memory": {"total_mib": 256}}
    )
    enlist = client.run(["curl", "-sS", "--data-binary", body, f"{appliance.http_base}/api/enlist"])
    assert enlist.returncode == 0 and b"system_id" in enlist.stdout, enlist.stdout

    # DNS: one authoritative question (the node domain), answered NXDOMAIN.
    dig = client.run(["dig", "+short", "+tries=1", "+time=5", "@10.66.0.1", "nobody.maas.lan"])
    assert dig.returncode == 0, dig.stdout + dig.stderr

    after = scrape(client, appliance)
    assert value(
        after, "netboot_dns_events_total", listener="resolver", counter="authoritative"
    ) == (
        before.get(
            ("netboot_dns_events_total", (("counter", "authoritative"), ("listener", "resolver"))),
            0,
        )
        + 1
    )
    dhcp = {
        dict(labels)["outcome"]: v
        for (name, labels), v in after.items()
        if name == "netboot_dhcp_messages_total" and dict(labels)["interface"] == interface
    }
    # 2 PXE DISCOVERs + dhclient's DISCOVER are offered; dhclient's REQUEST is acked.
    assert dhcp.get("sent_offer") == 3, dhcp
    assert dhcp.get("sent_ack") == 1, dhcp
    assert value(after, "netboot_dhcp_leases", state="active") == 1
    assert value(after, "netboot_dhcp_addresses_held") == 1

    assert value(after, "netboot_tftp_transfers_total", listener="tftp", result="ok") == 1
    assert value(after, "netboot_tftp_bytes_sent_total", listener="tftp") >= 70_000
    # A file from the boot directory goes through the C data loop in `netboot serve`.
    assert value(after, "netboot_tftp_fastpath_transfers_total", listener="tftp") == 1

    http = "netboot_http_requests_total"
    assert value(after, http, area="boot", method="GET", code="200") == 1
    assert value(after, http, area="boot", method="GET", code="404") == 1
    assert value(after, http, area="api", method="POST", code="201") == 1
    # The earlier scrape was counted when it finished; this one is still running.
    assert value(after, http, area="metrics", method="GET", code="200") == 1
    assert value(after, "netboot_http_response_bytes_total", area="boot") >= 1_000_000

    assert value(after, "netboot_nodes", status="new") == 1
    assert value(after, "netboot_nodes", status="ready") == 0
    assert value(after, "process_resident_memory_bytes") > 0


def test_node_counts_follow_a_cli_action(mlab: MetricsLab):
    appliance, client = mlab.app, mlab.client
    body = json.dumps(
        {"boot_mac": "52:54:00:00:00:42", "cpu": {"count": 1}, "memory": {"total_mib": 256}}
    )
    client.run(["curl", "-sS", "--data-binary", body, f"{appliance.http_base}/api/enlist"])
    before = scrape(client, appliance)
    result = appliance.netboot("nodes", "commission", "52:54:00:00:00:42")
    assert result.returncode == 0, result.stderr
    after = scrape(client, appliance)
    for status, change in (("new", -1), ("commissioning", +1), ("ready", 0)):
        was = value(before, "netboot_nodes", status=status)
        assert value(after, "netboot_nodes", status=status) == was + change, status


def test_metrics_speaks_openmetrics_when_asked(mlab: MetricsLab):
    appliance, client = mlab.app, mlab.client
    result = client.run(
        [
            "curl",
            "-sS",
            "-i",
            "-H",
            "Accept: application/openmetrics-text; version=1.0.0",
            f"{appliance.http_base}/metrics",
        ]
    )
    text = result.stdout.decode()
    assert "content-type: application/openmetrics-text" in text.lower()
    assert text.rstrip().endswith("# EOF")
