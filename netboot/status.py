"""``netboot status``: is the appliance up, is each listener bound, counts and alarms.

The serving process writes ``status.json`` in its state directory when it becomes
ready, after every reload (applied or refused) and when it stops. We chose a file over
an HTTP endpoint because it still answers when HTTP is the broken listener, needs no
API credentials, and works under the unit's hardening (the CLI reads it as root or as
the ``netboot`` user). ``netboot status`` combines that file with a liveness check of
the PID, a comparison of the configuration on disk with the one loaded, and read-only
counts from the store (leases, nodes per status, recent DHCP alarms).
"""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import sqlite3
import time
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from netboot.config import Config, ConfigError, load_config

__all__ = [
    "STATUS_FILE",
    "Report",
    "assess",
    "config_digest",
    "listener_rows",
    "read_store_counts",
    "run_status",
    "write_status",
]

STATUS_FILE = "status.json"
DATABASE_FILE = "netboot.sqlite3"  # Config.database_path's name
DEFAULT_STATE_DIR = Path("/var/lib/netboot")
ALARM_TABLES = ("dhcp_alarms", "alarms")


def config_digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _listener_detail(name: str, cfg: Config) -> str:
    if name == "http":
        return f"{cfg.http.bind}:{cfg.http.port}/tcp"
    if name == "tftp":
        return f"{cfg.tftp.bind}:{cfg.tftp.port}/udp"
    if name == "dhcp" and cfg.dhcp is not None:
        return f"udp/67 on {','.join(cfg.dhcp.interfaces)}"
    dns = getattr(cfg, "dns", None)
    if name == "dns" and dns is not None:
        return f"{dns.bind}:{dns.port}/udp+tcp"
    return ""


def listener_rows(cfg: Config, services: Iterable[Any]) -> list[dict[str, Any]]:
    """One row per named child service: is it running (its sockets bound)."""
    return [
        {"name": s.name, "bound": bool(s.running), "detail": _listener_detail(s.name, cfg)}
        for s in services
        if s.name
    ]


def write_status(
    state_dir: Path,
    *,
    state: str,
    cfg: Config,
    config_path: Path | None,
    config_sha256: str | None,
    services: Iterable[Any],
    started: float,
    message: str = "",
    last_reload: dict[str, Any] | None = None,
    now: float | None = None,
) -> Path:
    """Atomically replace ``state_dir/status.json`` (write + rename)."""
    doc = {
        "pid": os.getpid(),
        "user": _user(),  # netboot under the unit: proof it does not run as root
        "state": state,
        "started": started,
        "updated": time.time() if now is None else now,
        "config": str(config_path) if config_path else None,
        "config_sha256": config_sha256,  # of the file as loaded, not as it is now
        "server_address": str(cfg.server_address),
        "http": cfg.http_base_url,
        "listeners": listener_rows(cfg, services),
        "message": message,
        "last_reload": last_reload,
    }
    path = state_dir / STATUS_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    tmp.replace(path)
    return path


def _user() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


def read_store_counts(database: Path, now: float, alarm_limit: int = 10) -> dict[str, Any]:
    """Read-only counts; tolerates tables that this version's store does not have."""
    if not database.exists():
        return {"error": f"no store at {database}"}
    try:
        db = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error as exc:
        return {"error": f"cannot open {database}: {exc}"}
    try:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        out: dict[str, Any] = {"leases_active": None, "nodes": {}, "alarms": []}
        if "leases" in tables:
            cols = {r[1] for r in db.execute("PRAGMA table_info(leases)")}
            where = "expires > ?" + (" AND state = 'active'" if "state" in cols else "")
            out["leases_active"] = db.execute(
                f"SELECT count(*) FROM leases WHERE {where}", (now,)
            ).fetchone()[0]
        if "nodes" in tables:
            out["nodes"] = {
                int(status): count
                for status, count in db.execute(
                    "SELECT status, count(*) FROM nodes GROUP BY status"
                )
            }
        for table in ALARM_TABLES:
            if table in tables:
                cur = db.execute(
                    f"SELECT * FROM {table} ORDER BY rowid DESC LIMIT ?", (alarm_limit,)
                )
                names = [d[0] for d in cur.description]
                out["alarms"] += [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
        return out
    except sqlite3.Error as exc:
        return {"error": f"cannot read {database}: {exc}"}
    finally:
        db.close()


@dataclass(frozen=True, slots=True)
class Report:
    healthy: bool
    problems: tuple[str, ...]
    status: dict[str, Any] | None
    counts: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "healthy": self.healthy,
            "problems": list(self.problems),
            "service": self.status,
            "store": self.counts,
        }


