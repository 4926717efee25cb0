"""A scriptable fake power driver for the queue and poller unit tests."""

from __future__ import annotations

from collections.abc import Mapping

from twisted.internet import defer

from netboot.power.base import PowerParameterSpec, PowerState


class FakeDriver:
    """Each call appends (action, params) to ``calls`` and returns the next scripted
    outcome: an exception (fails), a PowerState/None (succeeds), or "hang" (a Deferred
    the test fires itself, kept in ``hanging``)."""

    parameters = (
        PowerParameterSpec("power_address"),
        PowerParameterSpec("power_pass", secret=True),
    )

    def __init__(self, name: str = "fake", can_query: bool = True, script=None) -> None:
        self.name = name
        self.can_query = can_query
        self.script = list(script or [])
        self.calls: list[tuple[str, dict]] = []
        self.hanging: list[defer.Deferred] = []

    def bmc_key(self, params: Mapping[str, str]) -> str:
        return params.get("power_address", "")

    def _next(self, action: str, params: Mapping[str, str]) -> defer.Deferred:
        self.calls.append((action, dict(params)))
        outcome = (
            self.script.pop(0) if self.script else (PowerState.ON if action == "query" else None)
        )
        if outcome == "hang":
            d: defer.Deferred = defer.Deferred()
            self.hanging.append(d)
            return d
        if isinstance(outcome, BaseException):
            return defer.fail(outcome)
        return defer.succeed(outcome)

    def on(self, params):
        return self._next("on", params)

    def off(self, params):
        return self._next("off", params)

    def cycle(self, params):
        return self._next("cycle", params)

    def query(self, params):
        return self._next("query", params)
