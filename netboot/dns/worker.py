"""Extra DNS answering processes (``dns.workers``), sharing the port with SO_REUSEPORT.

One Python process tops out near the UDP syscall rate of one core; the kernel spreads
clients (by source address and port) over every socket bound with SO_REUSEPORT, so N
workers answer with N cores. Each worker is a full DNS service of its own -- its own
cache, the same zones read from the same SQLite file (its change marker sees the main
process's writes) -- and does nothing else.

The parent sends the settings as a pickle on the worker's stdin (parent and child are
the same trusted program) and stops the workers when the DNS service stops; a worker
also exits when its parent dies (PR_SET_PDEATHSIG), so none outlives the appliance.

    python -m netboot.dns.worker     # started by WorkerPool, never by hand
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import pickle
import signal
import sys
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

from twisted.internet import protocol
from twisted.logger import Logger

from netboot.dns.settings import DNSConfig

log = Logger(namespace="netboot.dns")
RESTART_DELAY = 1.0
PR_SET_PDEATHSIG = 1


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    dns: DNSConfig
    server_address: IPv4Address
    database: Path
    parent_pid: int = 0  # the appliance; a worker that outlived it exits at once


class _WorkerProcess(protocol.ProcessProtocol):
    def __init__(self, pool: WorkerPool, index: int) -> None:
        self.pool = pool
        self.index = index

    def connectionMade(self) -> None:  # noqa: N802 (twisted API name)
        self.transport.write(pickle.dumps(self.pool.spec))
        self.transport.closeStdin()

    def processEnded(self, reason: Any) -> None:  # noqa: N802 (twisted API name)
        self.pool.ended(self.index, reason)


class WorkerPool:
    """Start ``count`` workers; restart one that dies; stop them all on ``stop()``."""

    def __init__(self, reactor: Any, spec: WorkerSpec, count: int) -> None:
        self.reactor = reactor
        self.spec = spec
        self.count = count
        self.processes: dict[int, Any] = {}
        self.stopping = False

    def start(self) -> None:
        for index in range(self.count):
            self._spawn(index)

    def _spawn(self, index: int) -> None:
        if self.stopping:
            return
        self.processes[index] = self.reactor.spawnProcess(
            _WorkerProcess(self, index),
            sys.executable,
            [sys.executable, "-m", "netboot.dns.worker"],
            env=dict(os.environ),
            childFDs={0: "w", 1: 1, 2: 2},
        )
        log.info(
            "dns worker {index} started (pid {pid})", index=index, pid=self.processes[index].pid
        )

    def ended(self, index: int, reason: Any) -> None:
        self.processes.pop(index, None)
        if not self.stopping:
            log.warn(
                "dns worker {index} exited ({reason}); restarting", index=index, reason=reason.value
            )
            self.reactor.callLater(RESTART_DELAY, self._spawn, index)

    def stop(self) -> None:
        self.stopping = True
        for process in list(self.processes.values()):
            with contextlib.suppress(Exception):  # already gone
                process.signalProcess("TERM")


def _die_with_parent() -> None:
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


def main() -> int:
    _die_with_parent()
    try:
        spec: WorkerSpec = pickle.load(sys.stdin.buffer)
    except (EOFError, pickle.UnpicklingError):
        return 1  # the parent went away before telling us anything
    if spec.parent_pid and os.getppid() != spec.parent_pid:
        return 1  # the parent died before PR_SET_PDEATHSIG was in place
    from twisted.internet import reactor
    from twisted.logger import globalLogBeginner, textFileLogObserver

    from netboot.dns.build import make_resolver
    from netboot.dns.server import listen_dns
    from netboot.store.sqlite import open_store

    globalLogBeginner.beginLoggingTo([textFileLogObserver(sys.stdout)], redirectStandardIO=False)
    store = open_store(spec.database)
    resolver = make_resolver(spec.dns, spec.server_address, store, reactor)
    listen_dns(reactor, resolver, str(spec.dns.bind), spec.dns.port, reuse_port=True)
    reactor.run()
    store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
