"""Simulated PXE clients for the boot-storm benchmark (run inside the client namespace).

Each client does what a BIOS machine with a PXE ROM does when netboot answers it:
  1. DHCP DISCOVER (arch 0, PXEClient, broadcast flag) -> OFFER -> REQUEST -> ACK with
     the boot file (undionly.kpxe) in the BOOTP file field;
  2. TFTP: RRQ with tsize + blksize 1432 (as PXE ROMs ask), lock-step ACKs, whole file;
  3. as iPXE: DHCP again with user class iPXE -> script URL in option 67; HTTP GET of
     the script, then of the kernel and initrd it names.
All N clients start at once (a rack powering on). DHCP and TFTP retransmit with a
bounded schedule like firmware does; every wait has a deadline. Output: one JSON line
with per-phase completion times and failures.

    python bench/py/bootstorm_clients.py --n 100
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import socket
import struct
import time

MAGIC = b"\x63\x82\x53\x63"
DHCP_TRIES = (4.0, 8.0, 16.0)  # PXE spec: 4, 8, 16, 32 s
TFTP_TIMEOUT, TFTP_TRIES = 2.0, 6
HTTP_TIMEOUT = 600.0


def mac_for(i: int) -> bytes:
    return bytes([0x02, 0xBB, 0, (i >> 16) & 0xFF, (i >> 8) & 0xFF, i & 0xFF])


def dhcp_packet(mac: bytes, xid: int, mtype: int, extra: list[tuple[int, bytes]]) -> bytes:
    header = struct.pack(
        "!BBBBIHH4s4s4s4s16s64s128s",
        1, 1, 6, 0, xid, 0, 0x8000, bytes(4), bytes(4), bytes(4), bytes(4),
        mac + bytes(10), bytes(64), bytes(128),
    )  # fmt: skip
    opts = [(53, bytes([mtype])), (93, b"\x00\x00"), (94, b"\x01\x02\x01")]
    opts += [(60, b"PXEClient:Arch:00000:UNDI:002001"), (55, bytes([1, 3, 6, 43, 60, 66, 67]))]
    body = b"".join(bytes([code, len(value)]) + value for code, value in opts + extra)
    return header + MAGIC + body + b"\xff"


def parse_reply(data: bytes) -> tuple[int, int, bytes, bytes, dict[int, bytes]] | None:
    if len(data) < 240 or data[236:240] != MAGIC or data[0] != 2:
        return None
    xid = struct.unpack_from("!I", data, 4)[0]
    yiaddr, siaddr = data[16:20], data[20:24]
    file = data[108:236].rstrip(b"\0")
    opts: dict[int, bytes] = {}
    pos = 240
    while pos < len(data) and data[pos] != 255:
        if data[pos] == 0:
            pos += 1
            continue
        if pos + 1 >= len(data):
            break
        code, length = data[pos], data[pos + 1]
        opts[code] = data[pos + 2 : pos + 2 + length]
        pos += 2 + length
    mtype = opts.get(53, b"\0")[0]
    return xid, mtype, yiaddr, siaddr + file, opts


class DHCPMux(asyncio.DatagramProtocol):
    """One socket on :68 for every simulated client; replies are routed by xid."""

    def __init__(self) -> None:
        self.waiters: dict[int, asyncio.Queue] = {}

    def datagram_received(self, data: bytes, addr) -> None:
        parsed = parse_reply(data)
        if parsed is not None and parsed[0] in self.waiters:
            self.waiters[parsed[0]].put_nowait(parsed)


IPXE = [(77, b"iPXE"), (175, b"\xb1\x05\x01\x80\x86\x10\x0e")]  # as iPXE sends them


async def dhcp(mux: DHCPMux, transport, i: int, ipxe: bool = False) -> tuple[str, str, str] | None:
    """DORA for client i; (address, boot server, boot file or URL) or None."""
    mac, xid = mac_for(i), random.getrandbits(32)
    extra = IPXE if ipxe else []
    queue: asyncio.Queue = asyncio.Queue()
    mux.waiters[xid] = queue
    try:
        offer = await exchange(transport, queue, dhcp_packet(mac, xid, 1, extra), 2)
        if offer is None:
            return None
        _, _, yiaddr, _, opts = offer
        request = dhcp_packet(mac, xid, 3, [(50, yiaddr), (54, opts.get(54, b"")), *extra])
        ack = await exchange(transport, queue, request, 5)
        if ack is None:
            return None
        file = (ack[4].get(67, b"").rstrip(b"\0") or ack[3][4:]).decode()
        return socket.inet_ntoa(ack[2]), socket.inet_ntoa(ack[3][:4]), file
    finally:
        del mux.waiters[xid]


async def exchange(transport, queue: asyncio.Queue, packet: bytes, want: int):
    for wait in DHCP_TRIES:
        transport.sendto(packet, ("255.255.255.255", 67))
        deadline = time.monotonic() + wait
        while (left := deadline - time.monotonic()) > 0:
            try:
                reply = await asyncio.wait_for(queue.get(), left)
            except TimeoutError:
                break
            if reply[1] == want:
                return reply
    return None


class TFTPClient(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue = asyncio.Queue()

    def datagram_received(self, data: bytes, addr) -> None:
        self.queue.put_nowait((data, addr))


async def tftp_get(server: str, name: str) -> int:
    """Download `name` (blksize 1432, tsize) with lock-step ACKs; return its size."""
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_datagram_endpoint(TFTPClient, local_addr=("0.0.0.0", 0))
    try:
        rrq = b"\x00\x01" + name.encode() + b"\0octet\0tsize\x000\0blksize\x001432\0"
        send, dest = rrq, (server, 69)
        blksize, expected, got = 512, 1, 0
        while True:
            for _ in range(TFTP_TRIES):
                transport.sendto(send, dest)
                try:
                    data, addr = await asyncio.wait_for(proto.queue.get(), TFTP_TIMEOUT)
                    break
                except TimeoutError:
                    continue
            else:
                raise TimeoutError(f"tftp {name}: no answer")
            opcode = struct.unpack_from("!H", data)[0]
            dest = addr
            if opcode == 6:  # OACK
                fields = data[2:].split(b"\0")
                options = dict(zip(fields[::2], fields[1::2], strict=False))
                blksize = int(options.get(b"blksize", b"512"))
                send = b"\x00\x04\x00\x00"
                continue
            if opcode == 5:
                raise OSError(f"tftp {name}: error {data[2:4].hex()} {data[4:-1]!r}")
            block = struct.unpack_from("!H", data, 2)[0]
            if block == expected & 0xFFFF:
                got += len(data) - 4
                expected += 1
            send = b"\x00\x04" + data[2:4]
            if block == (expected - 1) & 0xFFFF and len(data) - 4 < blksize:
                transport.sendto(send, dest)
                return got
    finally:
        transport.close()


async def http_get(server: str, port: int, path: str) -> bytes | int:
    """GET path; returns the body for small answers, else the number of body bytes."""
    reader, writer = await asyncio.open_connection(server, port)
    try:
        writer.write(f"GET {path} HTTP/1.0\r\nHost: {server}\r\n\r\n".encode())
        head = await reader.readuntil(b"\r\n\r\n")
        if b" 200 " not in head.split(b"\r\n", 1)[0]:
            raise OSError(f"GET {path}: {head.splitlines()[0]!r}")
        if "/ipxe/" in path:
            return await reader.read()
        total = 0
        while chunk := await reader.read(1 << 18):
            total += len(chunk)
        return total
    finally:
        writer.close()


async def client(i: int, mux: DHCPMux, transport, t0: float, result: dict) -> None:
    times: dict[str, float] = {}
    try:
        lease = await dhcp(mux, transport, i)
        if lease is None:
            raise TimeoutError("no DHCP lease")
        times["dhcp"] = time.monotonic() - t0
        _, server, file = lease
        if file != "undionly.kpxe":
            raise ValueError(f"unexpected boot file {file!r}")
        await tftp_get(server, file)
        times["tftp"] = time.monotonic() - t0
        lease = await dhcp(mux, transport, i, ipxe=True)  # iPXE asks again, as iPXE
        if lease is None or not lease[2].startswith("http://"):
            raise ValueError(f"iPXE DHCP gave no script URL: {lease}")
        times["ipxe_dhcp"] = time.monotonic() - t0
        host_port, path = lease[2][len("http://") :].split("/", 1)
        script = await http_get(host_port.split(":")[0], int(host_port.split(":")[1]), "/" + path)
        urls = re.findall(rb"(?:kernel|initrd) (http://\S+)", script)
        if len(urls) != 2:
            raise ValueError("script names no kernel + initrd")
        for url in urls:
            host_port, path = url.decode()[len("http://") :].split("/", 1)
            host, port = host_port.split(":")
            await http_get(host, int(port), "/" + path)
        times["http"] = time.monotonic() - t0
        result["done"].append(times)
    except Exception as exc:  # one failed client is a data point, not a crash
        result["failed"].append(f"{i}: {type(exc).__name__}: {exc}")


def pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    values = sorted(values)
    return round(values[min(len(values) - 1, int(q * len(values)))], 2)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--deadline", type=float, default=900.0)
    parser.add_argument("--interface", required=True, help="where DHCP broadcasts go out")
    args = parser.parse_args()
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    # Limited broadcast (255.255.255.255) needs an interface: the namespace has no default
    # route, so the DHCP socket is tied to the client interface as firmware's would be.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, args.interface.encode())
    sock.bind(("0.0.0.0", 68))
    transport, mux = await loop.create_datagram_endpoint(DHCPMux, sock=sock)
    result: dict = {"done": [], "failed": []}
    t0 = time.monotonic()
    tasks = [asyncio.create_task(client(i, mux, transport, t0, result)) for i in range(args.n)]
    _, pending = await asyncio.wait(tasks, timeout=args.deadline)
    for task in pending:
        task.cancel()
    result["failed"] += [f"deadline: {len(pending)} clients unfinished"] if pending else []
    done = result["done"]
    summary = {
        "n": args.n,
        "ok": len(done),
        "failed": len(result["failed"]),
        "all_booted_s": round(max((d["http"] for d in done), default=0.0), 2),
        "wall_s": round(time.monotonic() - t0, 2),
        **{
            f"{phase}_p{int(q * 100)}": pct([d[phase] for d in done], q)
            for phase in ("dhcp", "tftp", "ipxe_dhcp", "http")
            for q in (0.5, 0.95)
        },
        "errors": result["failed"][:5],
    }
    print(json.dumps(summary), flush=True)
    transport.close()
    os._exit(0)


if __name__ == "__main__":
    asyncio.run(main())
