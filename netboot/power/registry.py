"""power_type -> driver, parameter checks on save, and ``check``: try the BMC now.

``DRIVERS`` is a plain table of factories (no import-time registration): each takes the
reactor and the appliance's PowerSettings. ``driver_for`` is what NodeActions looks a
node's driver up with (a KeyError for an unknown type). ``validate`` is the form check
done when parameters are saved; ``check`` goes further and asks the BMC for the power
state, turning what goes wrong into one sentence an operator can act on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from twisted.internet import defer

from netboot.power.base import (
    InvalidPowerParameters,
    PowerDriver,
    PowerError,
    PowerState,
    redact,
    validate_parameters,
)
from netboot.power.settings import DEFAULT_SETTINGS, PowerSettings

__all__ = ["DRIVERS", "PowerSettings", "check", "driver_for", "public_parameters", "validate"]

DriverFactory = Callable[..., PowerDriver]

# Driver modules are imported when a driver is first asked for: their libraries
# (libvirt, pyghmi + cryptography, sushy + requests) cost seconds of start-up that every
# ``netboot`` command would otherwise pay.


def _manual(reactor: Any, settings: PowerSettings = DEFAULT_SETTINGS) -> PowerDriver:
    from netboot.power.manual import ManualDriver

    return ManualDriver(reactor)


def _wol(reactor: Any, settings: PowerSettings = DEFAULT_SETTINGS) -> PowerDriver:
    from netboot.power.wol import WakeOnLanDriver

    return WakeOnLanDriver(reactor, settings.wol_interfaces, settings.wol_port)


def _virsh(reactor: Any, settings: PowerSettings = DEFAULT_SETTINGS) -> PowerDriver:
    from netboot.power.virsh import VirshDriver

    return VirshDriver(reactor, settings.timeout)


def _ipmi(reactor: Any, settings: PowerSettings = DEFAULT_SETTINGS) -> PowerDriver:
    from netboot.power.ipmi import IPMIDriver

    return IPMIDriver(reactor, settings.timeout)


def _redfish(reactor: Any, settings: PowerSettings = DEFAULT_SETTINGS) -> PowerDriver:
    from netboot.power.redfish import RedfishDriver

    return RedfishDriver(reactor, settings.timeout)


def _webhook(reactor: Any, settings: PowerSettings = DEFAULT_SETTINGS) -> PowerDriver:
    from netboot.power.webhook import WebhookDriver

    return WebhookDriver(reactor, settings.timeout)


def _qmp(reactor: Any, settings: PowerSettings = DEFAULT_SETTINGS) -> PowerDriver:
    from netboot.power.qmp import QMPDriver

    return QMPDriver(reactor, min(settings.timeout, 10.0))


DRIVERS: dict[str, DriverFactory] = {
    "manual": _manual,
    "wol": _wol,
    "virsh": _virsh,
    "ipmi": _ipmi,
    "redfish": _redfish,
    "webhook": _webhook,
    "qmp": _qmp,
}


def power_types() -> tuple[str, ...]:
    return tuple(DRIVERS)


def driver_for(
    power_type: str, reactor: Any, settings: PowerSettings = DEFAULT_SETTINGS
) -> PowerDriver:
    """The driver for ``power_type``; KeyError if netboot has none of that name."""
    return DRIVERS[power_type](reactor, settings)


def validate(power_type: str, params: Mapping[str, str]) -> dict[str, str]:
    """The check on save: unknown type, unknown/missing names, malformed values ->
    InvalidPowerParameters naming the field. Returns normalised parameters."""
    try:
        driver = driver_for(power_type, None)
    except KeyError:
        raise InvalidPowerParameters(
            "power_type", f"unknown power type {power_type!r} (known: {', '.join(DRIVERS)})"
        ) from None
    return validate_parameters(driver, params)


def public_parameters(power_type: str, params: Mapping[str, str]) -> dict[str, str]:
    """Parameters for listings (API, UI): secrets masked."""
    try:
        return redact(driver_for(power_type, None), params)
    except KeyError:
        return {k: "********" for k in params}


@dataclass(frozen=True, slots=True)
class CheckResult:
    ok: bool
    state: PowerState
    message: str


def check(driver: PowerDriver, params: Mapping[str, str]) -> defer.Deferred[CheckResult]:
    """Validate, then ask the BMC for the power state. Never fails: the result says
    whether the BMC answered and, if not, why (credentials, unreachable, timeout)."""
    try:
        cleaned = validate_parameters(driver, params)
    except InvalidPowerParameters as exc:
        return defer.succeed(CheckResult(False, PowerState.ERROR, f"invalid parameter {exc}"))
    if not driver.can_query:
        return defer.succeed(
            CheckResult(True, PowerState.UNKNOWN, f"{driver.name} cannot report power state")
        )
    d = defer.maybeDeferred(driver.query, cleaned)

    def answered(state: PowerState) -> CheckResult:
        return CheckResult(True, state, f"{driver.name}: the BMC answered, power is {state.value}")

    def failed(failure: Any) -> CheckResult:
        failure.trap(PowerError)
        return CheckResult(False, PowerState.ERROR, failure.getErrorMessage())

    return d.addCallbacks(answered, failed)
