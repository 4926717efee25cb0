#!/usr/bin/env python3
"""Server CPU time per TFTP block: less sensitive to machine load than throughput.

Starts `python -m netboot.tftp.server` on 127.0.0.1 (an ephemeral port, one process),
fetches one file with `clients` concurrent atftp clients, and reads the server's CPU
time (user + system, all threads, /proc/PID/stat) before and after. Prints the wall
throughput and the CPU microseconds per DATA block; repeat with `--repeat`.

    .venv/bin/python bench/tftp_cpu.py --blksize 512 --windowsize 1 --size-mb 32
    PYTHONPATH=/path/to/other/checkout .venv/bin/python bench/tftp_cpu.py ...  # compare

Only loopback traffic; every client runs under a timeout; the server is stopped by PID.
"""

from __future__ import annotations

import argparse
import os
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
    return int(fields[11]) / TICK, int(fields[12]) / TICK, total / 1e9  # utime, stime


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--blksize", type=int, default=512)
    parser.add_argument("--windowsize", type=int, default=1)
    parser.add_argument("--size-mb", type=int, default=32)
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=300)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="nbb-tftpcpu.") as work:
        root = Path(work) / "root"
        root.mkdir()
        size = args.size_mb * 1048576
        (root / "f.img").write_bytes(os.urandom(size))
        out = Path(tempfile.mkdtemp(prefix="nbb-tftpcpu-out.", dir="/dev/shm"))
        server = subprocess.Popen(
            [sys.executable, "-m", "netboot.tftp.server", "--root", str(root)]
            + ["--address", "127.0.0.1", "--port", "0", "--max-sessions", "1024"]
            + ["--max-windowsize", "16", "--max-blksize", "1468"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        try:
            line = server.stdout.readline().decode()  # type: ignore[union-attr]
            assert line.startswith("listening "), line
            port = line.split()[1]
            opts = ["--option", f"blksize {args.blksize}"]
            if args.windowsize > 1:
                opts += ["--option", f"windowsize {args.windowsize}"]
            blocks = args.clients * (size // args.blksize + 1)
            for _ in range(args.repeat):
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
                cpu1 = cpu_seconds(server.pid)
                wall = time.monotonic() - t0
                user, system = cpu1[0] - cpu0[0], cpu1[1] - cpu0[1]
                cpu = cpu1[2] - cpu0[2]
                ok = sum((out / f"c{i}").stat().st_size == size for i in range(args.clients))
                for i in range(args.clients):
                    (out / f"c{i}").unlink(missing_ok=True)
                print(
                    f"blksize {args.blksize} w{args.windowsize} x{args.clients}: "
                    f"{ok}/{args.clients} ok, {args.clients * size / 1e6 / wall:.1f} MB/s, "
                    f"server CPU {cpu:.2f} s = {cpu / blocks * 1e6:.2f} us/block "
                    f"(ticks: user {user / blocks * 1e6:.1f}, sys {system / blocks * 1e6:.1f}), "
                    f"load {os.getloadavg()[0]:.1f}",
                    flush=True,
                )
        finally:
            server.terminate()
            server.wait(timeout=10)
            for leftover in out.iterdir():
                leftover.unlink()
            out.rmdir()


if __name__ == "__main__":
    main()
