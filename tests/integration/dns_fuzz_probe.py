"""Throw malformed DNS queries at a server and report what came back (JSON on stdout).

Run inside a lab namespace: ``python dns_fuzz_probe.py SERVER COUNT``. Sends COUNT
datagrams -- handcrafted corner cases with a known right answer, then seeded random
mutations of a valid query and random bytes -- each with a unique ID, then collects the
replies. A reply is bad if it is not a well-formed DNS response to one of our IDs, or if
a handcrafted case got the wrong rcode (or an answer where it must be dropped).
"""

from __future__ import annotations

import json
import random
import socket
import struct
import sys
import time

from dnslib import DNSRecord


def query(qid: int, name: bytes = b"\x03www\x07example\x04test\x00", flags: int = 0x0100,
          qd: int = 1, extra: bytes = b"") -> bytes:  # fmt: skip
    return (
        struct.pack(">HHHHHH", qid, flags, qd, 0, 0, 1 if extra else 0)
        + name
        + b"\x00\x01\x00\x01"
        + extra
    )


def handcrafted() -> list[tuple[bytes, int | None | str]]:
    """(packet with ID placeholder 0, expected rcode or None for 'must be dropped')."""
    opt_v1 = b"\x00\x00\x29\x04\xd0\x00\x01\x00\x00\x00\x00"  # OPT, EDNS version 1
    return [
        (query(0, flags=0x8100), None),  # QR set: a response, never answered
        (b"\x00\x00\x01\x00\x00\x01\x00\x00\x00\x00\x00", None),  # 11 bytes: no header
        (struct.pack(">HHHHHH", 0, 0x0100, 0, 0, 0, 0), 1),  # no question: FORMERR
        (query(0, qd=2), 1),  # two questions claimed, one present: FORMERR
        (query(0, name=b"\xc0\x0c"), 1),  # compression pointer to itself
        (query(0, name=b"\x3fabc"), 1),  # label runs past the end
        (query(0, flags=0x2900), 4),  # opcode UPDATE: NOTIMP
        (query(0, extra=opt_v1), "badvers"),  # EDNS version 1: BADVERS (RFC 6891 6.1.3)
    ]


def main() -> int:
    server, count = sys.argv[1], int(sys.argv[2])
    rng = random.Random(5)
    base = query(0)
    packets: list[tuple[bytes, int | None | str]] = list(handcrafted())
    while len(packets) < count:
        kind = rng.random()
        if kind < 0.4:
            data = bytearray(base)
            for _ in range(rng.randint(1, 6)):
                data[rng.randrange(2, len(data))] = rng.randrange(256)
            packets.append((bytes(data), "any"))
        elif kind < 0.6:
            packets.append((base[: rng.randrange(2, len(base))], "any"))
        elif kind < 0.8:
            packets.append(
                (base + bytes(rng.randrange(256) for _ in range(rng.randint(1, 40))), "any")
            )
        else:
            packets.append((bytes(rng.randrange(256) for _ in range(rng.randint(0, 120))), "any"))

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    sock.connect((server, 53))
    expected: dict[int, int | None | str] = {}
    sent = 0
    for i, (packet, want) in enumerate(packets[:count]):
        if len(packet) >= 2:
            packet = struct.pack(">H", i) + packet[2:]
            expected[i] = want
        sock.send(packet)
        sent += 1
        if i % 50 == 49:
            time.sleep(0.01)  # stay under the socket buffers, we test parsing not load

    replies: dict[int, bytes] = {}
    bad: list[str] = []
    sock.settimeout(0.2)
    deadline = time.monotonic() + 4
    while time.monotonic() < deadline:
        try:
            data = sock.recv(65535)
        except TimeoutError:
            continue
        try:
            reply = DNSRecord.parse(data)
        except Exception as exc:  # noqa: BLE001 (any parse failure is a bad reply)
            bad.append(f"unparseable reply {data[:16].hex()}: {exc}")
            continue
        qid = reply.header.id
        if not reply.header.qr or qid not in expected or qid in replies:
            bad.append(f"unexpected reply id {qid} qr={reply.header.qr}")
            continue
        replies[qid] = data
    formerr = 0
    for qid, want in expected.items():
        got = replies.get(qid)
        reply = DNSRecord.parse(got) if got else None
        rcode = reply.header.rcode if reply else None
        formerr += rcode == 1
        if want == "badvers":
            opts = [r for r in reply.ar if r.rtype == 41] if reply else []
            if rcode != 0 or len(opts) != 1 or opts[0].ttl >> 24 != 1:
                bad.append(f"case {qid}: wanted BADVERS, got {reply}")
        elif want != "any" and rcode != want:
            bad.append(f"case {qid}: wanted rcode {want}, got {rcode if got else 'no reply'}")
    print(json.dumps({
        "sent": sent, "answered": len(replies), "dropped": sent - len(replies),
        "formerr": formerr, "bad_replies": bad,
    }))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
