"""Read and validate the TOML configuration once, into frozen dataclasses.

Every error names the offending key (``dhcp.range_start``) so an operator can fix the
file without reading code. Nothing else in netboot reads files or the environment for
settings: the objects built here are passed down explicitly.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from pathlib import Path
from typing import TYPE_CHECKING, Any

from netboot.bootconfig.settings import BootConfig, parse_boot
from netboot.nodes.settings import DeployConfig, LifecycleConfig, parse_deploy, parse_lifecycle
from netboot.power.settings import PowerConfig, parse_power

if TYPE_CHECKING:
    from netboot.dhcp.settings import DHCPConfig
    from netboot.dns.settings import DNSConfig


class ConfigError(ValueError):
    """A configuration problem; ``key`` is the dotted TOML key at fault."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key
        self.message = message


@dataclass(frozen=True, slots=True)
class HTTPConfig:
    bind: IPv4Address
    port: int


@dataclass(frozen=True, slots=True)
class TFTPConfig:
    bind: IPv4Address
    port: int
    max_sessions: int
    max_blksize: int
    workers: int = 1  # processes sharing the TFTP port (tftp/workers.py)


@dataclass(frozen=True, slots=True)
class Config:
    """The whole appliance configuration.

    ``server_address`` is the address nodes reach the appliance on: it goes into DHCP
    (siaddr, option 54) and into every boot URL.
    """

    server_address: IPv4Address
    state_dir: Path
    boot_dir: Path
    http: HTTPConfig
    tftp: TFTPConfig
    dhcp: DHCPConfig | None
    boot: BootConfig = BootConfig()  # [boot]: loader per firmware (bootconfig/settings.py)
    dns: DNSConfig | None = None  # [dns]: on unless enabled = false (dns/settings.py)
    lifecycle: LifecycleConfig = LifecycleConfig()  # [lifecycle]: nodes/settings.py
    power: PowerConfig = PowerConfig()  # [power]: power/settings.py
    deploy: DeployConfig = DeployConfig()  # [deploy]: erase on release (nodes/settings.py)

    @property
    def database_path(self) -> Path:
        return self.state_dir / "netboot.sqlite3"

    @property
    def http_base_url(self) -> str:
        return f"http://{self.server_address}:{self.http.port}"


_TOP_KEYS = {
    "server_address", "state_dir", "boot_dir", "http", "tftp", "dhcp", "boot", "dns", "lifecycle",
    "power", "deploy",
}  # fmt: skip


def load_config(path: Path) -> Config:
    """Parse and validate the TOML file at ``path``; raise ConfigError naming the key."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError("(file)", f"{path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("(syntax)", f"{path}: {exc}") from None
    return parse_config(raw, base_dir=path.parent)


def parse_config(raw: dict[str, Any], base_dir: Path = Path(".")) -> Config:
    """Validate an already-parsed TOML document. Relative paths are taken from base_dir."""
    _reject_unknown(raw, _TOP_KEYS, "")
    server_address = _address(raw, "server_address", "server_address")
    http_raw = _table(raw, "http")
    _reject_unknown(http_raw, {"bind", "port"}, "http.")
    http = HTTPConfig(
        bind=_address(http_raw, "bind", "http.bind", default=str(server_address)),
        port=_port(http_raw, "port", "http.port", default=5248),
    )
    tftp_raw = _table(raw, "tftp")
    _reject_unknown(tftp_raw, {"bind", "port", "max_sessions", "max_blksize", "workers"}, "tftp.")
    tftp = TFTPConfig(
        bind=_address(tftp_raw, "bind", "tftp.bind", default=str(server_address)),
        port=_port(tftp_raw, "port", "tftp.port", default=69),
        max_sessions=_int(tftp_raw, "max_sessions", "tftp.max_sessions", 256, 1, 100_000),
        max_blksize=_int(tftp_raw, "max_blksize", "tftp.max_blksize", 1468, 512, 65464),
        workers=_int(tftp_raw, "workers", "tftp.workers", 1, 1, 64),
    )
    dhcp = _dhcp(_table(raw, "dhcp"), server_address) if "dhcp" in raw else None
    return Config(
        server_address=server_address,
        state_dir=_path(raw, "state_dir", base_dir),
        boot_dir=_path(raw, "boot_dir", base_dir),
        http=http,
        tftp=tftp,
        dhcp=dhcp,
        boot=parse_boot(raw.get("boot", {})),
        dns=_dns(raw.get("dns", {}), server_address, dhcp),
        lifecycle=parse_lifecycle(raw.get("lifecycle", {}), base_dir),
        power=parse_power(raw.get("power", {}), dhcp.interfaces if dhcp else ()),
        deploy=parse_deploy(raw.get("deploy", {})),
    )


def _dhcp(raw: dict[str, Any], server_address: IPv4Address) -> DHCPConfig:
    # The DHCP package owns its table (subnets, ranges, reservations): netboot/dhcp/settings.py.
    from netboot.dhcp.settings import parse_dhcp

    return parse_dhcp(raw, server_address)


def _dns(raw: Any, server_address: IPv4Address, dhcp: Any) -> DNSConfig | None:
    # The DNS package owns its table (upstreams, ACL, records): netboot/dns/settings.py.
    from netboot.dns.settings import parse_dns

    return parse_dns(raw, server_address, dhcp)


def interface_for(address: IPv4Address, subnet: IPv4Network) -> IPv4Interface:
    return IPv4Interface(f"{address}/{subnet.prefixlen}")


def _reject_unknown(raw: dict[str, Any], known: set[str], prefix: str) -> None:
    for key in raw:
        if key not in known:
            raise ConfigError(f"{prefix}{key}", f"unknown key (known: {', '.join(sorted(known))})")


def _table(raw: dict[str, Any], key: str) -> dict[str, Any]:
    value = raw.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(key, "must be a table")
    return value


def _str(raw: dict[str, Any], key: str, name: str, default: str | None = None) -> str:
    value = raw.get(key, default)
    if value is None:
        raise ConfigError(name, "is required")
    if not isinstance(value, str):
        raise ConfigError(name, f"must be a string, not {type(value).__name__}")
    return value


def _parse_ip(value: Any, name: str) -> IPv4Address:
    if not isinstance(value, str):
        raise ConfigError(name, "must be an IPv4 address string")
    try:
        return IPv4Address(value)
    except ValueError:
        raise ConfigError(name, f"{value!r} is not an IPv4 address") from None


def _address(raw: dict[str, Any], key: str, name: str, default: str | None = None) -> IPv4Address:
    return _parse_ip(_str(raw, key, name, default), name)


def _int(raw: dict[str, Any], key: str, name: str, default: int, lo: int, hi: int) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(name, "must be an integer")
    if not lo <= value <= hi:
        raise ConfigError(name, f"{value} is outside {lo}..{hi}")
    return value


def _port(raw: dict[str, Any], key: str, name: str, default: int) -> int:
    return _int(raw, key, name, default, 0, 65535)


def _path(raw: dict[str, Any], key: str, base_dir: Path) -> Path:
    path = Path(_str(raw, key, key))
    return path if path.is_absolute() else (base_dir / path).resolve()
