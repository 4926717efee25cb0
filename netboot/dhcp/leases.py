"""The lease table in memory: who holds which address, and the address allocator.

The store (netboot/store/leases.py) is the durable copy; this table is what the policy
reads, so no packet waits on SQL. It is loaded from the store at start and changed only
by the server adapter, which writes every change through the group committer before the
reply that depends on it leaves (an ACK never goes out ahead of its row).

Addresses are ints here (the hot path compares and hashes them millions of times);
clients are keyed by their client identifier (option 61), or by 0x01 + chaddr when they
send none (RFC 2131 §4.2), so firmware without 61 and iPXE with 61 = 01:MAC are the same
client, as they are the same machine.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from netboot.dhcp.quickinit import quick_init

__all__ = ["Binding", "LeaseTable", "Pool", "State", "client_key"]


class State(StrEnum):
    ACTIVE = "active"  # bound: held until expires
    RELEASED = "released"  # DHCPRELEASE: free, remembered for the client's next visit
    EXPIRED = "expired"  # reclaimed after expiry: free, remembered likewise
    DECLINED = "declined"  # DHCPDECLINE quarantine (RFC 2131 §4.3.3): held until expires
    CONFLICT = "conflict"  # answered an ARP probe: in use by someone, held until expires


HOLDING = frozenset((State.ACTIVE, State.DECLINED, State.CONFLICT))


@quick_init
@dataclass(frozen=True, slots=True)
class Binding:
    """One row of the lease table. ``key`` is the client key (see client_key)."""

    key: bytes
    mac: str
    ip: int
    state: State
    expires: float
    hostname: str = ""
    subnet: str = ""
    relay: bytes = b""  # option 82 as received, for `netboot leases` and reservations

    def holds(self, now: float) -> bool:
        return self.state in HOLDING and self.expires > now


def client_key(client_id: bytes | None, chaddr: bytes, hlen: int) -> bytes:
    """RFC 2131 §4.2: the client identifier if sent, else htype 1 + chaddr."""
    if client_id:
        return client_id
    return b"\x01" + chaddr[:hlen]


def quarantine_key(ip: int) -> bytes:
    """Key of the pseudo-client holding a declined or conflicting address."""
    return b"quarantine:" + str(ip).encode()


class Pool:
    """The dynamic addresses of one subnet, handed out by a moving cursor.

    Fresh addresses (never leased) are taken in order; once none is left, addresses
    whose lease expired or was released are reused, longest-free first, so a client
    coming back soon still finds its old address free (RFC 2131 §4.3.1).
    """

    def __init__(
        self, ranges: list[tuple[int, int]], excluded: set[int], table: LeaseTable
    ) -> None:
        self.ranges = ranges
        self.excluded = excluded
        self.table = table
        self.size = sum(end - start + 1 for start, end in ranges)
        self._range = 0
        self._next = ranges[0][0] if ranges else 0
        self._fresh = bool(ranges)
        self.reusable: dict[int, None] = {}  # insertion order = freed order

    def contains(self, ip: int) -> bool:
        for start, end in self.ranges:
            if start <= ip <= end:
                return ip not in self.excluded
        return False

    def allocate(self, key: bytes, now: float) -> int | None:
        """A free address for ``key`` or None when the pool is exhausted."""
        table = self.table
        if self._fresh:
            for _ in range(self.size):
                ip = self._advance()
                if ip in self.excluded or ip in table.by_ip or table.offered_to_other(ip, key, now):
                    continue
                return ip
            self._fresh = False
        stale = []
        found = None
        for ip in self.reusable:
            if not self.contains(ip):
                stale.append(ip)
                continue
            if table.free_for(ip, key, now):
                found = ip
                break
            binding = table.by_ip.get(ip)
            if binding is not None and binding.holds(now):
                stale.append(ip)  # taken again; reclaim puts it back when it frees
        for ip in stale:
            self.reusable.pop(ip, None)
        if found is not None:
            self.reusable.pop(found, None)
        return found

    def _advance(self) -> int:
        ip = self._next
        start, end = self.ranges[self._range]
        if ip >= end:
            self._range = (self._range + 1) % len(self.ranges)
            self._next = self.ranges[self._range][0]
        else:
            self._next = ip + 1
        return ip

    def freed(self, ip: int) -> None:
        if self.contains(ip):
            self.reusable[ip] = None


class LeaseTable:
    """Bindings by client key and by address, plus in-memory offer holds."""

    def __init__(self) -> None:
        self.by_key: dict[bytes, Binding] = {}
        self.by_ip: dict[int, Binding] = {}
        self._offers: dict[int, tuple[bytes, float]] = {}  # ip -> (key, until)
        self._offer_of: dict[bytes, int] = {}  # key -> ip
        self.pools: list[Pool] = []

    # -- reads -------------------------------------------------------------------

    def get(self, key: bytes) -> Binding | None:
        return self.by_key.get(key)

    def holder(self, ip: int, now: float) -> bytes | None:
        """Key of whoever holds ``ip`` now: an unexpired lease, quarantine or offer."""
        binding = self.by_ip.get(ip)
        if binding is not None and binding.holds(now):
            return binding.key
        offer = self._offers.get(ip)
        if offer is not None and offer[1] > now:
            return offer[0]
        return None

    def free_for(self, ip: int, key: bytes, now: float) -> bool:
        holder = self.holder(ip, now)
        return holder is None or holder == key

    def offered_to_other(self, ip: int, key: bytes, now: float) -> bool:
        offer = self._offers.get(ip)
        return offer is not None and offer[0] != key and offer[1] > now

    def offer_of(self, key: bytes, now: float) -> int | None:
        ip = self._offer_of.get(key)
        if ip is None:
            return None
        offer = self._offers.get(ip)
        if offer is None or offer[0] != key or offer[1] <= now:
            return None
        return ip

    # -- changes (the adapter persists each one) --------------------------------

    def hold_offer(self, ip: int, key: bytes, until: float) -> None:
        old = self._offer_of.get(key)
        if old is not None and old != ip:
            self._offers.pop(old, None)
        self._offers[ip] = (key, until)
        self._offer_of[key] = ip
        if len(self._offers) > 4 * 65536:
            self.prune_offers(until - 3600)

    def drop_offer(self, key: bytes) -> None:
        ip = self._offer_of.pop(key, None)
        if ip is not None and self._offers.get(ip, (None,))[0] == key:
            del self._offers[ip]

    def prune_offers(self, now: float) -> None:
        for ip, (key, until) in list(self._offers.items()):
            if until <= now:
                del self._offers[ip]
                if self._offer_of.get(key) == ip:
                    del self._offer_of[key]

    def put(self, binding: Binding) -> Binding | None:
        """Insert or replace; returns a binding evicted from the address, if any
        (another client's expired or released lease on it)."""
        old = self.by_key.get(binding.key)
        if old is not None and old.ip != binding.ip and self.by_ip.get(old.ip) is old:
            del self.by_ip[old.ip]
            self._freed(old.ip)
        evicted = self.by_ip.get(binding.ip)
        if evicted is not None and evicted.key != binding.key:
            self.by_key.pop(evicted.key, None)
        else:
            evicted = None
        self.by_key[binding.key] = binding
        self.by_ip[binding.ip] = binding
        offer = self._offers.get(binding.ip)
        if offer is not None:  # the address is bound now: no offer of it stands
            del self._offers[binding.ip]
            if self._offer_of.get(offer[0]) == binding.ip:
                del self._offer_of[offer[0]]
        return evicted

    def remove(self, key: bytes) -> Binding | None:
        binding = self.by_key.pop(key, None)
        if binding is not None and self.by_ip.get(binding.ip) is binding:
            del self.by_ip[binding.ip]
            self._freed(binding.ip)
        return binding

    def set_state(self, key: bytes, state: State, expires: float) -> Binding | None:
        binding = self.by_key.get(key)
        if binding is None:
            return None
        updated = replace(binding, state=state, expires=expires)
        self.by_key[key] = updated
        self.by_ip[binding.ip] = updated
        if state not in HOLDING:
            self._freed(binding.ip)
        return updated

    def expired(self, now: float) -> list[Binding]:
        """Bindings whose hold ran out but are still marked as holding."""
        return [b for b in self.by_key.values() if b.state in HOLDING and b.expires <= now]

    def _freed(self, ip: int) -> None:
        for pool in self.pools:
            pool.freed(ip)

    def __len__(self) -> int:
        return len(self.by_key)
