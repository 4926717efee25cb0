"""Who may use netboot as a recursive (forwarding) resolver.

Not an open resolver: recursion is offered only to clients inside the configured
networks (by default the served DHCP subnet and loopback). Anyone may ask about our own
zones; everything else from outside gets REFUSED (the resolver decides that, this module
only answers "is this client allowed").

Decisions are memoised per client address (bounded), so the UDP hot path checks a set
membership instead of walking networks.
"""

from __future__ import annotations

from collections.abc import Iterable
from ipaddress import IPv4Address, IPv4Network, ip_address


class RecursionAcl:
    def __init__(self, networks: Iterable[IPv4Network], memo_size: int = 65536) -> None:
        self.networks = tuple(networks)
        self._memo_size = memo_size
        # Public for the UDP hot path: addresses already known to be allowed.
        self.allowed: set[str] = set()
        self._denied: set[str] = set()

    def allows(self, client: str) -> bool:
        if client in self.allowed:
            return True
        if client in self._denied:
            return False
        try:
            addr = ip_address(client)
        except ValueError:
            return False
        if addr.version == 6 and addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped
        ok = isinstance(addr, IPv4Address) and any(addr in net for net in self.networks)
        memo = self.allowed if ok else self._denied
        if len(memo) >= self._memo_size:
            memo.clear()
        memo.add(client)
        return ok
