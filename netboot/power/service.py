"""Power for the appliance: the queue, queued drivers for NodeActions, the poller, and
what they record in the store.

- ``lookup(power_type)`` is a NodeActions power lookup: drivers from the registry,
  wrapped so every action goes through the one PowerQueue (per node, per BMC, retried,
  bounded). NodeActions binds each action to its node (``QueuedDriver.for_node``);
  only an unbound call falls back to finding the node from the BMC the parameters
  name, and only when exactly one node uses that BMC.
- Queue events go to the store through its node API (``update_node``): a retry is an
  event; a failure is an event *and* ``power_state = error`` with the driver's message,
  so the node shows a clear power error. Success is recorded by NodeActions itself.
- The poller queries every node every ``interval`` seconds and stores power_state;
  a change of state, or a query error, is an event.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from twisted.application import service
from twisted.logger import Logger

from netboot.power import registry
from netboot.power.base import PowerDriver, PowerState, bmc_key
from netboot.power.poller import PollTarget, PowerPoller
from netboot.power.queue import PowerEvent, PowerQueue, QueuedDriver
from netboot.power.settings import PowerConfig

log = Logger(namespace="netboot.power")

ACTOR = "netboot"


class PowerService(service.Service):
    name = "power"

    def __init__(
        self,
        store: Any,
        reactor: Any,
        clock: Callable[[], float] = time.time,
        config: PowerConfig = PowerConfig(),  # noqa: B008 (frozen)
        drivers: Callable[[str], PowerDriver] | None = None,
    ) -> None:
        self.store = store
        self.reactor = reactor
        self.clock = clock
        self.config = config
        self.settings = config.drivers
        self._drivers = drivers
        self.queue = PowerQueue(reactor, config.retry, on_event=self._record_event)
        self.poller = PowerPoller(
            reactor,
            self.queue,
            self._targets,
            self._driver,
            self._record_state,
            interval=config.poll_interval or 300.0,
            concurrency=config.poll_concurrency,
        )
        self._nodes_by_bmc: dict[str, set[str]] = {}

    # -- NodeActions' lookup --------------------------------------------------------------

    def _driver(self, power_type: str) -> PowerDriver:
        if self._drivers is not None:  # injected (tests)
            return self._drivers(power_type)
        return registry.driver_for(power_type, self.reactor, self.settings)

    def lookup(self, power_type: str) -> PowerDriver:
        """power_type -> queued driver (KeyError for an unknown type)."""
        driver = self._driver(power_type)
        return QueuedDriver(driver, self.queue, lambda params: self._node_of(driver, params))

    def _node_of(self, driver: PowerDriver, params: Mapping[str, str]) -> str:
        """Fallback for callers that did not bind the node (``QueuedDriver.for_node``):
        the node behind this BMC if exactly one node uses it. Several nodes can share a
        BMC (a chassis, one libvirt URI, one vbmc): then the answer is the BMC key itself,
        which names no node, so events are logged but pinned on no node rather than on
        the wrong one."""
        key = bmc_key(driver, params)
        nodes = self._nodes_by_bmc.get(key)
        if nodes is None:
            self._targets()  # refresh the index
            nodes = self._nodes_by_bmc.get(key, set())
        return next(iter(nodes)) if len(nodes) == 1 else f"bmc {key}"

    # -- poller -------------------------------------------------------------------------

    def _targets(self) -> list[PollTarget]:
        targets: list[PollTarget] = []
        index: dict[str, set[str]] = {}
        for node in self.store.nodes():
            params = self.store.power_parameters(node.system_id)
            targets.append(PollTarget(node.system_id, node.power_type, params))
            try:
                key = bmc_key(self._driver(node.power_type), params)
            except KeyError:
                continue
            index.setdefault(key, set()).add(node.system_id)
        self._nodes_by_bmc = index
        return targets

    def startService(self) -> None:  # noqa: N802 (twisted API name)
        super().startService()
        if self.config.poll_interval > 0:
            self.poller.start(now=False)

    def stopService(self):  # noqa: N802 (twisted API name)
        self.poller.stop()
        return super().stopService()

    # -- store --------------------------------------------------------------------------

    def _known(self, node: str) -> bool:
        return self.store.node(node) is not None

    def _record_event(self, event: PowerEvent) -> None:
        if event.action == "query" or event.kind not in ("retrying", "failed"):
            return  # queries: the poller records states; successes: NodeActions does
        if not self._known(event.node):
            return
        fields = {"power_state": PowerState.ERROR.value} if event.kind == "failed" else {}
        self.store.update_node(
            event.node, fields, self.clock(), ACTOR, f"power-{event.kind}", event.message
        )

    def _record_state(self, node: str, state: PowerState, message: str) -> None:
        current = self.store.node(node)
        if current is None:
            return
        changed = current.power_state != state.value
        if not changed and state is not PowerState.ERROR:
            return
        if state is PowerState.ERROR:
            text = f"power query failed: {message}"
        else:
            text = f"power state {current.power_state} -> {state.value}"
        self.store.update_node(
            node,
            {"power_state": state.value},
            self.clock(),
            ACTOR,
            "power-state",
            text,
            record_event=changed,
        )
