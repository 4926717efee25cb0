"""``manual``: netboot cannot drive this machine's power; it tells the operator what to do.

Every action succeeds at once after a log line naming what the operator must do (the
power queue also records it as a node event). ``query`` answers UNKNOWN: only the
operator knows.
"""

from __future__ import annotations

from collections.abc import Mapping

from twisted.internet import defer
from twisted.logger import Logger

from netboot.power.base import PowerParameterSpec, PowerState

log = Logger(namespace="netboot.power.manual")

INSTRUCTIONS = {
    "on": "power the machine on by hand (front panel or its own BMC)",
    "off": "power the machine off by hand",
    "cycle": "power the machine off and on again by hand",
}


class ManualDriver:
    name = "manual"
    parameters: tuple[PowerParameterSpec, ...] = ()
    can_query = False

    def __init__(self, reactor: object = None) -> None:
        self.reactor = reactor

    def validate(self, params: Mapping[str, str]) -> dict[str, str]:
        return dict(params)

    def bmc_key(self, params: Mapping[str, str]) -> str:
        return "operator"

    def _tell(self, action: str) -> defer.Deferred[None]:
        log.warn(
            "manual power: operator action needed: {instruction}", instruction=INSTRUCTIONS[action]
        )
        return defer.succeed(None)

    def on(self, params: Mapping[str, str]) -> defer.Deferred[None]:
        return self._tell("on")

    def off(self, params: Mapping[str, str]) -> defer.Deferred[None]:
        return self._tell("off")

    def cycle(self, params: Mapping[str, str]) -> defer.Deferred[None]:
        return self._tell("cycle")

    def query(self, params: Mapping[str, str]) -> defer.Deferred[PowerState]:
        return defer.succeed(PowerState.UNKNOWN)
