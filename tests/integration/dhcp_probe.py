"""Test helper run inside a lab client namespace: send one DHCP DISCOVER shaped like a
given firmware's (scapy) and print the OFFER as JSON. Exits 1 if none arrives."""

from __future__ import annotations

import argparse
import json
import sys

from scapy.all import BOOTP, DHCP, IP, UDP, Ether, conf, srp1  # noqa: F401 (scapy layers)
from scapy.arch import get_if_hwaddr


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--iface", default="eth0")
    ap.add_argument("--arch", type=int)
    ap.add_argument("--vendor-class")
    ap.add_argument("--user-class")
    ap.add_argument("--timeout", type=float, default=5)
    args = ap.parse_args()
    conf.checkIPaddr = False
    mac = get_if_hwaddr(args.iface)
    opts: list = [("message-type", "discover")]
    if args.arch is not None:
        opts.append((93, args.arch.to_bytes(2, "big")))
    if args.vendor_class:
        opts.append(("vendor_class_id", args.vendor_class.encode()))
    if args.user_class:
        opts.append((77, args.user_class.encode()))
    opts.append("end")
    pkt = (
        Ether(src=mac, dst="ff:ff:ff:ff:ff:ff")
        / IP(src="0.0.0.0", dst="255.255.255.255")
        / UDP(sport=68, dport=67)
        / BOOTP(chaddr=bytes.fromhex(mac.replace(":", "")), xid=0x1234ABCD, flags=0x8000)
        / DHCP(options=opts)
    )
    reply = srp1(pkt, iface=args.iface, timeout=args.timeout, verbose=False)
    if reply is None or BOOTP not in reply:
        print(json.dumps({"error": "no reply"}))
        return 1
    bootp = reply[BOOTP]
    options = {}
    for opt in reply[DHCP].options:
        if isinstance(opt, tuple):
            key, value = opt[0], opt[1]
            options[str(key)] = value.decode("latin-1") if isinstance(value, bytes) else value
    print(
        json.dumps(
            {
                "yiaddr": bootp.yiaddr,
                "siaddr": bootp.siaddr,
                "xid": bootp.xid,
                "file": bootp.file.rstrip(b"\0").decode("latin-1"),
                "options": options,
            },
            default=str,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
