"""Run one virtualbmc VirtualBMC (IPMI 2.0 over UDP) for a libvirt domain, on 127.0.0.1.

Usage: power_vbmc.py LIBVIRT_URI DOMAIN PORT USER PASSWORD. Prints "listening" once
the socket is bound, then serves until killed.

The BMC answers like a real BMC that supports only cipher suite 3 (SHA-1): it refuses
an RMCP+ Open Session request proposing another authentication algorithm with status
0x11 "invalid authentication algorithm" (IPMI 2.0 table 13-15), so a client falls back
to SHA-1. virtualbmc 3.3 / pyghmi 1.6.19's server instead accepts a SHA-256 (suite 17)
proposal and then authenticates with SHA-1, which no client can complete -- pyghmi's
own client proposes SHA-256 first.
"""

from __future__ import annotations

import struct
import sys

from pyghmi.ipmi.private import session as ipmisession
from virtualbmc.vbmc import VirtualBMC

RMCP_PLUS_OPEN_REQUEST = 0x10
RMCP_PLUS_OPEN_RESPONSE = 0x11
INVALID_AUTH_ALGORITHM = 0x11
RAKP_HMAC_SHA1 = 0x01


class Sha1OnlyBMC(VirtualBMC):
    def sessionless_data(self, data, sockaddr):
        raw = bytearray(data)
        # RMCP (4) + auth type 6 (RMCP+) + payload type + session id/seq (8) + length (2)
        if len(raw) >= 16 + 32 and raw[4] == 6 and raw[5] == RMCP_PLUS_OPEN_REQUEST:
            request = raw[16:]
            # Open Session Request: tag, privilege, 2 reserved, console session id (4),
            # then the authentication payload whose algorithm is byte 12 (low 6 bits).
            if request[12] & 0x3F != RAKP_HMAC_SHA1:
                payload = bytearray([request[0], INVALID_AUTH_ALGORITHM, 0, 0]) + request[4:8]
                header = bytearray([6, 0, 0xFF, 7, 6, RMCP_PLUS_OPEN_RESPONSE]) + bytes(8)
                header += struct.pack("<H", len(payload))
                ipmisession._io_sendto(self.serversocket, header + payload, sockaddr)
                return None
        return super().sessionless_data(data, sockaddr)


def main() -> None:
    uri, domain, port, user, password = sys.argv[1:6]
    bmc = Sha1OnlyBMC(user, password, int(port), "127.0.0.1", domain, uri)
    print("listening", flush=True)
    bmc.listen(timeout=1)


if __name__ == "__main__":
    main()
