"""Test helper run in a lab client namespace: behave like PXE firmware on a network with
a separate address server and a proxyDHCP server (PXE 2.1 §2.2-2.4), with scapy.

DISCOVER (PXEClient, arch 0) -> collect the OFFERs -> REQUEST the address offer -> ACK
-> configure the address -> REQUEST to the proxy server's port 4011 -> ACK with the boot
file. Prints JSON; exits 1 with a reason when a step gets no answer.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time

from scapy.all import BOOTP, DHCP, IP, UDP, AsyncSniffer, Ether, sendp  # noqa: F401
from scapy.arch import get_if_hwaddr

VENDOR = b"PXEClient:Arch:00000:UNDI:002001"


def options(frame) -> dict:
    found = {}
    for opt in frame[DHCP].options:
        if isinstance(opt, tuple):
            found[opt[0]] = opt[1]
    return found


def text(value) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else str(value)


def exchange(iface: str, pkt, xid: int, want, timeout: float = 2.5) -> list:
    sniffer = AsyncSniffer(
        iface=iface,
        lfilter=lambda f: BOOTP in f and f[BOOTP].op == 2 and f[BOOTP].xid == xid and want(f),
    )
    sniffer.start()
    time.sleep(0.2)
    sendp(pkt, iface=iface, verbose=False)
    time.sleep(timeout)
    return sniffer.stop() or []


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--iface", default="eth0")
    args = ap.parse_args()
    iface = args.iface
    mac = get_if_hwaddr(iface)
    chaddr = bytes.fromhex(mac.replace(":", ""))
    xid = int.from_bytes(os.urandom(4), "big")
    guid = b"\x00" + os.urandom(16)
    pxe = [(93, b"\x00\x00"), ("vendor_class_id", VENDOR), (97, guid), (94, b"\x01\x02\x01")]

    def frame(opts, src="0.0.0.0"):
        return (
            Ether(src=mac, dst="ff:ff:ff:ff:ff:ff")
            / IP(src=src, dst="255.255.255.255")
            / UDP(sport=68, dport=67)
            / BOOTP(chaddr=chaddr, xid=xid, flags=0x8000)
            / DHCP(options=opts)
        )

    offers = exchange(
        iface,
        frame([("message-type", "discover"), *pxe, ("param_req_list", [1, 3, 43, 60, 66, 67]),
               "end"]),
        xid,
        lambda f: options(f).get("message-type") == 2,
    )  # fmt: skip
    address = next((f for f in offers if f[BOOTP].yiaddr != "0.0.0.0"), None)
    proxy = next((f for f in offers if f[BOOTP].yiaddr == "0.0.0.0"), None)
    if address is None or proxy is None:
        print(json.dumps({"error": "missing offer", "offers": len(offers)}))
        return 1
    server = str(options(address)["server_id"])
    ip = address[BOOTP].yiaddr
    acks = exchange(
        iface,
        frame([("message-type", "request"), ("server_id", server), ("requested_addr", ip),
               *pxe, "end"]),
        xid,
        lambda f: options(f).get("message-type") == 5,
    )  # fmt: skip
    if not acks:
        print(json.dumps({"error": "no ACK from the address server"}))
        return 1
    subprocess.run(["ip", "addr", "add", f"{ip}/24", "dev", iface], check=True)
    proxy_id = str(options(proxy)["server_id"])
    request = bytes(
        BOOTP(chaddr=chaddr, xid=xid, ciaddr=ip)
        / DHCP(options=[("message-type", "request"), *pxe, "end"])
    )
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((ip, 68))
    sock.settimeout(5)
    sock.sendto(request, (proxy_id, 4011))
    try:
        data, _ = sock.recvfrom(4096)
    except TimeoutError:
        print(json.dumps({"error": "no answer on port 4011"}))
        return 1
    pxe_ack = BOOTP(data)
    proxy_opts = options(proxy)
    print(
        json.dumps(
            {
                "address_server": server,
                "ack_ip": ip,
                "proxy_offer": {
                    "yiaddr": proxy[BOOTP].yiaddr,
                    "file": proxy[BOOTP].file.rstrip(b"\0").decode(),
                    "vendor_class": text(proxy_opts.get("vendor_class_id", b"")),
                },
                "pxe_ack": {
                    "type": options(pxe_ack).get("message-type"),
                    "file": pxe_ack.file.rstrip(b"\0").decode(),
                },
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
