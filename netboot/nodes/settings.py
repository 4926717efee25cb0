"""The ``[lifecycle]`` table (phase timeouts, commissioning scripts) and the ``[deploy]``
table (what release does by default).

```toml
[lifecycle]
commissioning_timeout = 1800   # seconds a COMMISSIONING node may stay silent
deploying_timeout = 3600       # ... DEPLOYING
releasing_timeout = 900        # ... RELEASING
disk_erasing_timeout = 1800    # ... DISK_ERASING (release with erase)
entering_rescue_mode_timeout = 1800  # ... ENTERING_RESCUE_MODE
exiting_rescue_mode_timeout = 900    # ... EXITING_RESCUE_MODE (the power call)
timeout_check_interval = 10    # how often overdue nodes are looked for
commissioning_scripts = "/etc/netboot/commissioning"   # operator scripts directory
```

A node that does not report back within its phase's timeout goes to the matching FAILED
state (FAILED_COMMISSIONING, FAILED_DEPLOYMENT, FAILED_RELEASING, FAILED_DISK_ERASING,
FAILED_ENTERING_RESCUE_MODE, FAILED_EXITING_RESCUE_MODE) with the reason.

```toml
[deploy]
erase_on_release = false   # release erases the disks unless the caller says erase=false
erase_mode = "quick"       # the default erase: "quick" or "secure" (see docs/deploy.md)
```
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from netboot.nodes.actions import Timeouts

# preseeds/commissioning/ of the netboot checkout (the packaged examples).
DEFAULT_SCRIPTS = Path(__file__).resolve().parents[2] / "preseeds" / "commissioning"
_KEYS = {
    "commissioning_timeout",
    "deploying_timeout",
    "releasing_timeout",
    "disk_erasing_timeout",
    "entering_rescue_mode_timeout",
    "exiting_rescue_mode_timeout",
    "timeout_check_interval",
    "commissioning_scripts",
}


@dataclass(frozen=True, slots=True)
class LifecycleConfig:
    timeouts: Timeouts = Timeouts()
    check_interval: float = 10.0
    commissioning_scripts: Path = DEFAULT_SCRIPTS


def parse_lifecycle(raw: Any, base_dir: Path) -> LifecycleConfig:
    from netboot.config import ConfigError  # config imports this module

    if not isinstance(raw, dict):
        raise ConfigError("lifecycle", "must be a table")
    for key in raw:
        if key not in _KEYS:
            raise ConfigError(
                f"lifecycle.{key}", f"unknown key (known: {', '.join(sorted(_KEYS))})"
            )

    def seconds(key: str, default: float, lo: float) -> float:
        value = raw.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"lifecycle.{key}", "must be a number of seconds")
        if not lo <= value <= 7 * 86400:
            raise ConfigError(f"lifecycle.{key}", f"{value} is outside {lo:g}..604800")
        return float(value)

    d = Timeouts()
    scripts = raw.get("commissioning_scripts", str(DEFAULT_SCRIPTS))
    if not isinstance(scripts, str) or not scripts:
        raise ConfigError("lifecycle.commissioning_scripts", "must be a directory path")
    path = Path(scripts)
    return LifecycleConfig(
        timeouts=Timeouts(
            commissioning=seconds("commissioning_timeout", d.commissioning, 0),
            deploying=seconds("deploying_timeout", d.deploying, 0),
            releasing=seconds("releasing_timeout", d.releasing, 0),
            disk_erasing=seconds("disk_erasing_timeout", d.disk_erasing, 0),
            entering_rescue_mode=seconds("entering_rescue_mode_timeout", d.entering_rescue_mode, 0),
            exiting_rescue_mode=seconds("exiting_rescue_mode_timeout", d.exiting_rescue_mode, 0),
        ),
        check_interval=seconds("timeout_check_interval", 10.0, 0.1),
        commissioning_scripts=path if path.is_absolute() else (base_dir / path).resolve(),
    )


@dataclass(frozen=True, slots=True)
class DeployConfig:
    """``[deploy]``: MAAS's "erase disks on release" setting and its default mode."""

    erase_on_release: bool = False
    erase_mode: str = "quick"


def parse_deploy(raw: Any) -> DeployConfig:
    from netboot.config import ConfigError  # config imports this module
    from netboot.nodes.actions import ERASE_MODES

    if not isinstance(raw, dict):
        raise ConfigError("deploy", "must be a table")
    known = ("erase_on_release", "erase_mode")
    for key in raw:
        if key not in known:
            raise ConfigError(f"deploy.{key}", f"unknown key (known: {', '.join(known)})")
    erase = raw.get("erase_on_release", False)
    if not isinstance(erase, bool):
        raise ConfigError("deploy.erase_on_release", "must be true or false")
    mode = raw.get("erase_mode", "quick")
    if mode not in ERASE_MODES:
        raise ConfigError("deploy.erase_mode", f"{mode!r} is not one of {', '.join(ERASE_MODES)}")
    return DeployConfig(erase_on_release=erase, erase_mode=mode)
