"""The one small interface every power driver implements.

A driver is stateless apart from its parameters; every call returns a Deferred and must
finish or fail within the driver's own timeout. Errors are PowerError with a message an
operator can act on ("BMC 10.0.0.5 refused the password"), never a raw traceback.

Beyond the protocol, drivers in this package also offer (optional, looked up with
``getattr`` so other implementations stay valid):
- ``validate(params) -> dict[str, str]``: the form check done on save, returning the
  normalised parameters or raising InvalidPowerParameters naming the field;
- ``bmc_key(params) -> str``: what the power queue serialises on ("never two actions
  at once on one BMC").
``validate_parameters``, ``bmc_key`` and ``redact`` below apply them with defaults.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol

from twisted.internet.defer import Deferred


class PowerState(Enum):
    ON = "on"
    OFF = "off"
    UNKNOWN = "unknown"
    ERROR = "error"


class PowerError(RuntimeError):
    """A power action failed; ``retryable`` says whether backing off and retrying helps."""

    def __init__(self, message: str, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


class InvalidPowerParameters(ValueError):
    """Parameters rejected on save; ``field`` names the offending parameter."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclass(frozen=True, slots=True)
class PowerParameterSpec:
    name: str
    required: bool = True
    secret: bool = False  # never shown in API/UI listings
    doc: str = ""


class PowerDriver(Protocol):
    """on/off/cycle/query for one node, given that node's stored parameters."""

    name: str  # the MAAS power_type: "manual", "wol", "virsh", "ipmi", "redfish", ...
    parameters: tuple[PowerParameterSpec, ...]
    can_query: bool

    def on(self, params: Mapping[str, str]) -> Deferred[None]: ...

    def off(self, params: Mapping[str, str]) -> Deferred[None]: ...

    def cycle(self, params: Mapping[str, str]) -> Deferred[None]: ...

    def query(self, params: Mapping[str, str]) -> Deferred[PowerState]: ...


def validate_parameters(driver: PowerDriver, params: Mapping[str, str]) -> dict[str, str]:
    """Names first (unknown -> error, required -> present), then the driver's own check.

    Values must be strings; optional parameters left empty are dropped.
    """
    known = {spec.name: spec for spec in driver.parameters}
    for name, value in params.items():
        if name not in known:
            raise InvalidPowerParameters(
                name, f"not a parameter of {driver.name} (known: {', '.join(known) or '-'})"
            )
        if not isinstance(value, str):
            raise InvalidPowerParameters(name, f"must be a string, not {type(value).__name__}")
    for spec in driver.parameters:
        if spec.required and not params.get(spec.name, "").strip():
            raise InvalidPowerParameters(spec.name, f"is required ({spec.doc or spec.name})")
    cleaned = {k: v for k, v in params.items() if v != ""}
    check = getattr(driver, "validate", None)
    return dict(check(cleaned)) if check is not None else cleaned


def bmc_key(driver: PowerDriver, params: Mapping[str, str]) -> str:
    """The endpoint an action talks to; the queue never runs two actions on one key."""
    key = getattr(driver, "bmc_key", None)
    if key is not None:
        return f"{driver.name}:{key(params)}"
    public = ",".join(f"{k}={v}" for k, v in sorted(redact(driver, params).items()))
    return f"{driver.name}:{public}"


def redact(driver: PowerDriver, params: Mapping[str, str]) -> dict[str, str]:
    """Parameters safe to show in listings: secret values are replaced by a mask."""
    secret = {spec.name for spec in driver.parameters if spec.secret}
    return {k: ("********" if k in secret and v else v) for k, v in params.items()}


# Filled by netboot.power.registry: power_type -> factory(reactor) -> PowerDriver.
DriverFactory = Callable[[Any], PowerDriver]
