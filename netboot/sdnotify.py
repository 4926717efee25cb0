"""Tell systemd how the service is doing: the sd_notify(3) protocol, without libsystemd.

systemd passes a datagram socket in ``$NOTIFY_SOCKET`` (a path, or an abstract socket
written ``@name``). Each message is newline-separated ``KEY=VALUE`` lines: ``READY=1``
once every listener is bound (Type=notify), ``RELOADING=1`` while a SIGHUP reload runs
(``MONOTONIC_USEC`` is required with it by systemd >= 253's Type=notify-reload and
ignored before), ``STOPPING=1`` on shutdown, ``STATUS=`` free text shown by
``systemctl status``. Outside systemd (no variable) every call is a no-op.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Mapping

from twisted.logger import Logger

__all__ = ["Notifier", "encode_state"]

log = Logger(namespace="netboot.sdnotify")


def encode_state(**fields: str | int) -> bytes:
    """``encode_state(READY=1, STATUS="ok")`` -> b"READY=1\\nSTATUS=ok"."""
    lines = []
    for key, value in fields.items():
        text = str(value)
        if "\n" in text:  # one line per field: a newline would start a bogus key
            text = text.replace("\n", " ")
        lines.append(f"{key}={text}")
    return "\n".join(lines).encode()


def _address(path: str) -> str | bytes:
    # "@name" is Linux's abstract namespace: a leading NUL byte on the wire.
    return b"\0" + path[1:].encode() if path.startswith("@") else path


class Notifier:
    """Sends state to systemd's notify socket; silent when not run by systemd."""

    def __init__(self, socket_path: str | None) -> None:
        self.socket_path = socket_path or None
        self.sent: list[bytes] = []  # what was sent, for `netboot status` and tests

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Notifier:
        return cls(environ.get("NOTIFY_SOCKET"))

    @property
    def enabled(self) -> bool:
        return self.socket_path is not None

    def send(self, message: bytes) -> bool:
        if self.socket_path is None:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(message, _address(self.socket_path))
        except OSError as exc:
            # systemd gone or socket not writable: the service still serves.
            log.warn("sd_notify to {path} failed: {error}", path=self.socket_path, error=exc)
            return False
        self.sent.append(message)
        return True

    def ready(self, status: str) -> bool:
        return self.send(encode_state(READY=1, STATUS=status))

    def reloading(self, status: str = "reloading configuration") -> bool:
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.send(encode_state(RELOADING=1, MONOTONIC_USEC=usec, STATUS=status))

    def stopping(self) -> bool:
        return self.send(encode_state(STOPPING=1, STATUS="stopping"))

    def status(self, text: str) -> bool:
        return self.send(encode_state(STATUS=text))
