"""``POST /api/enlist``: a booted node reports its inventory and becomes (or refreshes) a node.

The answer (201 created / 200 updated) is written only after the store committed the
node and its event, so an acknowledged enlistment survives a crash.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from twisted.logger import Logger
from twisted.web import resource
from twisted.web.server import Request

from netboot.nodes.inventory import MAX_BODY_BYTES, InvalidReport, parse_enlist_body
from netboot.store.sqlite import SQLiteStore

log = Logger(namespace="netboot.enlist")


def json_response(request: Request, code: int, body: object) -> bytes:
    request.setResponseCode(code)
    request.setHeader(b"content-type", b"application/json")
    return json.dumps(body, sort_keys=True).encode() + b"\n"


class EnlistResource(resource.Resource):
    isLeaf = True

    def __init__(self, store: SQLiteStore, clock: Callable[[], float]) -> None:
        super().__init__()
        self.store = store
        self.clock = clock

    def render_POST(self, request: Request) -> bytes:
        peer = request.getClientAddress().host
        assert request.content is not None
        body = request.content.read(MAX_BODY_BYTES + 1)
        try:
            report = parse_enlist_body(body)
        except InvalidReport as exc:
            log.warn("enlist from {peer} rejected: {reason}", peer=peer, reason=str(exc))
            return json_response(request, 400, {"error": str(exc), "field": exc.field})
        node, created = self.store.enlist(report, self.clock(), actor=f"node@{peer}")
        log.info(
            "{what} {hostname} ({system_id}) mac={mac} uuid={uuid} cpus={cpus} "
            "mem={mem}MiB disks={disks}",
            what="enlisted" if created else "re-enlisted",
            hostname=node.hostname,
            system_id=node.system_id,
            mac=node.boot_mac,
            uuid=node.uuid,
            cpus=node.cpu_count,
            mem=node.memory_mib,
            disks=len(node.disks),
        )
        answer = {"system_id": node.system_id, "hostname": node.hostname}
        if created:
            # The node's callback secret goes only to whoever created the node: a
            # re-enlist of a known MAC must not hand out an existing node's token.
            answer["token"] = node.token
        return json_response(request, 201 if created else 200, answer)
