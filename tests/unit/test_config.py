"""Configuration: valid files load; every mistake names its key."""

from ipaddress import IPv4Address
from pathlib import Path

import pytest

from netboot.config import ConfigError, load_config, parse_config

GOOD = {
    "server_address": "10.66.0.1",
    "state_dir": "state",
    "boot_dir": "/srv/boot",
    "http": {"port": 5248},
    "dhcp": {
        "interfaces": ["br0"],
        "subnet": "10.66.0.0/24",
        "range_start": "10.66.0.100",
        "range_end": "10.66.0.199",
    },
}


def with_(path: str, value):
    raw = {k: (dict(v) if isinstance(v, dict) else v) for k, v in GOOD.items()}
    table, _, key = path.rpartition(".")
    target = raw[table] if table else raw
    if value is None:
        del target[key]
    else:
        target[key] = value
    return raw


def test_good_config_loads_with_defaults(tmp_path: Path):
    cfg = parse_config(GOOD, base_dir=tmp_path)
    assert cfg.server_address == IPv4Address("10.66.0.1")
    assert cfg.state_dir == tmp_path / "state"
    assert cfg.boot_dir == Path("/srv/boot")
    assert cfg.http.bind == IPv4Address("10.66.0.1")
    assert cfg.tftp.port == 69
    assert cfg.dhcp is not None
    assert cfg.dhcp.interfaces == ("br0",)
    assert cfg.dhcp.subnets[0].dns_servers == (IPv4Address("10.66.0.1"),)  # appliance DNS
    assert cfg.http_base_url == "http://10.66.0.1:5248"
    assert cfg.database_path == tmp_path / "state" / "netboot.sqlite3"


def test_dhcp_section_is_optional():
    assert parse_config(with_("dhcp", None)).dhcp is None


@pytest.mark.parametrize(
    ("path", "value", "key"),
    [
        ("server_address", "not-an-ip", "server_address"),
        ("server_address", None, "server_address"),
        ("http.port", 70000, "http.port"),
        ("http.port", "80", "http.port"),
        ("http.colour", "blue", "http.colour"),
        ("bogus", 1, "bogus"),
        ("dhcp.interfaces", [], "dhcp.interfaces"),
        ("dhcp.interfaces", None, "dhcp.interfaces"),
        ("dhcp.interfaces", "br0", "dhcp.interfaces"),
        ("dhcp.subnet", "10.66.0.0/33", "dhcp.subnet"),
        ("dhcp.range_start", "10.67.0.1", "dhcp.range_start"),
        ("dhcp.range_end", "10.66.0.50", "dhcp.range_end"),
        ("dhcp.range_start", "10.66.0.1", "dhcp.range_start"),
        ("dhcp.lease_seconds", 5, "dhcp.lease_seconds"),
        ("dhcp.dns_servers", ["x"], "dhcp.dns_servers[0]"),
        ("dhcp.router", "300.1.1.1", "dhcp.router"),
    ],
)
def test_bad_value_names_the_key(path, value, key):
    with pytest.raises(ConfigError) as err:
        parse_config(with_(path, value))
    assert err.value.key == key
    assert key in str(err.value)


def test_toml_syntax_error_is_a_config_error(tmp_path: Path):
    path = tmp_path / "bad.toml"
    path.write_text("server_address = \n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert err.value.key == "(syntax)"


def test_missing_file_is_a_config_error(tmp_path: Path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml")
