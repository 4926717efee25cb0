"""``netboot serve``: open the store, start every service, log to stdout until stopped."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from twisted.internet import reactor as default_reactor
from twisted.logger import Logger, globalLogBeginner, textFileLogObserver

from netboot.config import Config
from netboot.metrics import Metrics
from netboot.runtime import Runtime
from netboot.sdnotify import Notifier
from netboot.service import make_service
from netboot.store.sqlite import StoreError, open_store

log = Logger(namespace="netboot")


def serve(cfg: Config, reactor=default_reactor, config_path: Path | None = None) -> int:
    globalLogBeginner.beginLoggingTo([textFileLogObserver(sys.stdout)], redirectStandardIO=False)
    try:
        store = open_store(cfg.database_path)
    except StoreError as exc:
        print(f"netboot: {exc}", file=sys.stderr)
        return 2
    metrics = Metrics(store, time.time)
    top = make_service(cfg, store, reactor, metrics=metrics)
    # sd_notify READY/RELOADING/STOPPING, status.json, SIGHUP -> reload (runtime.py).
    runtime = Runtime(
        reactor,
        top,
        cfg,
        config_path,
        lambda new: make_service(new, store, reactor, metrics=metrics),
        Notifier.from_environ(os.environ),
    )
    runtime.hear_sighup()
    failed: list[BaseException] = []

    def start() -> None:
        try:
            top.startService()
        except Exception as exc:  # a port we cannot bind: say which, then stop
            failed.append(exc)
            log.critical("cannot start: {error}", error=str(exc))
            print(f"netboot: cannot start: {exc}", file=sys.stderr)
            reactor.stop()
            return
        log.info(
            "netboot serving: http {url}, tftp {tftp}:{tport}, dhcp on {ifaces}",
            url=cfg.http_base_url,
            tftp=cfg.tftp.bind,
            tport=cfg.tftp.port,
            ifaces=",".join(cfg.dhcp.interfaces) if cfg.dhcp else "(disabled)",
        )
        # A line tests and the demo wait for: every listener is bound.
        print("netboot: ready", flush=True)
        runtime.ready()

    reactor.callWhenRunning(start)
    reactor.addSystemEventTrigger("before", "shutdown", runtime.stopping)
    reactor.addSystemEventTrigger("before", "shutdown", top.stopService)
    reactor.run()
    store.close()
    return 1 if failed else 0
