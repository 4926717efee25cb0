"""``python -m netboot.dhcp.run --config FILE``: only the DHCP service of a netboot
configuration, in the foreground (same store, same code as ``netboot serve``).

For benchmarks against DHCP-only peers (Kea, dnsmasq with DNS off) and for debugging
DHCP without HTTP/TFTP/DNS listeners. Prints "netboot-dhcp: ready" once bound.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from twisted.internet import reactor
from twisted.logger import globalLogBeginner, textFileLogObserver

from netboot.config import ConfigError, load_config
from netboot.dhcp.service import DHCPService
from netboot.store.sqlite import StoreError, open_store


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m netboot.dhcp.run")
    ap.add_argument("--config", "-c", type=Path, required=True)
    args = ap.parse_args(argv)
    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        print(f"netboot-dhcp: bad configuration: {exc}", file=sys.stderr)
        return 2
    if cfg.dhcp is None:
        print("netboot-dhcp: the configuration has no [dhcp] table", file=sys.stderr)
        return 2
    try:
        open_store(cfg.database_path).close()  # create / migrate the schema
    except StoreError as exc:
        print(f"netboot-dhcp: {exc}", file=sys.stderr)
        return 2
    globalLogBeginner.beginLoggingTo([textFileLogObserver(sys.stdout)], redirectStandardIO=False)
    dhcp = DHCPService(cfg.dhcp, cfg.database_path, cfg.http_base_url, reactor, boot=cfg.boot)
    failed: list[BaseException] = []

    def start() -> None:
        try:
            dhcp.startService()
        except Exception as exc:
            failed.append(exc)
            print(f"netboot-dhcp: cannot start: {exc}", file=sys.stderr, flush=True)
            reactor.stop()
            return
        print("netboot-dhcp: ready", flush=True)

    reactor.callWhenRunning(start)
    reactor.addSystemEventTrigger("before", "shutdown", dhcp.stopService)
    signal.signal(signal.SIGTERM, lambda *_: reactor.callFromThread(reactor.stop))
    reactor.run(installSignalHandlers=False)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
