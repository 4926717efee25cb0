"""MAAS API on a 1,000-node store: how long do the calls clients make take?

Runs the real MAAS resource (twisted.web, SQLite store, NodeActions with the manual
power driver) on 127.0.0.1 only, and a urllib client signing like gomaasapi. Bounded:
fixed request counts. Not a test; prints a table.

    .venv/bin/python bench/maas_api_bench.py [--nodes 1000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from twisted.internet import reactor
from twisted.web import resource, server

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from netboot.http.maas import maas_root  # noqa: E402
from netboot.nodes.lifecycle import NodeStatus  # noqa: E402
from netboot.nodes.wiring import build_lifecycle  # noqa: E402
from netboot.store.nodes_ext import create_node  # noqa: E402
from netboot.store.sqlite import open_store  # noqa: E402
from tests.integration.maas_helpers import gomaasapi_auth  # noqa: E402


def populate(store, count: int) -> None:
    now = time.time()
    for i in range(count):
        node = create_node(
            store, macs=(f"52:54:01:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:{i & 255:02x}",),
            now=now, actor="bench", hostname=f"n{i:05d}",
        )  # fmt: skip
        fields = {"cpu_count": 2 + i % 16, "memory_mib": 1024 * (1 + i % 8)}
        store.transition(node.system_id, NodeStatus.COMMISSIONING, now, "bench", "c")
        store.transition(node.system_id, NodeStatus.READY, now, "bench", "r", fields=fields)


def timed(label: str, count: int, call) -> None:
    samples = []
    for _ in range(count):
        t0 = time.perf_counter()
        call()
        samples.append((time.perf_counter() - t0) * 1000)
    samples.sort()
    p95 = samples[max(0, int(len(samples) * 0.95) - 1)]
    print(
        f"{label:38s} n={count:4d}  median {statistics.median(samples):8.1f} ms  p95 {p95:8.1f} ms"
    )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(Path(tmp) / "bench.sqlite3")
        t0 = time.perf_counter()
        populate(store, args.nodes)
        print(f"populate {args.nodes} READY nodes: {time.perf_counter() - t0:.1f} s")
        actions, _ = build_lifecycle(store, reactor)
        key = store.create_api_key("admin", "bench", time.time()).key
        root = resource.Resource()
        root.putChild(b"MAAS", maas_root(actions))
        port = reactor.listenTCP(0, server.Site(root), interface="127.0.0.1")
        base = f"http://127.0.0.1:{port.getHost().port}/MAAS/api/2.0/"
        thread = threading.Thread(target=reactor.run, kwargs={"installSignalHandlers": False})
        thread.start()
        try:

            def call(method: str, path: str, body: bytes | None = None) -> bytes:
                req = urllib.request.Request(
                    base + path, data=body, method=method,
                    headers={"Authorization": gomaasapi_auth(key),
                             "Content-Type": "application/x-www-form-urlencoded"},
                )  # fmt: skip
                with urllib.request.urlopen(req, timeout=60) as resp:
                    return resp.read()

            sid = store.nodes()[0].system_id
            listing = call("GET", "machines/")
            print(f"machines/ body: {len(listing) / 1e6:.1f} MB for {args.nodes} machines")
            timed("GET describe/", 20, lambda: call("GET", "describe/"))
            timed(f"GET machines/ ({args.nodes} machines)", 5, lambda: call("GET", "machines/"))
            timed(
                "GET machines/?agent_name=x (filter)",
                5,
                lambda: call("GET", "machines/?agent_name=x"),
            )
            timed("GET machines/<id>/", 200, lambda: call("GET", f"machines/{sid}/"))

            def cycle() -> None:
                import json

                got = json.loads(call("POST", "machines/?op=allocate", b"cpu_count=4&mem=2048"))
                call("POST", f"machines/{got['system_id']}/?op=release", b"")

            timed("allocate + release (one node)", 100, cycle)
        finally:
            reactor.callFromThread(reactor.stop)
            thread.join(timeout=30)
            store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
