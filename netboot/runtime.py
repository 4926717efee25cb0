"""What the serving process tells the outside world, and how it hears SIGHUP.

Glue between ``netboot serve``, systemd and operators: ``READY=1`` / ``RELOADING=1`` /
``STOPPING=1`` through sd_notify, the status file ``netboot status`` reads, and SIGHUP
(``systemctl reload``) turned into a serialised ``Reloader.request()`` on the reactor.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from twisted.application import service
from twisted.logger import Logger

from netboot.config import Config, load_config
from netboot.reload import Reloader
from netboot.sdnotify import Notifier
from netboot.status import config_digest, write_status

__all__ = ["Runtime"]

log = Logger(namespace="netboot.runtime")


class Runtime:
    def __init__(
        self,
        reactor: Any,
        top: service.MultiService,
        cfg: Config,
        config_path: Path | None,
        build: Callable[[Config], service.MultiService],
        notifier: Notifier,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.reactor = reactor
        self.top = top
        self.cfg = cfg
        self.config_path = config_path
        self.notifier = notifier
        self.clock = clock
        self.started = clock()
        self.last_reload: dict[str, Any] | None = None
        self._serving = False
        self._early_sighup = False
        # What the running configuration was read from (status: "changed on disk?").
        self.loaded_sha256 = config_digest(config_path) if config_path else None
        self.reloader = (
            Reloader(
                config_path,
                cfg,
                top,
                build,
                load_config,
                on_done=self._reloaded,
                on_begin=self.notifier.reloading,
            )
            if config_path is not None
            else None
        )

    def _summary(self, cfg: Config) -> str:
        dhcp = ",".join(cfg.dhcp.interfaces) if cfg.dhcp else "off"
        return (
            f"serving http {cfg.http_base_url}, tftp {cfg.tftp.bind}:{cfg.tftp.port}, dhcp {dhcp}"
        )

    def _write(self, state: str, message: str = "") -> None:
        try:
            write_status(
                self.cfg.state_dir,
                state=state,
                cfg=self.cfg,
                config_path=self.config_path,
                config_sha256=self.loaded_sha256,
                services=list(self.top),
                started=self.started,
                message=message,
                last_reload=self.last_reload,
                now=self.clock(),
            )
        except OSError as exc:
            log.warn("cannot write the status file: {error}", error=exc)

    def hear_sighup(self) -> None:
        """Take over SIGHUP now (its default action would kill the process); a SIGHUP
        that arrives before ``ready()`` is kept and applied once serving."""
        if self.reloader is not None:
            signal.signal(signal.SIGHUP, self._on_sighup)

    def ready(self) -> None:
        """Every listener is bound: tell systemd, write the status file."""
        summary = self._summary(self.cfg)
        self._write("ready", summary)
        self.notifier.ready(summary)
        self._serving = True
        if self.reloader is not None:
            log.info("SIGHUP (systemctl reload) re-reads {path}", path=str(self.config_path))
            if self._early_sighup:
                self.reloader.request()

    def _on_sighup(self, signum: int, frame: Any) -> None:
        # A signal handler runs between bytecodes: hand over to the reactor thread.
        self.reactor.callFromThread(self._sighup)

    def _sighup(self) -> None:
        if self._serving:
            self.reloader.request()
        else:
            self._early_sighup = True

    def _reloaded(self, cfg: Config, ok: bool, message: str) -> None:
        self.cfg = cfg
        if ok and self.config_path is not None:
            self.loaded_sha256 = config_digest(self.config_path)
        self.last_reload = {"time": self.clock(), "ok": ok, "message": message}
        status = self._summary(cfg) if ok else f"{self._summary(cfg)}; {message}"
        self._write("ready", status)
        self.notifier.ready(status)

    def stopping(self) -> None:
        self.notifier.stopping()
        self._write("stopped", "stopped")
