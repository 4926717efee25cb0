"""Headless Chromium (Debian's ``chromium``) driven over the DevTools protocol, for the
web UI tests.

Chromium runs inside a lab client namespace (``LabHost.popen``), so it sees only the lab
bridge: whatever it might try to reach besides the appliance has no route. It is driven
with ``--remote-debugging-pipe`` (NUL-terminated JSON messages on its fds 3 and 4) over
two FIFOs, so no debugging port is opened anywhere. Every wait is bounded.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import select
import shlex
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
FLAGS = (
    "--headless",
    "--no-sandbox",  # root in CI; the namespace is the isolation here
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,900",
    "--remote-debugging-pipe",
)


class BrowserError(RuntimeError):
    pass


class Browser:
    """One Chromium process; ``page()`` opens a tab (optionally in a fresh, cookie-less
    browser context)."""

    def __init__(
        self, popen: Callable[..., subprocess.Popen], workdir: Path, timeout: float = 60
    ) -> None:
        self.timeout = timeout
        workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = workdir / "chromium.log"
        to_browser, from_browser = workdir / "cdp.in", workdir / "cdp.out"
        for fifo in (to_browser, from_browser):
            if fifo.exists():
                fifo.unlink()
            os.mkfifo(fifo)
        # O_RDWR on a FIFO never blocks (Linux), so neither side waits for the other.
        self._out = os.open(to_browser, os.O_RDWR)
        self._in = os.open(from_browser, os.O_RDWR | os.O_NONBLOCK)
        profile = workdir / "profile"
        profile.mkdir(exist_ok=True)
        command = " ".join(
            [shlex.quote(CHROMIUM), *FLAGS, shlex.quote(f"--user-data-dir={profile}")]
        )
        with open(self.log_path, "ab") as log:
            self.proc = popen(
                [
                    "sh",
                    "-c",
                    f"exec {command} about:blank 3<{shlex.quote(str(to_browser))} "
                    f"4>{shlex.quote(str(from_browser))}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "HOME": str(workdir)},
            )
        self._next_id = 0
        self._buffer = b""
        self._events: list[dict] = []
        self.call("Target.setDiscoverTargets", {"discover": False})

    # -- protocol -------------------------------------------------------------------

    def _send(self, message: dict) -> None:
        data = json.dumps(message).encode() + b"\0"
        while data:
            written = os.write(self._out, data)
            data = data[written:]

    def _receive(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            if self.proc.poll() is not None:
                raise BrowserError(f"chromium exited {self.proc.returncode}: {self.log_tail()}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no DevTools message within the deadline: {self.log_tail()}")
            ready, _, _ = select.select([self._in], [], [], min(remaining, 0.5))
            if ready:
                with contextlib.suppress(BlockingIOError):
                    self._buffer += os.read(self._in, 1 << 20)
        message, _, self._buffer = self._buffer.partition(b"\0")
        return json.loads(message)

    def call(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        self._next_id += 1
        ident = self._next_id
        message: dict[str, Any] = {"id": ident, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        self._send(message)
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._receive(deadline)
            if reply.get("id") == ident:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self._events.append(reply)

    def wait_event(
        self, method: str, session: str | None, since: int = 0, timeout: float | None = None
    ) -> dict:
        """The first ``method`` event for ``session`` at index >= ``since`` in the log."""
        deadline = time.monotonic() + (timeout or self.timeout)
        index = since
        while True:
            while index < len(self._events):
                event = self._events[index]
                index += 1
                if event.get("method") == method and event.get("sessionId") == session:
                    return event
            self._events.append(self._receive(deadline))

    def mark(self) -> int:
        return len(self._events)

    def log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def page(self, fresh_context: bool = False) -> Page:
        params: dict[str, Any] = {"url": "about:blank"}
        if fresh_context:
            params["browserContextId"] = self.call("Target.createBrowserContext")[
                "browserContextId"
            ]
        target = self.call("Target.createTarget", params)["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        page = Page(self, session)
        page.call("Page.enable")
        page.call("Network.enable")
        page.call("Runtime.enable")
        return page

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self._send({"id": 0, "method": "Browser.close", "params": {}})
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(timeout=10)
        for fd in (self._in, self._out):
            with contextlib.suppress(OSError):
                os.close(fd)


class Page:
    def __init__(self, browser: Browser, session: str) -> None:
        self.browser = browser
        self.session = session
        self.last_status: int | None = None

    def call(self, method: str, params: dict | None = None) -> dict:
        return self.browser.call(method, params, self.session)

    def _settle(self, since: int) -> None:
        """Wait for the load event after ``since``; remember the document's HTTP status."""
        self.browser.wait_event("Page.loadEventFired", self.session, since)
        self.last_status = None
        for event in self.browser._events[since:]:
            if (
                event.get("method") == "Network.responseReceived"
                and event.get("sessionId") == self.session
                and event["params"].get("type") == "Document"
            ):
                self.last_status = event["params"]["response"]["status"]

    def goto(self, url: str) -> int | None:
        since = self.browser.mark()
        result = self.call("Page.navigate", {"url": url})
        if result.get("errorText"):
            raise BrowserError(f"navigating to {url}: {result['errorText']}")
        self._settle(since)
        return self.last_status

    def js(self, expression: str) -> Any:
        result = self.call(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
        )
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def submit(self, expression: str) -> int | None:
        """Run JS that submits a form or clicks a button, then wait for the next page."""
        since = self.browser.mark()
        self.js(expression)
        self._settle(since)
        return self.last_status

    @property
    def url(self) -> str:
        return self.js("location.href")

    def screenshot(self, path: Path) -> None:
        metrics = self.call("Page.getLayoutMetrics")
        size = metrics.get("cssContentSize") or metrics["contentSize"]
        clip = {
            "x": 0,
            "y": 0,
            "width": max(size["width"], 1280),
            "height": min(max(size["height"], 200), 4000),
            "scale": 1,
        }
        shot = self.call(
            "Page.captureScreenshot",
            {"format": "png", "clip": clip, "captureBeyondViewport": True},
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))
