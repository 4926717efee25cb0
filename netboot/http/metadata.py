"""Node callbacks: what a booted commissioning (or install) environment talks to.

Every request names the node (``/metadata/<system_id>/...``) and proves it with the
node's per-node token in ``Authorization: Bearer <token>`` (the token reaches the node on
the kernel command line of the commissioning boot). Commissioning endpoints answer only
while the node is COMMISSIONING (409 otherwise), so a stale environment cannot change a
node that moved on.

    GET  /metadata/<id>/commissioning/scripts          script names, one per line
    GET  /metadata/<id>/commissioning/scripts/<name>   one operator script
    POST /metadata/<id>/commissioning/inventory        JSON inventory (400 names the field)
    POST /metadata/<id>/commissioning/results/<name>?exit=N   the script's output
    POST /metadata/<id>/commissioning/done[?error=msg] -> READY or FAILED_COMMISSIONING
    POST /metadata/<id>/deploy/done[?error=msg]        -> DEPLOYED or FAILED_DEPLOYMENT
"""

from __future__ import annotations

import hmac
from pathlib import Path
from urllib.parse import parse_qs

from twisted.logger import Logger
from twisted.web import resource
from twisted.web.server import Request

from netboot.http.enlist import json_response
from netboot.http.plaintext import text as _text
from netboot.nodes.actions import NodeActions
from netboot.nodes.commissioning import (
    INVENTORY_RESULT,
    MAX_OUTPUT_BYTES,
    check_script_name,
    operator_scripts,
    parse_inventory,
    verdict,
)
from netboot.nodes.inventory import InvalidReport
from netboot.nodes.lifecycle import IllegalTransition, NodeStatus
from netboot.nodes.settings import DEFAULT_SCRIPTS
from netboot.store.models import Node

log = Logger(namespace="netboot.metadata")

# The default operator commissioning scripts: preseeds/commissioning/ of the checkout.
COMMISSIONING_SCRIPTS = DEFAULT_SCRIPTS


class MetadataResource(resource.Resource):
    isLeaf = True

    def __init__(self, actions: NodeActions, scripts_dir: Path | None = None) -> None:
        super().__init__()
        self.actions = actions
        self.store = actions.store
        # [lifecycle] commissioning_scripts, unless given here (tests)
        self.scripts_dir = scripts_dir or actions.commissioning_scripts

    def render(self, request: Request) -> bytes:
        path = [p.decode("utf-8", "replace") for p in request.postpath]
        while path and path[-1] == "":
            path.pop()
        method = request.method.decode("ascii", "replace")
        peer = getattr(request.getClientAddress(), "host", "?")
        if len(path) < 3:
            return _text(request, 404, "not found")
        node = self.store.node(path[0])
        if node is None or not self._token_ok(request, node):
            # One answer for both: an unknown id must not be told apart from a bad token.
            log.warn(
                "metadata {path} from {peer}: bad node or token", path="/".join(path), peer=peer
            )
            return _text(request, 401, "unknown node or bad token")
        phase, what, rest = path[1], path[2], path[3:]
        actor = f"node@{peer}"
        try:
            if phase == "commissioning":
                if node.status is not NodeStatus.COMMISSIONING:
                    return _text(request, 409, f"node is {node.status.label}, not commissioning")
                return self._commissioning(request, method, node, what, rest, actor)
            if phase == "deploy" and what == "done" and method == "POST" and not rest:
                error = _query(request, "error")
                done = self.actions.deployment_done(
                    node.system_id, actor, error is None, error or "deployed"
                )
                return json_response(request, 200, {"status": done.status.label})
        except InvalidReport as exc:
            return json_response(request, 400, {"error": str(exc), "field": exc.field})
        except IllegalTransition as exc:
            return _text(request, 409, str(exc))
        return _text(request, 404, "not found")

    def _token_ok(self, request: Request, node: Node) -> bool:
        header = (request.getHeader(b"authorization") or b"").decode("latin-1")
        scheme, _, token = header.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            token.strip().encode(), node.token.encode()
        )

    def _commissioning(
        self, request: Request, method: str, node: Node, what: str, rest: list[str], actor: str
    ) -> bytes:
        sid = node.system_id
        if what == "scripts" and method == "GET":
            scripts = {s.name: s for s in operator_scripts(self.scripts_dir)}
            if not rest:
                return _text(request, 200, "".join(f"{n}\n" for n in scripts))
            script = scripts.get(rest[0]) if len(rest) == 1 else None
            if script is None:
                return _text(request, 404, "no such script")
            request.setHeader(b"content-type", b"text/x-shellscript")
            return script.body
        if method != "POST":
            return _text(request, 405, "method not allowed")
        body = _body(request)
        now = self.actions.clock()
        if what == "inventory" and not rest:
            hw = parse_inventory(body)
            disks = [
                {k: d[k] for k in ("name", "size_bytes", "model", "serial")} for d in hw["disks"]
            ]
            summary = (
                f"inventory: {hw['cpu']['count']} cpus, {len(hw['cpu']['flags'])} cpu flags, "
                f"{len(disks)} disks, {len(hw['nics'])} nics, {len(hw['pci'])} pci devices"
            )
            log.info("{system_id} {summary}", system_id=sid, summary=summary)
            self.store.update_node(
                sid,
                {
                    "hardware": hw,
                    "disks": disks,
                    "cpu_count": hw["cpu"]["count"],
                    "memory_mib": hw["memory"]["total_mib"],
                },
                now,
                actor,
                "commissioning",
                summary,
            )
            self.store.add_script_result(sid, INVENTORY_RESULT, 0, body, now)
            return json_response(request, 200, {"stored": "inventory"})
        if what == "results" and len(rest) == 1:
            name = check_script_name(rest[0])
            raw_exit = _query(request, "exit")
            try:
                code = int(raw_exit if raw_exit is not None else "")
            except ValueError:
                raise InvalidReport("exit", f"{raw_exit!r} is not an exit status") from None
            if not -255 <= code <= 255:
                raise InvalidReport("exit", f"{code} is outside -255..255")
            if len(body) > MAX_OUTPUT_BYTES:
                body = body[:MAX_OUTPUT_BYTES] + b"\n[netboot: output truncated]\n"
            self.store.add_script_result(sid, name, code, body, now)
            log.info(
                "{system_id} script {name} exited {code} ({size} bytes of output)",
                system_id=sid,
                name=name,
                code=code,
                size=len(body),
            )
            return json_response(request, 200, {"stored": name, "exit": code})
        if what == "done" and not rest:
            error = _query(request, "error")
            results = self.store.script_results(sid)
            expected = [s.name for s in operator_scripts(self.scripts_dir)]
            v = verdict(
                [r for r in results if r.name != INVENTORY_RESULT],
                expected,
                any(r.name == INVENTORY_RESULT for r in results),
                env_ok=error is None,
            )
            message = v.message if error is None else f"{error}; {v.message}"
            done = self.actions.commissioning_done(sid, actor, v.ok and error is None, message)
            return json_response(
                request, 200, {"status": done.status.label, "message": done.status_message}
            )
        return _text(request, 404, "not found")


def _body(request: Request) -> bytes:
    assert request.content is not None
    request.content.seek(0)
    return request.content.read(MAX_OUTPUT_BYTES + 1)


def _query(request: Request, key: str) -> str | None:
    query = request.uri.split(b"?", 1)[1].decode("utf-8", "replace") if b"?" in request.uri else ""
    values = parse_qs(query, keep_blank_values=True).get(key)
    return values[-1] if values else None
