"""The webhook driver against a real HTTP server on loopback, and the qmp driver against a
real QEMU process (TCG, no disk, no NIC: it sits in SeaBIOS) through its QMP socket."""

from __future__ import annotations

import base64
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from twisted.web import resource, server

from netboot.power.base import PowerError, PowerState
from netboot.power.qmp import QMPDriver
from netboot.power.webhook import WebhookDriver
from tests.integration.power_lab import (
    SilentServer,
    ThreadedReactor,
    free_port,
    stop_process,
    wait_until,
)

TIMEOUT = 5.0


@pytest.fixture(scope="module")
def rx() -> Iterator[ThreadedReactor]:
    r = ThreadedReactor()
    yield r
    r.close()


class FakePDU(resource.Resource):
    """A power strip with a web API: POST /on, POST /off, GET /state; basic auth."""

    isLeaf = True

    def __init__(self, user: str, password: str) -> None:
        super().__init__()
        self.expected = b"Basic " + base64.b64encode(f"{user}:{password}".encode())
        self.state = "stopped"
        self.requests: list[tuple[bytes, bytes]] = []

    def render(self, request):
        self.requests.append((request.method, request.path))
        if request.getHeader(b"authorization") != self.expected:
            request.setResponseCode(401)
            return b"unauthorized"
        if request.method == b"POST" and request.path in (b"/on", b"/off"):
            self.state = "running" if request.path == b"/on" else "stopped"
            return b"ok"
        if request.method == b"GET" and request.path == b"/state":
            return f'{{"status": "{self.state}"}}'.encode()
        if request.path == b"/broken":
            request.setResponseCode(503)
            return b"busy"
        request.setResponseCode(404)
        return b"no"


@pytest.fixture(scope="module")
def pdu(rx: ThreadedReactor) -> Iterator[tuple[FakePDU, str]]:
    site = FakePDU("pdu", "hunter2")
    port = rx.call(lambda: rx.reactor.listenTCP(0, server.Site(site), interface="127.0.0.1"))
    yield site, f"http://127.0.0.1:{port.getHost().port}"
    rx.call(port.stopListening)


def hook(base: str, **extra: str) -> dict[str, str]:
    return {
        "power_on_uri": f"{base}/on",
        "power_off_uri": f"{base}/off",
        "power_query_uri": f"{base}/state",
        "power_user": "pdu",
        "power_pass": "hunter2",
        **extra,
    }


def test_webhook_powers_and_queries_through_the_urls(rx, pdu):
    site, base = pdu
    driver = WebhookDriver(rx.reactor, timeout=TIMEOUT)
    rx.call(driver.on, hook(base))
    assert site.state == "running"
    assert rx.call(driver.query, hook(base)) is PowerState.ON
    rx.call(driver.cycle, hook(base))
    assert site.requests[-2:] == [(b"POST", b"/off"), (b"POST", b"/on")]
    rx.call(driver.off, hook(base))
    assert rx.call(driver.query, hook(base)) is PowerState.OFF


def test_webhook_errors_are_clear_and_bounded(rx, pdu):
    site, base = pdu
    driver = WebhookDriver(rx.reactor, timeout=TIMEOUT)
    with pytest.raises(PowerError, match=r"refused the credentials \(HTTP 401\)") as info:
        rx.call(driver.on, hook(base, power_pass="wrong"))
    assert not info.value.retryable
    with pytest.raises(PowerError, match="HTTP 503") as info:
        rx.call(driver.on, hook(base, power_on_uri=f"{base}/broken"))
    assert info.value.retryable

    closed = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(PowerError, match="connection refused"):
        rx.call(driver.on, hook(closed))

    silent = SilentServer(socket.SOCK_STREAM)
    start = time.monotonic()
    try:
        with pytest.raises(PowerError, match=f"no answer within {TIMEOUT:g} s") as info:
            rx.call(driver.on, hook(f"http://{silent.address}"), timeout=TIMEOUT + 20)
    finally:
        silent.close()
    assert info.value.retryable
    assert time.monotonic() - start < TIMEOUT + 5


# -- qmp: a running lab VM ----------------------------------------------------------------


@pytest.fixture
def lab_vm(tmp_path: Path) -> Iterator[tuple[subprocess.Popen, Path]]:
    qmp = tmp_path / "qmp.sock"
    proc = subprocess.Popen(
        [
            "qemu-system-x86_64",
            "-accel",
            "tcg",
            "-m",
            "64",
            "-nodefaults",  # no NIC, no disk: nothing reaches any network
            "-display",
            "none",
            "-serial",
            "none",
            "-monitor",
            "none",
            "-no-shutdown",
            "-qmp",
            f"unix:{qmp},server=on,wait=off",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        wait_until(lambda: qmp.exists() or proc.poll() is not None, 60, "QEMU's QMP socket")
        if proc.poll() is not None:
            raise AssertionError(f"QEMU exited: {proc.stderr.read().decode(errors='replace')}")
        yield proc, qmp
    finally:
        stop_process(proc)


def test_qmp_drives_a_running_lab_vm(rx, lab_vm):
    proc, qmp = lab_vm
    driver = QMPDriver(rx.reactor, timeout=15)
    params = {"power_address": str(qmp)}
    assert rx.call(driver.query, params) is PowerState.ON
    rx.call(driver.off, params)
    assert rx.call(driver.query, params) is PowerState.OFF
    rx.call(driver.on, params)
    assert rx.call(driver.query, params) is PowerState.ON
    rx.call(driver.cycle, params)
    assert rx.call(driver.query, params) is PowerState.ON
    assert proc.poll() is None


def test_qmp_says_what_it_cannot_do(rx, lab_vm, tmp_path):
    proc, qmp = lab_vm
    driver = QMPDriver(rx.reactor, timeout=15)
    with pytest.raises(PowerError, match="the VM is not running") as info:
        rx.call(driver.on, {"power_address": str(tmp_path / "missing.sock")})
    assert not info.value.retryable
    os.killpg(proc.pid, signal.SIGKILL)  # the QEMU process dies; its socket file stays
    proc.wait(timeout=10)
    assert rx.call(driver.query, {"power_address": str(qmp)}) is PowerState.OFF
    with pytest.raises(PowerError, match="cannot launch lab VMs"):
        rx.call(driver.on, {"power_address": str(qmp)})
