"""A fake "internet" DNS server for the DNS tests, run inside its own lab namespace.

Authoritative for ``example.test`` only (fixed records below), UDP and TCP, truncating
UDP answers to the client's payload size (512, or its EDNS0 size) like a real server.
Any ``<x>.wild.example.test`` has A 198.51.100.99 (fresh names for cache tests);
``<x>.old.example.test`` too, but answers FORMERR to EDNS queries like an old server.
``queries.stats.fake TXT`` answers with how many other queries it has seen, so a test
can tell a cache hit (count unchanged) from a forwarded query.

    python fake_dns_upstream.py --bind 10.66.0.60 --port 53
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import threading
import time

from dnslib import QTYPE, RCODE, RR, SOA, TXT, A, DNSHeader, DNSRecord
from dnslib.server import BaseResolver, DNSHandler, DNSLogger, DNSServer

ZONE = "example.test."
SOA_RR = RR(
    ZONE, QTYPE.SOA, ttl=300, rdata=SOA("ns." + ZONE, "admin." + ZONE, (1, 3600, 600, 86400, 60))
)
RECORDS = {
    ("www.example.test.", QTYPE.A): [
        RR("www.example.test.", QTYPE.A, ttl=300, rdata=A("198.51.100.10"))
    ],
    ("short.example.test.", QTYPE.A): [
        RR("short.example.test.", QTYPE.A, ttl=2, rdata=A("198.51.100.11"))
    ],
    ("spoof.example.test.", QTYPE.A): [
        RR("spoof.example.test.", QTYPE.A, ttl=300, rdata=A("198.51.100.13"))
    ],
    ("nodata.example.test.", QTYPE.A): [
        RR("nodata.example.test.", QTYPE.A, ttl=300, rdata=A("198.51.100.12"))
    ],
    # ~3 KB of TXT: more than any UDP payload size we offer, so it needs TCP.
    ("big.example.test.", QTYPE.TXT): [
        RR("big.example.test.", QTYPE.TXT, ttl=300, rdata=TXT(f"{i:03d}-" + "x" * 120))
        for i in range(24)
    ],
}


class FakeResolver(BaseResolver):
    def __init__(self) -> None:
        self.count = 0
        self.lock = threading.Lock()

    def resolve(self, request: DNSRecord, handler) -> DNSRecord:
        reply = request.reply()
        q = request.q
        name = str(q.qname).lower()
        if name == "queries.stats.fake.":
            with self.lock:
                reply.add_answer(RR(q.qname, QTYPE.TXT, ttl=0, rdata=TXT(str(self.count))))
            return reply
        with self.lock:
            self.count += 1
        records = RECORDS.get((name, q.qtype))
        if name.endswith((".wild.example.test.", ".old.example.test.")) and q.qtype == QTYPE.A:
            reply.add_answer(RR(q.qname, QTYPE.A, ttl=300, rdata=A("198.51.100.99")))
        elif records:
            for rr in records:
                reply.add_answer(RR(q.qname, rr.rtype, ttl=rr.ttl, rdata=rr.rdata))
        elif any(key[0] == name for key in RECORDS):
            reply.add_auth(SOA_RR)  # NODATA
        else:
            reply.header.rcode = RCODE.NXDOMAIN
            reply.add_auth(SOA_RR)
        return reply


def _old_server_formerr(request: DNSRecord) -> bytes | None:
    """Names under old.example.test play a pre-EDNS server: FORMERR to any OPT record."""
    if str(request.q.qname).lower().endswith(".old.example.test.") and any(
        r.rtype == QTYPE.OPT for r in request.ar
    ):
        reply = DNSRecord(DNSHeader(id=request.header.id, qr=1, rcode=RCODE.FORMERR))
        return reply.pack()
    return None


class TruncatingHandler(DNSHandler):
    def handle(self) -> None:
        if self.server.socket_type == socket.SOCK_DGRAM:
            data, connection = self.request
            with contextlib.suppress(Exception):
                request = DNSRecord.parse(data)
                if str(request.q.qname).lower() == "spoof.example.test.":
                    for forged in _forgeries(request):
                        connection.sendto(forged, self.client_address)
        super().handle()

    def get_reply(self, data: bytes) -> bytes:
        request = DNSRecord.parse(data)
        formerr = _old_server_formerr(request)
        if formerr is not None:
            return formerr
        reply = self.server.resolver.resolve(request, self)
        wire = reply.pack()
        if self.protocol == "udp":
            opt = [r for r in request.ar if r.rtype == QTYPE.OPT]
            limit = max(512, opt[0].rclass) if opt else 512
            if len(wire) > limit:
                wire = reply.truncate().pack()
        return wire


def _forgeries(request: DNSRecord) -> list[bytes]:
    """What a blind spoofer might land first: a wrong ID, then the right ID for another
    question (trying to plant poison.example.test), then no question at all."""
    wrong_id = request.reply()
    wrong_id.header.id = (request.header.id + 1) & 0xFFFF
    wrong_id.add_answer(RR(request.q.qname, QTYPE.A, ttl=3600, rdata=A("203.0.113.66")))
    other = DNSRecord.question("poison.example.test").reply()
    other.header.id = request.header.id
    other.add_answer(RR("poison.example.test", QTYPE.A, ttl=3600, rdata=A("203.0.113.66")))
    return [wrong_id.pack(), other.pack()]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bind", required=True)
    parser.add_argument("--port", type=int, default=53)
    args = parser.parse_args()
    resolver = FakeResolver()
    quiet = DNSLogger(log="-request,-reply,-truncated,-error,-recv,-send,-data", prefix=False)
    servers = [
        DNSServer(resolver, address=args.bind, port=args.port, handler=TruncatingHandler,
                  logger=quiet, tcp=tcp)
        for tcp in (False, True)
    ]  # fmt: skip
    for server in servers:
        server.start_thread()
    print("fake upstream ready", flush=True)
    while all(s.isAlive() for s in servers):
        time.sleep(0.5)


if __name__ == "__main__":
    main()
