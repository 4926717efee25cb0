"""Pure parts of running netboot as a service: sd_notify messages, the reload plan,
`netboot init`'s choices and `netboot status`'s verdict."""

from __future__ import annotations

import os
import socket
import tomllib
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from pathlib import Path

import pytest

from netboot.config import parse_config
from netboot.init_config import (
    InitError,
    InterfaceFacts,
    choose_range,
    nameservers,
    render_config,
    run_init,
)
from netboot.reload import plan_reload, reload_refusal, service_keys
from netboot.sdnotify import Notifier, encode_state
from netboot.status import assess

# -- sd_notify -------------------------------------------------------------------------


def _receiver(address) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.settimeout(5)
    return sock


def test_ready_is_one_datagram_with_ready_and_status(tmp_path: Path):
    path = tmp_path / "notify"
    with _receiver(str(path)) as sock:
        assert Notifier(str(path)).ready("serving http") is True
        assert sock.recv(4096) == b"READY=1\nSTATUS=serving http"


def test_abstract_socket_address_is_written_with_at_sign():
    name = f"netboot-test-{os.getpid()}"
    with _receiver(b"\0" + name.encode()) as sock:
        Notifier.from_environ({"NOTIFY_SOCKET": "@" + name}).stopping()
        assert sock.recv(4096) == b"STOPPING=1\nSTATUS=stopping"


def test_reloading_carries_monotonic_usec(tmp_path: Path):
    path = tmp_path / "notify"
    with _receiver(str(path)) as sock:
        Notifier(str(path)).reloading()
        fields = dict(line.split("=", 1) for line in sock.recv(4096).decode().splitlines())
    assert fields["RELOADING"] == "1" and int(fields["MONOTONIC_USEC"]) > 0


def test_without_notify_socket_nothing_is_sent():
    notifier = Notifier.from_environ({})
    assert notifier.enabled is False and notifier.ready("x") is False and notifier.sent == []


def test_a_vanished_socket_is_logged_not_raised(tmp_path: Path):
    assert Notifier(str(tmp_path / "gone")).ready("x") is False


def test_newline_in_status_cannot_inject_a_field():
    assert encode_state(STATUS="a\nREADY=1") == b"STATUS=a READY=1"


# -- reload plan -----------------------------------------------------------------------


def test_plan_keeps_unchanged_restarts_changed_adds_and_removes():
    plan = plan_reload({"http": 1, "tftp": 2, "dhcp": 3}, {"http": 1, "tftp": 9, "dns": 4})
    assert plan.keep == ("http",)
    assert plan.stop == ("tftp", "dhcp")
    assert plan.start == ("tftp", "dns")
    assert plan.changed


def test_plan_for_identical_keys_changes_nothing():
    plan = plan_reload({"http": 1}, {"http": 1})
    assert plan.keep == ("http",) and not plan.changed


def _cfg(range_end: str = "10.66.0.199", state_dir: str = "/var/lib/netboot", **http):
    return parse_config(_raw(range_end, state_dir, **http))


def _raw(range_end: str = "10.66.0.199", state_dir: str = "/var/lib/netboot", **http):
    return {
        "server_address": "10.66.0.1",
        "state_dir": state_dir,
        "boot_dir": "/srv/boot",
        "http": http,
        "dhcp": {
            "interfaces": ["eth1"],
            "subnet": "10.66.0.0/24",
            "range_start": "10.66.0.100",
            "range_end": range_end,
        },
        "dns": {"upstreams": []},
    }


NAMES = ["http", "tftp", "dhcp", "dns", "power", "node-timeouts"]


def test_a_new_dhcp_range_touches_only_dhcp():
    plan = plan_reload(service_keys(_cfg(), NAMES), service_keys(_cfg("10.66.0.150"), NAMES))
    assert plan.start == ("dhcp",)
    assert set(plan.keep) == {"http", "tftp", "dns", "power", "node-timeouts"}


def test_a_new_http_port_restarts_everything_that_hands_out_urls():
    plan = plan_reload(service_keys(_cfg(), NAMES), service_keys(_cfg(port=8080), NAMES))
    assert set(plan.start) == {"http", "tftp", "dhcp", "power", "node-timeouts"}
    assert plan.keep == ("dns",)


def test_tftp_settings_restart_the_tftp_listener_and_its_worker_processes():
    names = [*NAMES, "tftp-workers"]
    old = parse_config({**_raw(), "tftp": {"max_blksize": 1468}})
    new = parse_config({**_raw(), "tftp": {"max_blksize": 1024}})
    plan = plan_reload(service_keys(old, names), service_keys(new, names))
    assert set(plan.start) == {"tftp", "tftp-workers"}


def test_services_outside_the_protocol_tables_restart_on_other_changes():
    # [power], [lifecycle], [images]... are shared through node actions: restart together.
    old, new = _cfg(), _cfg(state_dir="/srv/elsewhere")
    plan = plan_reload(
        service_keys(old, NAMES + ["someday"]), service_keys(new, NAMES + ["someday"])
    )
    assert set(plan.start) == {"http", "dhcp", "power", "node-timeouts", "someday"}
    assert set(plan.keep) == {"tftp", "dns"}


