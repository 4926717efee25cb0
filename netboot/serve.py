"""``netboot serve``: open the store, start every service, log to stdout until stopped."""

from __future__ import annotations

import sys

from twisted.internet import reactor as default_reactor
from twisted.logger import Logger, globalLogBeginner, textFileLogObserver

from netboot.config import Config
from netboot.service import make_service
from netboot.store.sqlite import StoreError, open_store

log = Logger(namespace="netboot")


def serve(cfg: Config, reactor=default_reactor) -> int:
    globalLogBeginner.beginLoggingTo([textFileLogObserver(sys.stdout)], redirectStandardIO=False)
    try:
        store = open_store(cfg.database_path)
    except StoreError as exc:
        print(f"netboot: {exc}", file=sys.stderr)
        return 2
    top = make_service(cfg, store, reactor)
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

    reactor.callWhenRunning(start)
    reactor.addSystemEventTrigger("before", "shutdown", top.stopService)
    reactor.run()
    store.close()
    return 1 if failed else 0
