"""Test helper run inside a lab client namespace: a bounded DHCP load of broadcast
clients (DISCOVER -> OFFER -> REQUEST -> ACK, one fresh random MAC per client), written
with plain sockets and struct, independent of netboot's codec.

Every ACK is appended to --out as "mac ip" and flushed at once, so the record survives
whatever happens to the server: it is the client-side truth a durability check needs.
Hard bounds: rate <= 2000/s, seconds <= 60.
"""

from __future__ import annotations

import argparse
import os
import select
import socket
import struct
import sys
import time

_HDR = struct.Struct("!BBBBIHHIIII16s64s128s")
COOKIE = b"\x63\x82\x53\x63"


def build(mtype: int, xid: int, mac: bytes, requested: bytes = b"", server: bytes = b"") -> bytes:
    head = _HDR.pack(1, 1, 6, 0, xid, 0, 0x8000, 0, 0, 0, 0, mac + bytes(10), b"", b"")
    opts = bytes((53, 1, mtype, 61, 7, 1)) + mac
    if requested:
        opts += bytes((50, 4)) + requested
    if server:
        opts += bytes((54, 4)) + server
    opts += bytes((55, 4, 1, 3, 6, 15, 255))
    return (head + COOKIE + opts).ljust(300, b"\0")


def parse(data: bytes) -> tuple[int, bytes, int, bytes, bytes] | None:
    """(xid, mac, message type, yiaddr, server id) of a BOOTREPLY, or None."""
    if len(data) < 240 or data[0] != 2 or data[236:240] != COOKIE:
        return None
    xid = struct.unpack_from("!I", data, 4)[0]
    yiaddr, mac = data[16:20], data[28:34]
    mtype, server, pos = 0, b"", 240
    while pos + 1 < len(data) and data[pos] != 255:
        if data[pos] == 0:
            pos += 1
            continue
        code, size = data[pos], data[pos + 1]
        value = data[pos + 2 : pos + 2 + size]
        if code == 53 and size == 1:
            mtype = value[0]
        elif code == 54 and size == 4:
            server = value
        pos += 2 + size
    return xid, mac, mtype, yiaddr, server


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--iface", default="eth0")
    ap.add_argument("--rate", type=float, default=200)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    if not 0 < args.rate <= 2000 or not 0 < args.seconds <= 60:
        print("need 0 < rate <= 2000 and 0 < seconds <= 60", file=sys.stderr)
        return 2
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, args.iface.encode())
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.bind(("0.0.0.0", 68))
    sock.setblocking(False)
    dest = ("255.255.255.255", 67)
    pending: dict[int, bytes] = {}  # xid -> mac, DISCOVER sent
    requested: dict[int, bytes] = {}  # xid -> mac, REQUEST sent
    counts = {"discover": 0, "offer": 0, "request": 0, "ack": 0, "nak": 0, "senderr": 0}
    base = int.from_bytes(os.urandom(4), "big") & 0x7FFFFFFF
    start = time.monotonic()
    stop, drain = start + args.seconds, start + args.seconds + 2.0
    with open(args.out, "a", buffering=1) as out:
        while True:
            now = time.monotonic()
            if now >= drain:
                break
            if now < stop:
                due = int((now - start) * args.rate) + 1
                while counts["discover"] < due:
                    xid = (base + counts["discover"]) & 0xFFFFFFFF
                    mac = b"\x02" + os.urandom(5)
                    pending[xid] = mac
                    try:
                        sock.sendto(build(1, xid, mac), dest)
                    except OSError:
                        counts["senderr"] += 1
                    counts["discover"] += 1
            ready, _, _ = select.select([sock], [], [], 0.002)
            if not ready:
                continue
            while True:
                try:
                    data = sock.recv(4096)
                except BlockingIOError:
                    break
                parsed = parse(data)
                if parsed is None:
                    continue
                xid, mac, mtype, yiaddr, server = parsed
                if mtype == 2 and pending.get(xid) == mac:
                    del pending[xid]
                    requested[xid] = mac
                    counts["offer"] += 1
                    try:
                        sock.sendto(build(3, xid, mac, yiaddr, server), dest)
                        counts["request"] += 1
                    except OSError:
                        counts["senderr"] += 1
                elif mtype == 5 and requested.get(xid) == mac:
                    del requested[xid]
                    counts["ack"] += 1
                    out.write(f"{mac.hex(':')} {socket.inet_ntoa(yiaddr)}\n")
                elif mtype == 6 and requested.get(xid) == mac:
                    del requested[xid]
                    counts["nak"] += 1
    print(" ".join(f"{k}={v}" for k, v in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
