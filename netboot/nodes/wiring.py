"""Build the lifecycle objects the appliance shares: NodeActions (used by the MAAS API,
the web UI and node callbacks) and the timeout checker service.

Power drivers come from ``netboot.power.registry`` when it provides a lookup; until
then (and for any power type it lacks) the built-in ``manual`` driver is used: the
operator powers the machine, so on/off succeed at once and the state is unknown, as in
MAAS.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger

from netboot.nodes.actions import NodeActions, PowerLookup
from netboot.nodes.settings import LifecycleConfig
from netboot.nodes.timeouts import TimeoutChecker
from netboot.power.base import PowerDriver, PowerParameterSpec, PowerState

log = Logger(namespace="netboot.power")


class ManualPower:
    """``manual``: nothing to drive; a log line tells the operator what to do."""

    name = "manual"
    parameters: tuple[PowerParameterSpec, ...] = ()
    can_query = False

    def _say(self, what: str) -> defer.Deferred:
        log.info("manual power: the operator must power the machine {what}", what=what)
        return defer.succeed(None)

    def on(self, params: Mapping[str, str]) -> defer.Deferred:
        return self._say("on")

    def off(self, params: Mapping[str, str]) -> defer.Deferred:
        return self._say("off")

    def cycle(self, params: Mapping[str, str]) -> defer.Deferred:
        return self._say("off and on again")

    def query(self, params: Mapping[str, str]) -> defer.Deferred:
        return defer.succeed(PowerState.UNKNOWN)


def power_lookup(reactor: Any) -> PowerLookup:
    """power_type -> driver, preferring netboot.power.registry's drivers."""
    registry_lookup: Callable[[str], PowerDriver] | None = None
    try:
        from netboot.power import registry  # type: ignore[attr-defined]
    except ImportError:
        registry = None
    if registry is not None and hasattr(registry, "driver_for"):

        def registry_lookup(power_type: str) -> PowerDriver:
            return registry.driver_for(power_type, reactor)

    elif registry is not None and isinstance(getattr(registry, "DRIVERS", None), Mapping):

        def registry_lookup(power_type: str) -> PowerDriver:
            return registry.DRIVERS[power_type](reactor)

    manual = ManualPower()

    def lookup(power_type: str) -> PowerDriver:
        if registry_lookup is not None:
            try:
                return registry_lookup(power_type)
            except KeyError:
                pass
        if power_type == "manual":
            return manual
        raise KeyError(power_type)

    return lookup


def build_lifecycle(
    store: Any,
    reactor: Any,
    clock: Callable[[], float] = time.time,
    settings: LifecycleConfig = LifecycleConfig(),  # noqa: B008 (frozen)
    power: PowerLookup | None = None,
) -> tuple[NodeActions, TimeoutChecker]:
    """``power``: the appliance's queued lookup (netboot.power.service.PowerService);
    without it, drivers straight from the registry."""
    actions = NodeActions(
        store,
        power or power_lookup(reactor),
        clock,
        settings.timeouts,
        settings.commissioning_scripts,
    )
    return actions, TimeoutChecker(actions, reactor, settings.check_interval)
