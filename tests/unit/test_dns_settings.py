"""The [dns] table: defaults, resolv.conf upstreams (never ourselves), errors name the key."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest

from netboot.config import ConfigError, parse_config
from netboot.dns.settings import Upstream, parse_dns, upstreams_from_resolv_conf

SERVER = IPv4Address("10.66.0.1")


def test_upstreams_from_resolv_conf_skip_ourselves_ipv6_and_duplicates():
    text = "# c\nnameserver 10.66.0.1\nnameserver 192.0.2.53\nnameserver ::1\nsearch x\n"
    text += "nameserver 192.0.2.53\nnameserver 192.0.2.54\n"
    assert upstreams_from_resolv_conf(text, {SERVER}) == (
        Upstream(IPv4Address("192.0.2.53")),
        Upstream(IPv4Address("192.0.2.54")),
    )


def test_defaults(tmp_path: Path):
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 10.66.0.1\nnameserver 192.0.2.53\n")
    cfg = parse_dns({}, SERVER, None, resolv_conf=resolv)
    assert cfg is not None
    assert (cfg.bind, cfg.port, cfg.domain) == (SERVER, 53, "maas.lan")
    assert cfg.upstreams == (Upstream(IPv4Address("192.0.2.53")),)
    assert cfg.allow_recursion == (IPv4Network("127.0.0.0/8"),)
    assert cfg.records == () and cfg.forward_zones == ()


def test_loopback_nameservers_are_us_when_we_listen_on_all_addresses(tmp_path: Path):
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 127.0.0.1\nnameserver 192.0.2.53\n")
    cfg = parse_dns({"bind": "0.0.0.0"}, SERVER, None, resolv_conf=resolv)
    assert cfg is not None and [str(u) for u in cfg.upstreams] == ["192.0.2.53:53"]


def test_full_table_parses(tmp_path: Path):
    raw = {
        "bind": "127.0.0.3",
        "port": 5353,
        "domain": "Lab.Example.",
        "upstreams": ["192.0.2.53", "192.0.2.54:5300"],
        "allow_recursion": ["10.0.0.0/8"],
        "records": ["gw IN A 10.66.0.254", "9.0.66.10.in-addr.arpa. IN PTR gw"],
        "reverse_subnets": ["10.66.0.0/24"],
        "forward_zones": {"corp.example": ["192.0.2.10"]},
        "cache_size": 50,
        "ttl": 60,
        "upstream_timeout": 0.25,
        "workers": 2,
    }
    cfg = parse_dns(raw, SERVER, None, resolv_conf=tmp_path / "none")
    assert cfg is not None
    assert cfg.domain == "lab.example"
    assert cfg.upstreams[1] == Upstream(IPv4Address("192.0.2.54"), 5300)
    assert cfg.forward_zones == (("corp.example", (Upstream(IPv4Address("192.0.2.10")),)),)
    assert [str(r.rname) for r in cfg.records] == ["gw.lab.example.", "9.0.66.10.in-addr.arpa."]
    assert (cfg.cache_size, cfg.ttl, cfg.upstream_timeout, cfg.workers) == (50, 60, 0.25, 2)


def test_disabled_is_none():
    assert parse_dns({"enabled": False}, SERVER, None) is None


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"nope": 1}, "dns.nope"),
        ({"upstreams": ["192.0.2.1:x"]}, "dns.upstreams[0]"),
        ({"upstreams": "192.0.2.1"}, "dns.upstreams"),
        ({"upstreams": ["10.66.0.1"]}, "dns.upstreams[0]"),  # that is us
        (
            {"forward_zones": {"corp.example": ["10.66.0.1:53"]}},
            "dns.forward_zones.corp.example[0]",
        ),
        ({"records": ["www.example.com. IN A 192.0.2.1"]}, "dns.records[0]"),
        ({"records": ["gw IN A not-an-ip"]}, "dns.records[0]"),
        ({"allow_recursion": ["10.0.0.300/8"]}, "dns.allow_recursion[0]"),
        ({"forward_zones": {"bad domain": ["192.0.2.1"]}}, "dns.forward_zones.bad domain"),
        ({"cache_size": 0}, "dns.cache_size"),
        ({"upstream_timeout": 0}, "dns.upstream_timeout"),
        ({"domain": ""}, "dns.domain"),
    ],
)
def test_errors_name_the_key(raw, key, tmp_path: Path):
    with pytest.raises(ConfigError) as err:
        parse_dns(raw, SERVER, None, resolv_conf=tmp_path / "none")
    assert err.value.key == key


def test_config_has_dns_on_by_default_with_the_dhcp_domain_and_subnet():
    cfg = parse_config(
        {
            "server_address": "10.66.0.1",
            "state_dir": "s",
            "boot_dir": "b",
            "dhcp": {
                "interfaces": ["br0"],
                "subnet": "10.66.0.0/24",
                "range_start": "10.66.0.100",
                "range_end": "10.66.0.199",
                "domain": "lab.lan",
            },
            "dns": {"upstreams": []},
        }
    )
    assert cfg.dns is not None
    assert cfg.dns.domain == "lab.lan"
    assert cfg.dns.reverse_subnets == (IPv4Network("10.66.0.0/24"),)
    assert IPv4Network("10.66.0.0/24") in cfg.dns.allow_recursion
