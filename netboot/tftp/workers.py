"""Extra TFTP worker processes that share the TFTP port, to use more than one core.

One Python process tops out at a few tens of thousands of lock-step ACKs per second
(about 8 us of protocol work per ACK plus the reactor and system calls). A boot storm of
lock-step clients (PXE ROMs, pxelinux, grub) needs more, so `[tftp] workers = N` runs
N - 1 extra processes (`python -m netboot.tftp.worker`), each a complete TFTP server on
the same address and port with SO_REUSEPORT: the kernel hashes each request's source
address and port to one of them, and the whole transfer stays in that process.
Per-process consequences: `max_sessions` applies to each process, and /metrics counts
only the main process's transfers.

Workers get SIGTERM when the parent dies (PR_SET_PDEATHSIG) and are stopped by PID.
"""

from __future__ import annotations

import ctypes
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from twisted.application import service
from twisted.logger import Logger

__all__ = ["WorkerPool", "worker_argv"]

log = Logger(namespace="netboot.tftp")
_PR_SET_PDEATHSIG = 1


def worker_argv(
    root: Path,
    address: str,
    port: int,
    *,
    database: Path | None = None,
    http_base: str | None = None,
    **opts: Any,
) -> list[str]:
    """Command line of one worker; `opts` are TFTPServerProtocol keyword arguments."""
    argv = [sys.executable, "-m", "netboot.tftp.worker"]
    argv += ["--root", str(root), "--address", address, "--port", str(port)]
    for key in ("max_sessions", "max_blksize", "max_windowsize"):
        if key in opts:
            argv += [f"--{key.replace('_', '-')}", str(opts[key])]
    if opts.get("use_gso") is False:
        argv.append("--no-gso")
    if opts.get("fastpath") is False:
        argv.append("--no-fastpath")
    if database is not None:
        argv += ["--database", str(database), "--http-base", str(http_base)]
    return argv


def _die_with_parent() -> None:
    # Runs in the child between fork and exec.
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class WorkerPool(service.Service):
    """Start `count` workers on startService; stop exactly those PIDs on stopService."""

    def __init__(self, argv: Sequence[str], count: int) -> None:
        self.setName("tftp-workers")
        self.argv = list(argv)
        self.count = count
        self.procs: list[subprocess.Popen] = []

    def startService(self) -> None:  # noqa: N802 (twisted API name)
        super().startService()
        for _ in range(self.count):
            proc = subprocess.Popen(
                self.argv, stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent
            )
            self.procs.append(proc)
        log.info(
            "tftp: {count} worker processes share the port: {pids}",
            count=self.count,
            pids=",".join(str(p.pid) for p in self.procs),
        )

    def stopService(self) -> None:  # noqa: N802 (twisted API name)
        super().stopService()
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        self.procs.clear()
