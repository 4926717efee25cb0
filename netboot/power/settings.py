"""The ``[power]`` configuration table: driver deadline, retries, polling, Wake-on-LAN.

```toml
[power]
timeout = 30                # seconds one BMC call may take (then: retryable error)
attempts = 3                # tries for a retryable error (timeouts, refused connections, 5xx)
retry_delay = 2             # seconds before the first retry; doubled for each next one
action_deadline = 180       # no retry starts later than this after the first attempt
poll_interval = 300         # seconds between power-state queries of every node; 0 = never
poll_concurrency = 8        # power-state queries in flight at once
wol_interfaces = ["br-prov"]  # where magic packets go (default: the [dhcp] interfaces)
wol_port = 9
```
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from netboot.power.queue import RetryPolicy

_KEYS = {
    "timeout",
    "attempts",
    "retry_delay",
    "action_deadline",
    "poll_interval",
    "poll_concurrency",
    "wol_interfaces",
    "wol_port",
}


@dataclass(frozen=True, slots=True)
class PowerSettings:
    """What the drivers are built with (netboot.power.registry.driver_for)."""

    timeout: float = 30.0  # seconds one driver call may take
    wol_interfaces: tuple[str, ...] = ()  # where magic packets go by default
    wol_port: int = 9


DEFAULT_SETTINGS = PowerSettings()


@dataclass(frozen=True, slots=True)
class PowerConfig:
    drivers: PowerSettings = field(default_factory=PowerSettings)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    poll_interval: float = 300.0
    poll_concurrency: int = 8


def parse_power(raw: Any, dhcp_interfaces: tuple[str, ...] = ()) -> PowerConfig:
    from netboot.config import ConfigError  # config imports this module

    if not isinstance(raw, dict):
        raise ConfigError("power", "must be a table")
    for key in raw:
        if key not in _KEYS:
            raise ConfigError(f"power.{key}", f"unknown key (known: {', '.join(sorted(_KEYS))})")

    def number(key: str, default: float, lo: float, hi: float, integer: bool = False) -> float:
        value = raw.get(key, default)
        kinds = int if integer else int | float
        if isinstance(value, bool) or not isinstance(value, kinds):
            raise ConfigError(f"power.{key}", f"must be {'an integer' if integer else 'a number'}")
        if not lo <= value <= hi:
            raise ConfigError(f"power.{key}", f"{value} is outside {lo:g}..{hi:g}")
        return value

    interfaces = raw.get("wol_interfaces", list(dhcp_interfaces))
    if not isinstance(interfaces, list) or not all(
        isinstance(i, str) and i and len(i) <= 15 for i in interfaces
    ):
        raise ConfigError("power.wol_interfaces", "must be a list of interface names")
    timeout = float(number("timeout", 30.0, 1, 600))
    attempts = int(number("attempts", 3, 1, 20, integer=True))
    deadline = float(number("action_deadline", 180.0, 1, 3600))
    if deadline < timeout:
        raise ConfigError("power.action_deadline", f"is shorter than power.timeout ({timeout:g})")
    return PowerConfig(
        drivers=PowerSettings(
            timeout=timeout,
            wol_interfaces=tuple(interfaces),
            wol_port=int(number("wol_port", 9, 1, 65535, integer=True)),
        ),
        retry=RetryPolicy(
            attempts=attempts,
            first_delay=float(number("retry_delay", 2.0, 0, 600)),
            attempt_timeout=timeout + 5.0,  # the drivers' own deadline fires first
            deadline=deadline,
        ),
        poll_interval=float(number("poll_interval", 300.0, 0, 86400)),
        poll_concurrency=int(number("poll_concurrency", 8, 1, 256, integer=True)),
    )
