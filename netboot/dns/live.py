"""Keep the authoritative zones in step with the store, so DNS answers are live.

A ``Zones`` snapshot is rebuilt only when the store says something was written (its
change marker moved: an enlistment, a lease, a release -- from this process or another)
or when a lease the snapshot used has expired. Otherwise a query costs one
``PRAGMA data_version`` (a few microseconds) on top of a dict lookup.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from twisted.logger import Logger

from netboot.dns.zone import Host, Zones, ZoneSettings
from netboot.store.dns import DNSHost

log = Logger(namespace="netboot.dns")


class DNSSource(Protocol):
    def dns_generation(self) -> object: ...

    def dns_hosts(self, now: float) -> tuple[list[DNSHost], float | None]: ...


class LiveZones:
    def __init__(
        self, source: DNSSource, settings: ZoneSettings, clock: Callable[[], float]
    ) -> None:
        self.source = source
        self.settings = settings
        self.clock = clock
        self.rebuilds = 0
        self._generation: object = None
        self._valid_until: float | None = None
        self._zones: Zones | None = None
        self._serial = 0
        self.apexes = Zones(settings, [], 0).apexes

    def current(self) -> Zones:
        now = self.clock()
        generation = self.source.dns_generation()
        stale = self._valid_until is not None and now >= self._valid_until
        if self._zones is None or generation != self._generation or stale:
            hosts, valid_until = self.source.dns_hosts(now)
            # SOA serial: the rebuild time, and always increasing (RFC 1982 arithmetic aside).
            self._serial = max(self._serial + 1, int(now))
            self._zones = Zones(
                self.settings, [Host(h.hostname, h.ip, h.source) for h in hosts], self._serial
            )
            self._generation = generation
            self._valid_until = valid_until
            self.rebuilds += 1
            log.debug("zones rebuilt: {count} hosts", count=len(hosts))
        return self._zones
