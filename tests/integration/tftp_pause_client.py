"""Test helper run inside a lab client namespace: download one file over TFTP (tftpy),
pausing after ``--pause-after`` DATA packets until ``--go`` exists, so the test can
reload the server while this transfer is in flight. Prints the file's sha256."""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path

import tftpy


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("server")
    ap.add_argument("filename")
    ap.add_argument("--output", type=Path, required=True)
    ap.add_argument("--pause-after", type=int, default=50)
    ap.add_argument("--midway", type=Path, required=True, help="created when paused")
    ap.add_argument("--go", type=Path, required=True, help="wait for this file to resume")
    ap.add_argument("--max-pause", type=float, default=20)
    args = ap.parse_args()
    seen = 0

    def hook(packet: object) -> None:
        nonlocal seen
        seen += 1
        if seen == args.pause_after:
            args.midway.write_text("paused\n")
            deadline = time.monotonic() + args.max_pause
            while not args.go.exists() and time.monotonic() < deadline:
                time.sleep(0.02)

    client = tftpy.TftpClient(args.server, 69, options={"blksize": 512})
    client.download(args.filename, str(args.output), packethook=hook, timeout=5)
    print(hashlib.sha256(args.output.read_bytes()).hexdigest())
    return 0


if __name__ == "__main__":
    sys.exit(main())
