"""Profile netboot's DHCP server under load and say where the CPU time goes. Not a test.

dhcp_profile.py run --config FILE --out PROF   netboot.dhcp.run under cProfile, timed
                                               by CPU time (time.process_time), so
                                               preemption on a busy box does not count;
                                               the profile is written on SIGTERM.
dhcp_profile.py report PROF                    CPU time per stage of the packet path.
dhcp_profile.py micro [N]                      N relay DORAs fed to the controller
                                               in-process: CPU rate, then cProfile shares.
dhcp_profile.py stages                         each stage of a relay DORA timed alone
                                               (timeit, best of 7): no profiler overhead,
                                               which inflates small calls ~5x.
"""

from __future__ import annotations

import cProfile
import os
import pstats
import signal
import struct
import sys
import tempfile
import time
from ipaddress import IPv4Address
from pathlib import Path

# stage -> functions (file suffix, function name) whose *cumulative* time it is;
# a leading "-" subtracts (the send happens inside _reply).
RECV = ("~", "<method 'recvfrom' of '_socket.socket' objects>")
SEND = ("~", "<method 'sendto' of '_socket.socket' objects>")
STAGES = {
    "receive (recvfrom)": [RECV],
    "decode (codec.from_bytes)": [("dhcp/codec.py", "from_bytes")],
    "facts (facts_from_packet)": [("dhcp/facts.py", "facts_from_packet")],
    "subnet select + boot choice": [
        ("dhcp/subnets.py", "select"),
        ("bootconfig/methods.py", "choose_boot"),
    ],
    "decide (policy.decide)": [("dhcp/policy.py", "decide")],
    "reply: options, encode, destination": [("dhcp/replies.py", "_reply"), ("-", SEND)],
    "send (sendto)": [SEND],
    "lease commit (SQLite upsert + COMMIT)": [("store/leases.py", "apply")],
}


def run(config: str, out: str) -> int:
    from netboot.dhcp import run as dhcp_run

    profiler = cProfile.Profile(time.process_time)

    def dump(*_: object) -> None:
        profiler.disable()
        profiler.dump_stats(out)
        sys.exit(0)

    signal.signal(signal.SIGTERM, dump)
    profiler.enable()
    try:
        return dhcp_run.main(["--config", config])
    finally:
        dump()


# The fixed BOOTP header (RFC 2131 section 2) the load generators below pack.
BOOTP_HEADER = struct.Struct("!BBBBIHHIIII16s64s128s")


def bench_settings():
    """The one subnet every in-process benchmark serves: 10.77.0.0/16 behind a relay."""
    from netboot.dhcp.settings import parse_dhcp

    return parse_dhcp(
        {
            "interfaces": ["x"],
            "subnet": "10.77.0.0/16",
            "range_start": "10.77.0.10",
            "range_end": "10.77.250.0",
            "router": "10.77.0.1",
            "log_replies": False,
            "lease_seconds": 43200,
        },
        IPv4Address("10.77.0.1"),
    )


