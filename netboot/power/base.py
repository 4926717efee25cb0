"""The one small interface every power driver implements.

A driver is stateless apart from its parameters; every call returns a Deferred and must
finish or fail within the driver's own timeout. Errors are PowerError with a message an
operator can act on ("BMC 10.0.0.5 refused the password"), never a raw traceback.
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


# Filled by netboot.power.registry: power_type -> factory(reactor) -> PowerDriver.
DriverFactory = Callable[[Any], PowerDriver]
