#!/usr/bin/env python3
"""Server CPU per TFTP block of this checkout against another one, on loopback.

CPU time is much less sensitive to other load on the machine than throughput, so this
is how a change to the TFTP server is judged on a busy box. Each round starts
`python -m netboot.tftp.server` (one process, 127.0.0.1, an ephemeral port) from this
checkout and from `--baseline` (a directory holding another `netboot` package, put
first on PYTHONPATH), alternately; `clients` concurrent atftp clients fetch one file;
the server's CPU is the scheduler's nanosecond sum over its threads
(/proc/PID/task/*/schedstat) before and after. Prints every run, the median per side,
and ends with `RATIO tftp-cpu <setting> ours/baseline <x.xx>` (baseline CPU / ours:
above 1.00, ours is cheaper) and the same for throughput.

    git archive OLD netboot | tar -x -C /tmp/old
    .venv/bin/python bench/tftp_cpu.py --baseline /tmp/old --blksize 512 --clients 20

Only loopback traffic; every client runs under a timeout; servers are stopped by PID.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> tuple[float, float, float]:
    """(user, system, total) CPU seconds of every thread of `pid`. user and system come
    in clock ticks (10 ms); total is the scheduler's nanosecond sum over the threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    total = sum(
        int((task / "schedstat").read_text().split()[0])
        for task in Path(f"/proc/{pid}/task").iterdir()
    )
    return int(fields[11]) / TICK, int(fields[12]) / TICK, total / 1e9


def one_run(
    args: argparse.Namespace, root: Path, out: Path, pythonpath: str | None
) -> tuple[float, float, str]:
    """One server, one round of clients: (us per block, MB/s, a report line)."""
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    server = subprocess.Popen(
        [sys.executable, "-m", "netboot.tftp.server", "--root", str(root)]
        + ["--address", "127.0.0.1", "--port", "0", "--max-sessions", "1024"]
        + ["--max-windowsize", "16", "--max-blksize", "1468"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        line = server.stdout.readline().decode()  # type: ignore[union-attr]
        assert line.startswith("listening "), f"server did not start: {line!r}"
        port = line.split()[1]
        opts = ["--option", f"blksize {args.blksize}"]
        if args.windowsize > 1:
            opts += ["--option", f"windowsize {args.windowsize}"]
        size = args.size_mb * 1048576
        blocks = args.clients * (size // args.blksize + 1)
        cpu0, t0 = cpu_seconds(server.pid), time.monotonic()
        clients = [
            subprocess.Popen(
                ["timeout", str(args.timeout), "atftp", *opts, "--get", "-r", "f.img"]
                + ["-l", str(out / f"c{i}"), "127.0.0.1", port],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for i in range(args.clients)
        ]
        for client in clients:
            client.wait()
        wall = time.monotonic() - t0
        cpu1 = cpu_seconds(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=10)
    ok = sum((out / f"c{i}").stat().st_size == size for i in range(args.clients))
    for i in range(args.clients):
        (out / f"c{i}").unlink(missing_ok=True)
    per_block = (cpu1[2] - cpu0[2]) / blocks * 1e6
    mbs = ok * size / 1e6 / wall
    report = (
        f"{ok}/{args.clients} ok, {mbs:.1f} MB/s, server CPU {per_block:.2f} us/block "
        f"(ticks: user {(cpu1[0] - cpu0[0]) / blocks * 1e6:.1f}, "
        f"sys {(cpu1[1] - cpu0[1]) / blocks * 1e6:.1f}), load {os.getloadavg()[0]:.1f}"
    )
    return per_block, mbs, report


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--baseline", type=Path, required=True, help="dir holding netboot/")
    parser.add_argument("--blksize", type=int, default=512)
    parser.add_argument("--windowsize", type=int, default=1)
    parser.add_argument("--size-mb", type=int, default=8)
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=300)
    args = parser.parse_args()
    if not (args.baseline / "netboot" / "tftp" / "server.py").is_file():
        parser.error(f"{args.baseline} holds no netboot/tftp/server.py")

    setting = f"{args.blksize}-w{args.windowsize}-x{args.clients}"
    results: dict[str, list[tuple[float, float]]] = {"baseline": [], "ours": []}
    with tempfile.TemporaryDirectory(prefix="nbb-tftpcpu.") as work:
        root = Path(work) / "root"
        root.mkdir()
        (root / "f.img").write_bytes(os.urandom(args.size_mb * 1048576))
        out = Path(tempfile.mkdtemp(prefix="nbb-tftpcpu-out.", dir="/dev/shm"))
        try:
            for _ in range(args.rounds):
                for side, path in (("baseline", str(args.baseline)), ("ours", None)):
                    per_block, mbs, report = one_run(args, root, out, path)
                    results[side].append((per_block, mbs))
                    print(f"{side:8} {setting}: {report}", flush=True)
        finally:
            for leftover in out.iterdir():
                leftover.unlink()
            out.rmdir()
    cpu = {side: statistics.median(r[0] for r in runs) for side, runs in results.items()}
    mbs = {side: statistics.median(r[1] for r in runs) for side, runs in results.items()}
    print(f"median us/block: baseline {cpu['baseline']:.2f}, ours {cpu['ours']:.2f}")
    print(f"median MB/s: baseline {mbs['baseline']:.1f}, ours {mbs['ours']:.1f}")
    print(
        f"RATIO tftp-cpu cpu-per-block-{setting} ours/baseline {cpu['baseline'] / cpu['ours']:.2f}"
    )
    print(
        f"RATIO tftp-cpu mbs-{setting} ours/baseline {mbs['ours'] / max(mbs['baseline'], 1e-9):.2f}"
    )


if __name__ == "__main__":
    main()