def micro(count: int) -> None:
    from twisted.internet.task import Clock

    from netboot.dhcp.server import DHCPServer
    from netboot.store.leases import LeaseStore
    from netboot.store.sqlite import open_store

    workdir = Path(tempfile.mkdtemp(prefix="nbdh-micro.", dir="/var/tmp"))
    db = workdir / "netboot.sqlite3"
    cfg = bench_settings()
    header = BOOTP_HEADER
    giaddr = int(IPv4Address("10.77.255.254"))

    def packet(mtype: int, xid: int, mac: bytes, offered: bytes = b"") -> bytes:
        head = header.pack(1, 1, 6, 1, xid, 0, 0, 0, 0, 0, giaddr, mac + bytes(10), b"", b"")
        opts = bytes((53, 1, mtype, 61, 7, 1)) + mac
        if offered:
            opts += bytes((50, 4)) + offered + bytes((54, 4, 10, 77, 0, 1))
        opts += bytes((55, 6, 1, 28, 2, 3, 15, 6, 255))
        return (head + b"\x63\x82\x53\x63" + opts).ljust(300, b"\0")

    macs = [os.urandom(6) for _ in range(count)]
    discovers = [packet(1, i, mac) for i, mac in enumerate(macs)]
    last: list[bytes] = []

    def send(data: bytes, dest: tuple[str, int]) -> None:
        last.append(data)

    def drive(profiler: cProfile.Profile | None) -> tuple[float, DHCPServer]:
        if db.exists():
            for suffix in ("", "-wal", "-shm"):
                Path(f"{db}{suffix}").unlink(missing_ok=True)
        open_store(db).close()
        clock = Clock()
        clock.advance(time.time())
        server = DHCPServer(
            cfg,
            "http://10.77.0.1:5248",
            LeaseStore(db),
            clock,
            clock.seconds,
            commit_mode="reactor",
        )
        started = time.process_time()
        if profiler is not None:
            profiler.enable()
        for i, mac in enumerate(macs):
            server.handle(discovers[i], ("10.77.255.254", 67), "x", send)
            offer = last.pop()
            server.handle(packet(3, i, mac, offer[16:20]), ("10.77.255.254", 67), "x", send)
            if i % 16 == 15:
                clock.advance(0)  # end of a reactor pass: the group commit
        clock.advance(0)
        if profiler is not None:
            profiler.disable()
        server.leases.close()
        return time.process_time() - started, server

    cpu, server = drive(None)
    acks = len(last)
    print(f"{count} relay DORAs in {cpu:.2f} CPU s: {count / cpu:.0f} DORA/s on one core")
    print(f"  {server.committer.batches} commits (fsynced), {acks} ACKs, each after its commit")
    last.clear()
    profiler = cProfile.Profile(time.process_time)
    cpu, server = drive(profiler)
    out = workdir / "micro.prof"
    profiler.dump_stats(str(out))
    print(f"under the profiler: {count / cpu:.0f} DORA/s; shares by stage:")
    report(str(out))


def stages() -> None:
    """Time each stage of a relay DORA on its own, on a server that already holds
    2,000 leases; the lease write is timed as a 32-row batch (upsert only, rolled back)."""
    import timeit

    from twisted.internet.task import Clock

    from netboot.bootconfig.methods import choose_boot
    from netboot.dhcp.codec import MessageType, Packet
    from netboot.dhcp.facts import facts_from_packet
    from netboot.dhcp.leases import Binding, State, client_key
    from netboot.dhcp.policy import Ack, Request, decide
    from netboot.dhcp.server import DHCPServer
    from netboot.store.leases import LeaseStore, PutLease, _upsert
    from netboot.store.sqlite import open_store

    workdir = Path(tempfile.mkdtemp(prefix="nbdh-stages.", dir="/var/tmp"))
    db = workdir / "netboot.sqlite3"
    open_store(db).close()
    cfg = bench_settings()
    header = BOOTP_HEADER
    relay = ("10.77.255.254", 67)
    giaddr = int(IPv4Address(relay[0]))

    def packet(mtype: int, xid: int, mac: bytes, offered: bytes = b"") -> bytes:
        head = header.pack(1, 1, 6, 1, xid, 0, 0, 0, 0, 0, giaddr, mac + bytes(10), b"", b"")
        opts = bytes((53, 1, mtype, 61, 7, 1)) + mac
        if offered:
            opts += bytes((50, 4)) + offered + bytes((54, 4, 10, 77, 0, 1))
        opts += bytes((55, 6, 1, 28, 2, 3, 15, 6, 255))
        return (head + b"\x63\x82\x53\x63" + opts).ljust(300, b"\0")

    sent: list[bytes] = []

    def send(data: bytes, dest: tuple[str, int]) -> None:
        sent.append(data)

    clock = Clock()
    clock.advance(time.time())
    server = DHCPServer(
        cfg, "http://10.77.0.1:5248", LeaseStore(db), clock, clock.seconds, commit_mode="reactor"
    )
    for i in range(2000):
        mac = os.urandom(6)
        server.handle(packet(1, i, mac), relay, "x", send)
        server.handle(packet(3, i, mac, sent.pop()[16:20]), relay, "x", send)
        clock.advance(0)
    mac = os.urandom(6)
    discover = packet(1, 1, mac)
    request = packet(3, 1, mac, bytes((10, 77, 200, 1)))
    pd, pr = Packet.from_bytes(discover), Packet.from_bytes(request)
    fd, fr = facts_from_packet(pd), facts_from_packet(pr)
    key = client_key(fd.client_id, pd.chaddr, pd.hlen)
    subnet = server.subnets.select(fd, giaddr, "x")
    now = clock.seconds()

    def req(facts):  # type: ignore[no-untyped-def]
        return Request(facts, key, subnet, server.table, server.cfg, now, False, server.our_ids)

    rq = req(fr)
    ack = Ack(int(IPv4Address("10.77.200.1")), 43200)
    base = int(IPv4Address("10.77.210.0"))
    rows = [
        PutLease(Binding(os.urandom(7), fr.mac, base + i, State.ACTIVE, now + 60), now)
        for i in range(32)
    ]
    sql = server.leases._db

    def upsert() -> None:
        sql.execute("BEGIN")
        _upsert(sql, rows)
        sql.execute("ROLLBACK")

    timed = {
        "decode DISCOVER (from_bytes)": (lambda: Packet.from_bytes(discover), 1),
        "decode REQUEST (from_bytes)": (lambda: Packet.from_bytes(request), 1),
        "facts DISCOVER": (lambda: facts_from_packet(pd), 1),
        "facts REQUEST": (lambda: facts_from_packet(pr), 1),
        "subnet select": (lambda: server.subnets.select(fd, giaddr, "x"), 1),
        "boot choice": (lambda: choose_boot(fd, server.http_base, server.boot), 1),
        "Request()": (lambda: req(fr), 1),
        "decide REQUEST": (lambda: decide(rq), 1),
        "reply ACK (options, encode, dest)": (
            lambda: server._reply(pr, fr, subnet, MessageType.ACK, ack, None, send, ""),
            1,
        ),
        "lease row: Binding + PutLease": (
            lambda: PutLease(Binding(key, fr.mac, ack.ip, State.ACTIVE, now + 60), now),
            1,
        ),
        "upsert, per row of 32 (no COMMIT)": (upsert, 32),
    }
    print("stage (relay DORA, one packet each)            us (best of 7)")
    for name, (fn, per) in timed.items():
        number = 20000 // per
        best = min(timeit.repeat(fn, number=number, repeat=7)) / number / per
        sent.clear()
        print(f"  {name:45s} {best * 1e6:6.2f}")
    server.leases.close()