def assess(
    status: dict[str, Any] | None,
    pid_alive: bool,
    config_sha256: str | None,
    counts: dict[str, Any],
) -> Report:
    """Pure: decide health from what was read."""
    problems: list[str] = []
    if status is None:
        problems.append("netboot is not running (no status file: it never became ready)")
    elif not pid_alive or status.get("state") == "stopped":
        problems.append(f"netboot is not running (last pid {status.get('pid')})")
    else:
        if status.get("state") != "ready":
            problems.append(f"netboot is {status.get('state')}")
        for row in status.get("listeners", []):
            if not row.get("bound"):
                problems.append(f"listener {row['name']} is not bound ({row.get('detail')})")
        if config_sha256 and status.get("config_sha256") not in (None, config_sha256):
            problems.append(
                "the configuration file changed since it was loaded: "
                "`systemctl reload netboot` to apply it"
            )
        last = status.get("last_reload") or {}
        if last and not last.get("ok", True):
            problems.append(last.get("message", "the last reload was refused"))
    if "error" in counts:
        problems.append(counts["error"])
    serving = status is not None and pid_alive and status.get("state") == "ready"
    listeners_ok = serving and all(r.get("bound") for r in status.get("listeners", []))
    return Report(bool(listeners_ok), tuple(problems), status, counts)


def _pid_alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _status_name(code: int) -> str:
    try:
        from netboot.nodes.lifecycle import NodeStatus

        return NodeStatus(code).name.lower()
    except (ImportError, ValueError):
        return str(code)


def _ago(now: float, then: Any) -> str:
    return f"{int(now - then)}s ago" if isinstance(then, int | float) else "?"


def render(report: Report, now: float) -> str:
    lines: list[str] = []
    s = report.status
    verdict = "healthy" if report.healthy else "NOT healthy"
    lines.append(f"netboot: {verdict}")
    if s is not None:
        lines.append(
            f"  pid {s.get('pid')} (user {s.get('user', '?')}), {s.get('state')}, up since "
            f"{_ago(now, s.get('started'))}, config {s.get('config')}"
        )
        lines.append("  listeners:")
        for row in s.get("listeners", []):
            mark = "bound" if row.get("bound") else "DOWN"
            lines.append(f"    {row['name']:<6} {mark:<6} {row.get('detail', '')}")
        if s.get("last_reload"):
            last = s["last_reload"]
            lines.append(f"  last reload {_ago(now, last.get('time'))}: {last.get('message')}")
    c = report.counts
    if "error" not in c:
        lines.append(f"  leases active: {c.get('leases_active')}")
        nodes = c.get("nodes", {})
        total = sum(nodes.values())
        per = ", ".join(f"{_status_name(k)} {v}" for k, v in sorted(nodes.items()))
        lines.append(f"  nodes: {total}" + (f" ({per})" if per else ""))
        alarms = c.get("alarms", [])
        lines.append(f"  alarms: {len(alarms)}" + (" (newest first)" if alarms else ""))
        for a in alarms:
            lines.append(
                f"    {_ago(now, a.get('time'))} {a.get('kind', '')}: {a.get('message', '')}"
            )
    for p in report.problems:
        lines.append(f"  problem: {p}")
    return "\n".join(lines)


def run_status(
    config_path: Path,
    state_dir: Path | None = None,
    as_json: bool = False,
    clock: Callable[[], float] = time.time,
    out: Callable[[str], None] = print,
) -> int:
    """``netboot status``; exit 0 when running with every listener bound, else 1.

    Works with a broken configuration file too (that is when it is needed most): the
    state directory then comes from ``--state-dir`` or the default."""
    now = clock()
    config_problem = None
    try:
        cfg = load_config(config_path)
        state_dir = state_dir or cfg.state_dir
    except ConfigError as exc:
        config_problem = f"the configuration file is invalid: {exc}"
        state_dir = state_dir or _raw_state_dir(config_path) or DEFAULT_STATE_DIR
    try:
        status = json.loads((state_dir / STATUS_FILE).read_text())
    except FileNotFoundError:
        status = None
    except (OSError, ValueError) as exc:
        status = {"state": f"unreadable status file ({exc})", "listeners": []}
    alive = _pid_alive(status.get("pid")) if status else False
    counts = read_store_counts(state_dir / DATABASE_FILE, now)
    report = assess(status, alive, config_digest(config_path), counts)
    if config_problem:
        report = Report(False, (*report.problems, config_problem), report.status, report.counts)
    if as_json:
        out(json.dumps(report.to_json(), indent=2, default=str))
    else:
        out(render(report, now))
    return 0 if report.healthy else 1


def _raw_state_dir(config_path: Path) -> Path | None:
    """``state_dir`` from a file that fails validation elsewhere, if it is readable."""
    try:
        value = tomllib.loads(config_path.read_text()).get("state_dir")
    except (OSError, tomllib.TOMLDecodeError):
        return None
    if not isinstance(value, str):
        return None
    return (config_path.parent / value).resolve()


def add_parser(sub: Any) -> None:
    p = sub.add_parser("status", help="is netboot up: listeners, leases, nodes, alarms")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument(
        "--state-dir",
        type=Path,
        help=f"where the status file is (default: from the configuration, else "
        f"{DEFAULT_STATE_DIR})",
    )
