"""The rescue-mode calls of ``/api/deploy/<system_id>/...``, for a node entering or in
rescue mode.

Rescue mode boots the fast installer with ``netboot.purpose=rescue``; it talks to the
same endpoints as a deploy (netboot/http/deploy.py routes here by the node's status):

    GET  config               NB_TOKEN, NB_SYSTEM_ID, NB_HOSTNAME
    POST event?stage=S        progress, recorded as a ``rescue:S`` event
    POST done?status=ok       the rescue shell is up: -> RESCUE_MODE
    POST done?status=failed   -> FAILED_ENTERING_RESCUE_MODE with the log's error line

``event`` and ``done`` are authenticated with the node's token by the caller. A node
already in RESCUE_MODE (rebooted inside rescue) gets its config again and its ``done``
is acknowledged without a status change.
"""

from __future__ import annotations

import contextlib
from typing import Any

from twisted.logger import Logger
from twisted.web.server import Request

from netboot.http import erase
from netboot.http.plaintext import env_file
from netboot.http.plaintext import text as _text
from netboot.images.deploycfg import DeployConfigError, rescue_env
from netboot.nodes.lifecycle import IllegalTransition, NodeStatus
from netboot.store.models import Node

log = Logger(namespace="netboot.rescue")

# Statuses in which the rescue environment may talk to the appliance.
RESCUE_BOOT = (NodeStatus.ENTERING_RESCUE_MODE, NodeStatus.RESCUE_MODE)


def config(p: Any, request: Request, node: Node, actor: str) -> bytes:
    try:
        body = rescue_env(node)
    except DeployConfigError as exc:
        fail(p, node, f"cannot configure the rescue environment: {exc}", actor)
        return _text(request, 409, str(exc))
    p.store.rescue_progress(
        node.system_id, "config", "rescue environment started", p.clock(), actor
    )
    return env_file(request, body)


def event(p: Any, request: Request, node: Node, actor: str, stage: str, message: str) -> bytes:
    p.store.rescue_progress(node.system_id, stage, message, p.clock(), actor)
    log.info("rescue {host} {stage}: {message}", host=node.hostname, stage=stage, message=message)
    return _text(request, 200, "ok")


def done(p: Any, request: Request, node: Node, actor: str, ok: bool, body: bytes) -> bytes:
    if node.status is NodeStatus.RESCUE_MODE:
        # Rebooted inside rescue: it is up again; nothing changes.
        p.store.rescue_progress(
            node.system_id, "ready", "rescue environment up again", p.clock(), actor
        )
        return _text(request, 200, "ok: already in rescue mode")
    if ok:
        p.actions.rescue_done(node.system_id, actor, True, "rescue environment up")
        log.info("rescue {host}: shell up -> RESCUE_MODE", host=node.hostname)
        return _text(request, 200, "ok: rescue mode")
    fail(p, node, "entering rescue mode failed: " + erase.last_error(body), actor)
    return _text(request, 200, "recorded")


def fail(p: Any, node: Node, message: str, actor: str = "netboot") -> None:
    """FAILED_ENTERING_RESCUE_MODE with ``message``."""
    log.warn("rescue {host} failed: {message}", host=node.hostname, message=message)
    with contextlib.suppress(IllegalTransition):  # exited or timed out meanwhile
        p.actions.rescue_done(node.system_id, actor, False, message[:1000])
