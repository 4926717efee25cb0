"""``qmp``: power for QEMU lab VMs, over the VM's QMP unix socket.

What it can do: a lab VM started with ``-qmp unix:PATH,server=on,wait=off
-no-shutdown`` keeps its QEMU process when the guest (or this driver) powers off, so
all four actions work on that running process:
- on: ``system_reset`` + ``cont`` (a fresh boot from firmware) unless already running;
- off: ``stop`` (vCPUs halted: the "plug pulled" state), then ``system_reset`` so the
  next ``on`` boots from firmware again;
- cycle: ``system_reset`` + ``cont``;
- query: QMP ``query-status`` -- ``running`` is on, anything else (``shutdown``,
  ``paused``, ``prelaunch``...) is off; a socket nobody listens on any more means the
  QEMU process is gone: off.
What it cannot do: start a QEMU process that is not running (no socket): ``on`` then
fails with a message saying so -- launching VMs is the lab's job (netboot.lab.qemu),
not the appliance's. ``power_address`` is the socket path.
"""

from __future__ import annotations

import errno
import json
import os
from collections import deque
from collections.abc import Mapping
from typing import Any

from twisted.internet import defer, protocol
from twisted.internet.error import ConnectError
from twisted.protocols.basic import LineOnlyReceiver

from netboot.power.base import (
    InvalidPowerParameters,
    PowerError,
    PowerParameterSpec,
    PowerState,
)


class QMPError(Exception):
    pass


class QMPClient(LineOnlyReceiver):
    """One QMP conversation: greeting, capabilities, then commands in order."""

    delimiter = b"\n"
    MAX_LENGTH = 1 << 20

    def __init__(self) -> None:
        self.greeted: defer.Deferred[dict] = defer.Deferred()
        self._pending: deque[defer.Deferred] = deque()
        self._lost: Exception | None = None

    def lineReceived(self, line: bytes) -> None:  # noqa: N802 (twisted API name)
        line = line.strip()
        if not line:
            return
        try:
            message = json.loads(line)
        except ValueError:
            self.transport.loseConnection()
            return
        if "QMP" in message and not self.greeted.called:
            self.greeted.callback(message)
        elif "event" in message:
            return  # asynchronous events (STOP, RESET, SHUTDOWN...) are not answers
        elif self._pending:
            d = self._pending.popleft()
            if "error" in message:
                err = message["error"]
                d.errback(QMPError(f"{err.get('class', 'Error')}: {err.get('desc', '')}"))
            else:
                d.callback(message.get("return"))

    def execute(self, command: str, arguments: dict | None = None) -> defer.Deferred:
        if self._lost is not None:
            return defer.fail(self._lost)
        d: defer.Deferred = defer.Deferred()
        self._pending.append(d)
        message = {"execute": command}
        if arguments:
            message["arguments"] = arguments
        self.sendLine(json.dumps(message).encode())
        return d

    def connectionLost(self, reason: Any = None) -> None:  # noqa: N802 (twisted API name)
        self._lost = QMPError("QEMU closed the QMP connection")
        if not self.greeted.called:
            self.greeted.errback(self._lost)
        while self._pending:
            self._pending.popleft().errback(self._lost)


class _Factory(protocol.ClientFactory):
    def __init__(self) -> None:
        self.connected: defer.Deferred[QMPClient] = defer.Deferred()

    def buildProtocol(self, addr: Any) -> QMPClient:  # noqa: N802 (twisted API name)
        proto = QMPClient()
        proto.factory = self
        self.connected.callback(proto)
        return proto

    def clientConnectionFailed(self, connector: Any, reason: Any) -> None:  # noqa: N802
        if not self.connected.called:
            self.connected.errback(reason)


class QMPDriver:
    name = "qmp"
    parameters = (PowerParameterSpec("power_address", doc="path of the VM's QMP unix socket"),)
    can_query = True

    def __init__(self, reactor: Any, timeout: float = 10.0) -> None:
        self.reactor = reactor
        self.timeout = timeout

    def validate(self, params: Mapping[str, str]) -> dict[str, str]:
        path = params["power_address"].strip()
        if not os.path.isabs(path) or "\0" in path or len(path.encode()) > 107:
            raise InvalidPowerParameters(
                "power_address", f"{path!r} is not an absolute unix socket path (<= 107 bytes)"
            )
        return {**params, "power_address": path}

    def bmc_key(self, params: Mapping[str, str]) -> str:
        return params.get("power_address", "")

    def on(self, params: Mapping[str, str]) -> defer.Deferred[None]:
        return self._session(params, "power on", _on)

    def off(self, params: Mapping[str, str]) -> defer.Deferred[None]:
        return self._session(params, "power off", _off)

    def cycle(self, params: Mapping[str, str]) -> defer.Deferred[None]:
        return self._session(params, "power cycle", _cycle)

    def query(self, params: Mapping[str, str]) -> defer.Deferred[PowerState]:
        d = self._session(params, "query", _status)

        def gone(failure: Any) -> PowerState:
            failure.trap(_ProcessGone)
            return PowerState.OFF

        return d.addErrback(gone)

    def _session(self, params: Mapping[str, str], what: str, steps: Any) -> defer.Deferred:
        try:
            path = self.validate(params)["power_address"]
        except InvalidPowerParameters as exc:
            return defer.fail(PowerError(f"qmp parameters: {exc}", retryable=False))
        context = f"lab VM {what} via {path}"

        @defer.inlineCallbacks
        def run():
            factory = _Factory()
            connector = self.reactor.connectUNIX(path, factory, timeout=self.timeout)
            try:
                client = yield factory.connected
                yield client.greeted
                yield client.execute("qmp_capabilities")
                result = yield steps(client)
                return result
            finally:
                connector.disconnect()

        d = run()
        d.addTimeout(self.timeout, self.reactor)

        def failed(failure: Any) -> Any:
            if failure.check(defer.TimeoutError):
                raise PowerError(f"{context}: no answer within {self.timeout:g} s")
            if failure.check(ConnectError):
                code = getattr(failure.value, "osError", None)
                if code == errno.ENOENT or not os.path.exists(path):
                    raise PowerError(
                        f"{context}: no socket at {path}: the VM is not running (start it "
                        "with -qmp unix:PATH,server=on,wait=off -no-shutdown; netboot cannot "
                        "launch lab VMs)",
                        retryable=False,
                    )
                raise _ProcessGone(
                    f"{context}: nothing listens on {path}: the QEMU process has exited "
                    "(netboot cannot launch lab VMs)"
                )
            if failure.check(QMPError):
                raise PowerError(f"{context}: {failure.getErrorMessage()}")
            return failure

        return d.addErrback(failed)


class _ProcessGone(PowerError):
    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)


@defer.inlineCallbacks
def _status(client: QMPClient):
    status = yield client.execute("query-status")
    return PowerState.ON if status.get("status") == "running" else PowerState.OFF


@defer.inlineCallbacks
def _on(client: QMPClient):
    state = yield _status(client)
    if state is not PowerState.ON:
        yield client.execute("system_reset")
        yield client.execute("cont")


@defer.inlineCallbacks
def _off(client: QMPClient):
    yield client.execute("stop")
    yield client.execute("system_reset")


@defer.inlineCallbacks
def _cycle(client: QMPClient):
    yield client.execute("system_reset")
    yield client.execute("cont")
