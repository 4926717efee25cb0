"""Addresses promised in an OFFER, held briefly so two clients booting at once are not
offered the same address (RFC 2131 4.3.1: the server should reserve the offered address).

Kept in memory only: an OFFER is not an acknowledgement, and after a restart a client
simply asks again.
"""

from __future__ import annotations

from ipaddress import IPv4Address

OFFER_HOLD_SECONDS = 30.0
MAX_PENDING = 65536


class OfferBook:
    def __init__(self, hold_seconds: float = OFFER_HOLD_SECONDS) -> None:
        self.hold_seconds = hold_seconds
        self._by_ip: dict[IPv4Address, tuple[str, float]] = {}

    def reserve(self, ip: IPv4Address, mac: str, now: float) -> None:
        if len(self._by_ip) >= MAX_PENDING:
            self._prune(now)
        if len(self._by_ip) < MAX_PENDING:
            self._by_ip[ip] = (mac, now + self.hold_seconds)

    def held_for_others(self, mac: str, now: float) -> set[IPv4Address]:
        """Addresses under an unexpired offer to a client other than ``mac``."""
        return {ip for ip, (owner, until) in self._by_ip.items() if owner != mac and until > now}

    def forget(self, ip: IPv4Address) -> None:
        self._by_ip.pop(ip, None)

    def _prune(self, now: float) -> None:
        self._by_ip = {ip: v for ip, v in self._by_ip.items() if v[1] > now}

    def __len__(self) -> int:
        return len(self._by_ip)