def report(path: str) -> None:
    stats = pstats.Stats(path)
    table = stats.stats  # (file, line, name) -> (cc, nc, tt, ct, callers)

    def cumulative(suffix: str, name: str) -> float:
        return sum(
            ct
            for (f, _, n), (_, _, _, ct, _) in table.items()
            if n == name and (suffix == "~" or f.endswith(suffix))
        )

    handled = 0
    for (f, _, n), (_, nc, _, _, _) in table.items():
        if f.endswith("dhcp/server.py") and n == "_handle":
            handled = nc
    # The packet path only: socket reads (which call the handlers) and commit flushes;
    # start-up, imports and timers are left out.
    # The packet path: handling (decode .. send) + reads + the commit pass with its ACK
    # callbacks. In "thread" commit mode the writer thread is not in this profile.
    flush = cumulative("dhcp/commit.py", "_flush_now")
    busy = (
        cumulative("dhcp/server.py", "handle")
        + cumulative(*RECV)
        + (flush if flush else cumulative("dhcp/commit.py", "_finished"))
    )
    print(f"packets handled: {handled}; CPU on the packet path: {busy:.2f} s")
    print(f"  = {1e6 * busy / max(handled, 1):.0f} us per packet, all stages included")
    accounted = 0.0
    for stage, funcs in STAGES.items():
        seconds = 0.0
        for suffix, name in funcs:
            if suffix == "-":
                seconds -= cumulative(*name)
            else:
                seconds += cumulative(suffix, name)
        accounted += seconds
        print(
            f"  {stage:45s} {100 * seconds / max(busy, 1e-9):5.1f}%"
            f"  {1e6 * seconds / max(handled, 1):6.1f} us/packet"
        )
    rest = busy - accounted
    print(
        f"  {'the rest (Twisted, table updates, dispatch)':45s}"
        f" {100 * rest / max(busy, 1e-9):5.1f}%"
        f"  {1e6 * rest / max(handled, 1):6.1f} us/packet"
    )


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "micro":
        micro(int(sys.argv[2]) if len(sys.argv) > 2 else 20000)
    elif len(sys.argv) >= 2 and sys.argv[1] == "stages":
        stages()
    elif len(sys.argv) >= 2 and sys.argv[1] == "report":
        report(sys.argv[2])
    elif len(sys.argv) >= 6 and sys.argv[1] == "run":
        sys.exit(run(sys.argv[3], sys.argv[5]))
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