def test_moving_the_store_needs_a_restart():
    assert reload_refusal(_cfg(), _cfg()) is None
    why = reload_refusal(_cfg(), _cfg(state_dir="/srv/other"))
    assert why is not None and "restart" in why and "/srv/other" in why


# -- netboot init ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("own", "gateway", "expected"),
    [
        ("10.66.0.1/24", None, ("10.66.0.128", "10.66.0.254")),
        ("10.66.0.200/24", None, ("10.66.0.128", "10.66.0.199")),
        ("10.66.0.140/24", "10.66.0.254", ("10.66.0.141", "10.66.0.253")),
        ("192.168.8.1/22", None, ("192.168.10.0", "192.168.11.254")),
        ("10.0.0.1/29", None, ("10.0.0.4", "10.0.0.6")),
    ],
)
def test_range_is_the_longest_free_run_in_the_upper_half(own, gateway, expected):
    iface = IPv4Interface(own)
    exclude = [iface.ip] + ([IPv4Address(gateway)] if gateway else [])
    assert choose_range(iface.network, exclude) == tuple(IPv4Address(a) for a in expected)


def test_a_subnet_smaller_than_a_29_is_refused():
    with pytest.raises(InitError, match="too small"):
        choose_range(IPv4Network("10.0.0.0/30"), [IPv4Address("10.0.0.1")])


def test_nameservers_skip_loopback_stubs_ipv6_and_ourselves():
    resolv = "search lan\nnameserver 127.0.0.53\nnameserver fd00::1\nnameserver 10.66.0.1\n"
    upstream = "nameserver 192.0.2.53\nnameserver 192.0.2.54\nnameserver 192.0.2.53\n"
    own = [IPv4Address("10.66.0.1")]
    assert nameservers([resolv, upstream], own) == ["192.0.2.53", "192.0.2.54"]
    assert nameservers(["nameserver 127.0.0.1\n"], own) == []


def test_rendered_config_is_accepted_by_the_serve_parser():
    facts = InterfaceFacts("eth1", IPv4Interface("10.66.0.1/24"), IPv4Address("10.66.0.254"))
    rng = (IPv4Address("10.66.0.128"), IPv4Address("10.66.0.253"))
    text = render_config(
        facts,
        rng,
        domain="lab.example",
        upstreams=["192.0.2.53"],
        state_dir=Path("/var/lib/netboot"),
        boot_dir=Path("/srv/netboot/boot"),
    )
    cfg = parse_config(tomllib.loads(text))
    assert cfg.server_address == IPv4Address("10.66.0.1")
    assert cfg.dhcp.interfaces == ("eth1",)
    subnet = cfg.dhcp.subnets[0]
    assert subnet.ranges == (rng,) and subnet.router == IPv4Address("10.66.0.254")
    assert subnet.domain == "lab.example"
    assert [str(u.ip) for u in cfg.dns.upstreams] == ["192.0.2.53"]


def test_init_refuses_when_another_dhcp_server_offers(tmp_path: Path):
    class Offer:
        server_id, server_mac, yiaddr = "10.66.0.9", "52:54:00:00:00:09", "10.66.0.51"

    out = tmp_path / "netboot.toml"
    with pytest.raises(InitError, match=r"another DHCP server already answers on eth1: 10\.66"):
        run_init(
            "eth1",
            out,
            inspect=lambda name: InterfaceFacts(name, IPv4Interface("10.66.0.1/24")),
            probe_dhcp=lambda name, timeout: [Offer()],
        )
    assert not out.exists()


def test_init_never_overwrites_without_force(tmp_path: Path):
    out = tmp_path / "netboot.toml"
    out.write_text("# mine\n")
    with pytest.raises(InitError, match="--force"):
        run_init("eth1", out, address="10.66.0.1/24", probe=False)
    assert out.read_text() == "# mine\n"


# -- netboot status --------------------------------------------------------------------


def _status(**over):
    doc = {
        "pid": 42,
        "state": "ready",
        "config_sha256": "abc",
        "listeners": [{"name": "http", "bound": True, "detail": "10.66.0.1:5248/tcp"}],
        "last_reload": None,
    }
    doc.update(over)
    return doc


def test_status_is_healthy_when_running_and_bound():
    report = assess(_status(), True, "abc", {"leases_active": 0, "nodes": {}, "alarms": []})
    assert report.healthy and report.problems == ()


def test_status_names_an_unbound_listener():
    rows = [{"name": "dhcp", "bound": False, "detail": "udp/67 on eth1"}]
    report = assess(_status(listeners=rows), True, "abc", {})
    assert not report.healthy
    assert report.problems == ("listener dhcp is not bound (udp/67 on eth1)",)


def test_status_of_a_dead_pid_is_not_running():
    report = assess(_status(), False, "abc", {})
    assert not report.healthy and "not running" in report.problems[0]


def test_status_without_a_status_file_is_not_running():
    report = assess(None, False, None, {})
    assert not report.healthy and "never became ready" in report.problems[0]


def test_status_flags_an_edited_config_that_was_not_reloaded():
    report = assess(_status(), True, "changed", {})
    assert report.healthy  # still serving the old one: healthy, but said
    assert "systemctl reload" in report.problems[0]
