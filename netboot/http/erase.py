"""The disk-erase calls of ``/api/deploy/<system_id>/...``, for a node in DISK_ERASING.

Release with erase boots the fast installer with ``netboot.purpose=erase``; it talks to
the same endpoints as a deploy (netboot/http/deploy.py routes here by the node's
status):

    GET  config               NB_TOKEN and NB_ERASE_MODE (quick | secure)
    POST event?stage=S        progress, recorded as an ``erase:S`` event
    POST done?status=ok       -> READY (owner and deploy fields cleared)
    POST done?status=failed   -> FAILED_DISK_ERASING with the log's error line

``event`` and ``done`` are authenticated with the node's token by the caller.
"""

from __future__ import annotations

import contextlib
from typing import Any

from twisted.logger import Logger
from twisted.web.server import Request

from netboot.http.plaintext import env_file
from netboot.http.plaintext import text as _text
from netboot.images.deploycfg import DeployConfigError, erase_env
from netboot.nodes.lifecycle import IllegalTransition
from netboot.store.models import Node

log = Logger(namespace="netboot.erase")


def config(p: Any, request: Request, node: Node, actor: str) -> bytes:
    """The erase environment's settings (it sources them like the installer's)."""
    gone = p.store.erasure(node.system_id)
    mode = gone.mode if gone else "quick"
    try:
        body = erase_env(node, mode)
    except DeployConfigError as exc:
        fail(p, node, f"cannot configure the erase environment: {exc}", b"", actor)
        return _text(request, 409, str(exc))
    p.store.erase_progress(
        node.system_id, "config", f"erase environment started ({mode})", p.clock(), actor
    )
    return env_file(request, body)


def event(p: Any, request: Request, node: Node, actor: str, stage: str, message: str) -> bytes:
    p.store.erase_progress(node.system_id, stage, message, p.clock(), actor)
    log.info("erase {host} {stage}: {message}", host=node.hostname, stage=stage, message=message)
    return _text(request, 200, "ok")


def done(p: Any, request: Request, node: Node, actor: str, ok: bool, body: bytes) -> bytes:
    if ok:
        p.actions.erasing_done(node.system_id, actor, True, "disks erased", body)
        log.info("erase {host}: disks erased -> READY", host=node.hostname)
        return _text(request, 200, "ok: ready")
    fail(p, node, "disk erasing failed: " + last_error(body), body, actor)
    return _text(request, 200, "recorded")


def fail(p: Any, node: Node, message: str, body: bytes, actor: str = "netboot") -> None:
    """FAILED_DISK_ERASING with ``message``; the log is kept with the erasure."""
    log.warn("erase {host} failed: {message}", host=node.hostname, message=message)
    with contextlib.suppress(IllegalTransition):  # released or timed out meanwhile
        p.actions.erasing_done(node.system_id, actor, False, message[:1000], body)


def last_error(log_bytes: bytes) -> str:
    """The environment's ``error:`` line, else its last line."""
    lines = [ln for ln in log_bytes.decode("utf-8", "replace").splitlines() if ln.strip()]
    for line in reversed(lines):
        if "error:" in line:
            return line.split("error:", 1)[1].strip()[:500]
    return lines[-1][:500] if lines else "(no log)"
