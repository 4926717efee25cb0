"""Build the lifecycle objects the appliance shares: NodeActions (used by the MAAS API,
the web UI, the CLI and node callbacks) and the timeout checker service.

Power drivers come from ``netboot.power.registry`` (``driver_for``), unless the
appliance passes its queued lookup (``netboot.power.service``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from netboot.nodes.actions import NodeActions, PowerLookup
from netboot.nodes.settings import DeployConfig, LifecycleConfig
from netboot.nodes.timeouts import TimeoutChecker
from netboot.power import registry
from netboot.power.base import PowerDriver


def power_lookup(reactor: Any) -> PowerLookup:
    """power_type -> driver straight from the registry (KeyError for an unknown type)."""

    def lookup(power_type: str) -> PowerDriver:
        return registry.driver_for(power_type, reactor)

    return lookup


def build_lifecycle(
    store: Any,
    reactor: Any,
    clock: Callable[[], float] = time.time,
    settings: LifecycleConfig = LifecycleConfig(),  # noqa: B008 (frozen)
    power: PowerLookup | None = None,
    deploy: DeployConfig = DeployConfig(),  # noqa: B008 (frozen)
) -> tuple[NodeActions, TimeoutChecker]:
    """``power``: the appliance's queued lookup (netboot.power.service.PowerService);
    without it, drivers straight from the registry."""
    actions = NodeActions(
        store,
        power or power_lookup(reactor),
        clock,
        settings.timeouts,
        settings.commissioning_scripts,
        erase_on_release=deploy.erase_on_release,
        erase_mode=deploy.erase_mode,
    )
    return actions, TimeoutChecker(actions, reactor, settings.check_interval)
