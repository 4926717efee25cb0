"""Power through the node's driver, for NodeActions (a mixin).

The driver is looked up by the node's ``power_type``; its answer updates the node's
``power_state`` (with an event). When a power call made for a lifecycle phase fails,
the node goes to that phase's FAILED state with the driver's message and the Deferred
fails with PowerActionFailed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger

from netboot.nodes.errors import InvalidAction, PowerActionFailed
from netboot.nodes.lifecycle import IllegalTransition, NodeStatus
from netboot.power.base import InvalidPowerParameters, PowerError, PowerState
from netboot.store.models import Node

try:  # the driver-aware check (netboot.power.base), when this netboot has it
    from netboot.power.base import validate_parameters as _validate_parameters
except ImportError:  # pragma: no cover - older power package
    _validate_parameters = None

log = Logger(namespace="netboot.nodes")


class PowerActions:
    """Requires ``store``, ``power`` (power_type -> driver), ``clock`` and ``get``."""

    store: Any
    power: Any
    clock: Any

    def get(self, system_id: str) -> Node:  # pragma: no cover - provided by NodeActions
        raise NotImplementedError

    def check_power(self, power_type: str, parameters: Mapping[str, str]) -> dict[str, str]:
        """Validate a power type and its parameters (names, required ones, and the
        driver's own value checks when it has them); InvalidAction names the field as
        the MAAS API spells it (``power_parameters_<name>``)."""
        try:
            driver = self.power(power_type)
        except KeyError:
            raise InvalidAction("power_type", f"unknown power type {power_type!r}") from None
        try:
            if _validate_parameters is not None:
                return _validate_parameters(driver, parameters)
            known = {p.name for p in driver.parameters}
            for name in parameters:
                if name not in known:
                    raise InvalidPowerParameters(
                        name, f"not a parameter of {power_type} ({', '.join(sorted(known)) or '-'})"
                    )
            for spec in driver.parameters:
                if spec.required and not parameters.get(spec.name):
                    raise InvalidPowerParameters(spec.name, "is required")
            return dict(parameters)
        except InvalidPowerParameters as exc:
            message = str(exc).split(": ", 1)[-1]
            raise InvalidAction(f"power_parameters_{exc.field}", message) from None

    def set_power(
        self, system_id: str, actor: str, power_type: str, parameters: Mapping[str, str]
    ) -> Node:
        """Store the power type and parameters (validated by the driver's spec)."""
        params = self.check_power(power_type, parameters)
        return self.store.update_node(
            system_id,
            {"power_type": power_type, "power_parameters": params},
            self.clock(),
            actor,
            "power-config",
            f"power type {power_type}",
        )

    # -- power --------------------------------------------------------------------------

    def power_on(self, system_id: str, actor: str) -> defer.Deferred:
        return self._power(self.get(system_id), "on", actor, failed=None)

    def power_off(self, system_id: str, actor: str) -> defer.Deferred:
        return self._power(self.get(system_id), "off", actor, failed=None)

    def power_query(self, system_id: str, actor: str) -> defer.Deferred:
        """Ask the driver; store and return the PowerState (ERROR with a log line when
        the driver fails; UNKNOWN for drivers that cannot query, like manual)."""
        node = self.get(system_id)
        try:
            driver = self._node_driver(node)
        except KeyError:
            return defer.succeed(PowerState.UNKNOWN)
        if not driver.can_query:
            return defer.succeed(PowerState.UNKNOWN)
        d = defer.maybeDeferred(driver.query, self.store.power_parameters(system_id))

        def got(state: PowerState) -> PowerState:
            self.store.update_node(
                system_id,
                {"power_state": state.value},
                self.clock(),
                actor,
                "power",
                "",
                record_event=False,
            )
            return state

        def failed(failure) -> PowerState:
            failure.trap(PowerError)
            log.warn(
                "power query of {system_id} failed: {error}",
                system_id=system_id,
                error=failure.getErrorMessage(),
            )
            self.store.update_node(
                system_id,
                {"power_state": PowerState.ERROR.value},
                self.clock(),
                actor,
                "power",
                "",
                record_event=False,
            )
            return PowerState.ERROR

        d.addCallbacks(got, failed)
        return d

    def _node_driver(self, node: Node) -> Any:
        """The node's driver, bound to the node when the lookup supports it (the
        appliance's queued drivers: ``QueuedDriver.for_node``), so the power queue
        records events on this node even when other nodes share its BMC."""
        driver = self.power(node.power_type)
        bind = getattr(driver, "for_node", None)
        return bind(node.system_id) if bind is not None else driver

    def _power(
        self, node: Node, action: str, actor: str, failed: NodeStatus | None
    ) -> defer.Deferred:
        """Run driver.<action>; on success record the power state and fire with the
        node; on failure move it to ``failed`` (if given) and fail with
        PowerActionFailed."""
        system_id = node.system_id
        phase = node.status
        try:
            driver = self._node_driver(node)
            params = self.store.power_parameters(system_id)
            d = defer.maybeDeferred(getattr(driver, action), params)
        except KeyError:
            d = defer.fail(PowerError(f"unknown power type {node.power_type!r}", retryable=False))
            driver = None

        def done(_: object) -> Node:
            state = ("off" if action == "off" else "on") if driver.can_query else "unknown"
            return self.store.update_node(
                system_id,
                {"power_state": state},
                self.clock(),
                actor,
                "power",
                f"power {action} ({node.power_type})",
            )

        def error(failure) -> None:
            failure.trap(PowerError)
            message = failure.getErrorMessage()
            log.warn(
                "power {action} of {system_id} ({ptype}) failed: {error}",
                action=action,
                system_id=system_id,
                ptype=node.power_type,
                error=message,
            )
            current = self.get(system_id)
            if failed is not None:
                # The node may have moved on in the meantime (e.g. it reported).
                with contextlib.suppress(IllegalTransition):
                    current, _ = self.store.transition(
                        system_id,
                        failed,
                        self.clock(),
                        actor,
                        f"power {action} failed: {message}",
                        fields={
                            "status_message": f"power {action} failed: {message}",
                            "status_deadline": None,
                            "power_state": "error",
                        },
                        only_from=(phase,),
                    )
            raise PowerActionFailed(current, action, message)

        d.addCallbacks(done, error)
        return d
