"""Web UI and /metrics render times with N enlisted nodes (in process, no sockets).

    .venv/bin/python bench/py/ui_bench.py --nodes 1000

Enlists N nodes into a fresh store, logs in through the real twisted.web Request path,
then times GET /ui/, a filtered /ui/, one node page and /metrics (median of --rounds).
Not a test: it prints numbers.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from twisted.web import resource  # noqa: E402

from netboot.http.ui import build_ui  # noqa: E402
from netboot.http.ui.auth import hash_password  # noqa: E402
from netboot.metrics import Metrics  # noqa: E402
from netboot.nodes.inventory import parse_enlist_body  # noqa: E402
from netboot.store.sqlite import SQLiteStore  # noqa: E402
from tests.unit.test_ui_pages import Client, csrf_of  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = SQLiteStore(Path(tmp) / "netboot.sqlite3")
        store.create_user("admin", hash_password("benchmark-pw", n=2**10), 0.0)
        t0 = time.perf_counter()
        first = None
        for i in range(args.nodes):
            body = {
                "boot_mac": f"52:54:00:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:{i & 255:02x}",
                "cpu": {"count": 2},
                "memory": {"total_mib": 2048},
                "disks": [{"name": "vda", "size_bytes": 20 << 30}],
            }
            node, _ = store.enlist(parse_enlist_body(json.dumps(body).encode()), 1.0, "bench")
            first = first or node.system_id
        enlist_s = time.perf_counter() - t0
        metrics = Metrics(store, time.time, process=False)
        root = resource.Resource()
        root.putChild(b"ui", build_ui(store, Path(tmp), time.time, None))
        root.putChild(b"metrics", metrics.resource())
        site = metrics.site(root)
        client = Client(site)
        form = client.get("/ui/login")
        client.post(
            "/ui/login",
            {"csrf_token": csrf_of(form), "username": "admin", "password": "benchmark-pw"},
        )
        print(f"{args.nodes} nodes enlisted in {enlist_s:.1f} s (one fsync'd transaction each)")
        for label, path in (
            ("node list /ui/", "/ui/"),
            ("filtered /ui/?q=00:00:2a", "/ui/?q=00:00:2a"),
            ("node page", f"/ui/nodes/{first}"),
            ("/metrics", "/metrics"),
        ):
            times, size = [], 0
            for _ in range(args.rounds):
                t = time.perf_counter()
                r = client.get(path)
                times.append(time.perf_counter() - t)
                assert r.code == 200, (path, r.code)
                size = len(r.body)
            print(f"{label:28s} median {statistics.median(times) * 1000:7.1f} ms  {size:>9} bytes")
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
