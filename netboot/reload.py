"""``systemctl reload`` (SIGHUP): re-read the configuration and reconcile the listeners.

A reload never restarts the process. The new file is parsed and validated first; a bad
one is refused with one clear log line and the running services are left untouched.
A good one is applied by reconciling the running service tree against a tree built
from the new configuration (STYLE example 11, MAAS ``updateServers``): each named
child depends on a slice of the configuration (``service_keys``); children whose slice
is unchanged keep running (their sockets, in-flight TFTP transfers and HTTP
connections are untouched), changed ones are stopped and their replacements started,
removed ones are stopped. Leases and nodes live in the store, which stays open, so a
restarted DHCP service loses nothing. If a replacement cannot start (an interface
that does not exist, a port in use), everything is rolled back to the old services.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twisted.application import service
from twisted.internet import defer
from twisted.logger import Logger

from netboot.config import Config, ConfigError

__all__ = ["ReloadPlan", "Reloader", "plan_reload", "reload_refusal", "service_keys"]

log = Logger(namespace="netboot.reload")


@dataclass(frozen=True, slots=True)
class ReloadPlan:
    keep: tuple[str, ...]
    stop: tuple[str, ...]  # running children to stop (changed or removed)
    start: tuple[str, ...]  # new children to start (changed or added)

    @property
    def changed(self) -> bool:
        return bool(self.stop or self.start)


def plan_reload(running: Mapping[str, Any], desired: Mapping[str, Any]) -> ReloadPlan:
    """Desired set minus running set. Values are the configuration slices the named
    children were built from, compared with ``==``."""
    keep = tuple(n for n in running if n in desired and running[n] == desired[n])
    stop = tuple(n for n in running if n not in keep)
    start = tuple(n for n in desired if n not in keep)
    return ReloadPlan(keep, stop, start)


def service_keys(cfg: Config, names: list[str]) -> dict[str, Any]:
    """The configuration slice each named child of the tree depends on.

    The protocol listeners are self-contained: DHCP, TFTP and DNS depend on their own
    tables plus what goes into boot answers (server address, HTTP port, [boot]). Every
    other child -- HTTP, power, the lifecycle checker, services added later -- shares
    objects with the others (node actions, power queue), so it depends on the rest of
    the configuration and restarts whenever anything outside [dhcp]/[tftp]/[dns] changes.
    Restarting one is safe (listening sockets close, accepted connections go on); keeping
    one that should have restarted would serve stale settings.
    """
    base = (cfg.server_address, cfg.http.port, cfg.boot)  # -> http_base_url, boot choice
    table: dict[str, Any] = {
        "tftp": (base, cfg.tftp, cfg.boot_dir),
        "tftp-workers": (base, cfg.tftp, cfg.boot_dir, cfg.state_dir),  # tftp/workers.py
        "dhcp": (base, cfg.dhcp, cfg.state_dir),
        "dns": (cfg.server_address, getattr(cfg, "dns", None)),  # DNSConfig is resolved
    }
    rest = _without(cfg, "dhcp", "tftp", "dns")
    return {name: table.get(name, rest) for name in names}


def _without(cfg: Config, *names: str) -> Config:
    present = {f.name for f in dataclasses.fields(cfg)}
    return dataclasses.replace(cfg, **{n: None for n in names if n in present})


def reload_refusal(old: Config, new: Config) -> str | None:
    """Why ``new`` cannot be applied without a restart, or None."""
    if new.state_dir != old.state_dir:
        return (
            f"state_dir changed ({old.state_dir} -> {new.state_dir}): the store cannot move "
            "while serving; restart netboot to use the new state_dir"
        )
    return None


def _named(top: service.MultiService) -> list[str]:
    return [s.name for s in top if s.name]


class Reloader:
    """Owns the running configuration; ``reload()`` applies the file at ``path``.

    ``build(cfg)`` returns a new, not yet started service tree; ``on_done(cfg, ok,
    message)`` is told the outcome (status file, sd_notify). Reloads are serialised: a
    SIGHUP that arrives during a reload runs one more reload after it.
    """

    def __init__(
        self,
        path: Path,
        cfg: Config,
        top: service.MultiService,
        build: Callable[[Config], service.MultiService],
        load: Callable[[Path], Config],
        on_done: Callable[[Config, bool, str], None] = lambda cfg, ok, message: None,
        on_begin: Callable[[], None] = lambda: None,
    ) -> None:
        self.path = path
        self.cfg = cfg
        self.top = top
        self.build = build
        self.load = load
        self.on_done = on_done
        self.on_begin = on_begin
        self.reloads = 0
        self._busy = False
        self._again = False

    def request(self) -> None:
        """Entry point for SIGHUP (called in the reactor thread)."""
        if self._busy:
            self._again = True
            return
        self._busy = True
        d = self.reload()
        d.addErrback(lambda f: log.failure("reload crashed", f))
        d.addBoth(self._finished)

    def _finished(self, _: object) -> None:
        self._busy = False
        if self._again:
            self._again = False
            self.request()

    @defer.inlineCallbacks
    def reload(self):
        """Apply the configuration file; return (via Deferred) True if applied."""
        self.reloads += 1
        log.info("reload requested: reading {path}", path=str(self.path))
        try:
            new = self.load(self.path)
        except ConfigError as exc:
            return self._refuse(f"bad configuration in {self.path}: {exc}")
        why = reload_refusal(self.cfg, new)
        if why is not None:
            return self._refuse(why)
        if new == self.cfg:
            log.info("reload: configuration unchanged, nothing to do")
            self.on_done(self.cfg, True, "configuration unchanged")
            return True
        self.on_begin()
        candidate = self.build(new)
        plan = plan_reload(
            service_keys(self.cfg, _named(self.top)), service_keys(new, _named(candidate))
        )
        log.info(
            "reload plan: keep {keep}, stop {stop}, start {start}",
            keep=",".join(plan.keep) or "-",
            stop=",".join(plan.stop) or "-",
            start=",".join(plan.start) or "-",
        )
        stopped: list[service.IService] = []
        for name in plan.stop:
            old = self.top.getServiceNamed(name)
            stopped.append(old)
            yield defer.maybeDeferred(old.disownServiceParent)
        started: list[service.IService] = []
        for name in plan.start:
            fresh = candidate.getServiceNamed(name)
            fresh.disownServiceParent()  # never started: nothing to stop
            try:
                # Joining the running tree starts it.
                fresh.setServiceParent(self.top)
            except Exception as exc:
                message = f"cannot start {name} with the new configuration: {exc}"
                if fresh.parent is not None:
                    yield defer.maybeDeferred(fresh.disownServiceParent)
                yield self._rollback(started, stopped)
                return self._refuse(message)
            started.append(fresh)
        self.cfg = new
        summary = (
            f"reloaded {self.path}: restarted {','.join(plan.start) or 'nothing'}, "
            f"kept {','.join(plan.keep) or 'nothing'}"
        )
        log.info("{summary}", summary=summary)
        self.on_done(new, True, summary)
        return True

    @defer.inlineCallbacks
    def _rollback(self, started: list, stopped: list):
        for svc in reversed(started):
            yield defer.maybeDeferred(svc.disownServiceParent)
        for svc in stopped:
            try:
                svc.setServiceParent(self.top)
            except Exception as exc:  # the old one no longer starts either: say so loudly
                if svc.parent is not None:
                    yield defer.maybeDeferred(svc.disownServiceParent)
                log.critical(
                    "reload rollback: {name} could not be restarted: {error}",
                    name=svc.name,
                    error=str(exc),
                )

    def _refuse(self, why: str) -> bool:
        log.error("reload refused: {why}; still serving the previous configuration", why=why)
        self.on_done(self.cfg, False, f"reload refused: {why}")
        return False
