"""The Twisted adapter for the MAAS API: route, authenticate, dispatch, map errors.

``/MAAS/api/version/`` answers ``2.0`` (text); ``/MAAS/api/1.0/`` is 410 Gone;
``/MAAS/api/2.0/<collection>/[<key>/]`` dispatches on (method, op) through the table in
``handlers.py``. Errors become HTTP codes here and only here: bad input 400 (JSON
``{field: [message]}``, like MAAS form errors), no credentials or bad ones 401, unknown
object 404, state conflicts 409, power driver failures 503.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import resource, server
from twisted.web.server import Request

from netboot.http.maas import handlers as H
from netboot.http.maas.forms import BadForm, parse_form
from netboot.http.maas.oauth import Unauthorized, authenticate
from netboot.nodes.actions import (
    IllegalTransition,
    InvalidAction,
    NodeNotFound,
    NoMatchingNode,
    PowerActionFailed,
)
from netboot.nodes.constraints import ConstraintError

log = Logger(namespace="netboot.maas")


class MAASApi(resource.Resource):
    """Mounted at ``/MAAS/api``."""

    isLeaf = True

    def __init__(self, ctx: H.Context) -> None:
        super().__init__()
        self.ctx = ctx

    def render(self, request: Request) -> Any:
        path = [p.decode("utf-8", "replace") for p in request.postpath]
        while path and path[-1] == "":
            path.pop()
        if path == ["version"]:
            return _text(request, 200, "2.0")
        if path[:1] == ["1.0"]:
            return _text(request, 410, "The 1.0 API is no longer available.")
        if path[:1] != ["2.0"] or len(path) < 2:
            return _text(request, 404, "Unknown API version or path.")
        method = request.method.decode("ascii", "replace").upper()
        if path[1:] == ["describe"]:
            return _json(request, 200, H.describe(_base_url(request)))
        route = H.ROUTES.get(path[1])
        if route is None or len(path) > 3:
            return _text(request, 404, f"Unknown API path {'/'.join(path[1:])}/")
        handler = route[1] if len(path) == 3 else route[0]
        if handler is None:
            return _text(request, 404, f"Unknown API path {'/'.join(path[1:])}/")
        params = dict(zip(handler.params, path[2:], strict=False))
        try:
            form = _form(request)
        except BadForm as exc:
            return _bad(request, exc.field, exc.message)
        op = form.text("op")
        operation = H.find_operation(handler, method, op)
        if operation is None:
            return _text(request, 400, f"Unrecognised signature: method={method} op={op}")
        try:
            key = authenticate(_header(request, b"authorization"), self.ctx.store.api_key)
        except Unauthorized as exc:
            log.warn("API 401 from {peer}: {why}", peer=_peer(request), why=str(exc))
            return _text(request, 401, f"Authorization failed: {exc}")
        if key is None and not operation.anon:
            return _text(request, 401, "Authorization required: send an OAuth header (API key).")
        call = H.Call(form=form, key=key, params=params, base_url=_base_url(request), ctx=self.ctx)
        try:
            result = operation.func(call)
        except Exception:
            return self._error(request, Failure(), operation)
        if isinstance(result, defer.Deferred):
            finished = []
            request.notifyFinish().addBoth(finished.append)

            def send(value: Any) -> None:
                if not finished:
                    request.write(self._body(request, 200, value))
                    request.finish()

            def fail(failure: Failure) -> None:
                if not finished:
                    request.write(self._error(request, failure, operation))
                    request.finish()

            result.addCallbacks(send, fail)
            return server.NOT_DONE_YET
        return self._body(request, 200, result)

    def _body(self, request: Request, code: int, value: Any) -> bytes:
        if isinstance(value, str):
            return _text(request, code, value)
        return _json(request, code, value)

    def _error(self, request: Request, failure: Failure, operation: H.Operation) -> bytes:
        exc = failure.value
        if isinstance(exc, BadForm | InvalidAction | ConstraintError):
            return _bad(request, exc.field, exc.message)
        if isinstance(exc, H.NotFound | NodeNotFound):
            return _text(request, 404, str(exc))
        if isinstance(exc, IllegalTransition):
            return _text(
                request,
                409,
                f"Cannot {operation.action} node: it is {exc.current.label} "
                f"({exc.current.name}); {exc}",
            )
        if isinstance(exc, H.Conflict | NoMatchingNode):
            return _text(request, 409, str(exc))
        if isinstance(exc, PowerActionFailed):
            return _text(request, 503, str(exc))
        log.failure("API {action} failed", failure, action=operation.action)
        return _text(request, 500, "internal error (see the netboot log)")


def _form(request: Request):
    query = request.uri.split(b"?", 1)[1] if b"?" in request.uri else b""
    assert request.content is not None
    request.content.seek(0)
    body = request.content.read(H_MAX + 1)
    return parse_form(query, _header(request, b"content-type"), body)


H_MAX = 32 << 20


def _header(request: Request, name: bytes) -> str | None:
    value = request.getHeader(name)
    return value.decode("latin-1") if isinstance(value, bytes) else value


def _peer(request: Request) -> str:
    return getattr(request.getClientAddress(), "host", "?")


def _base_url(request: Request) -> str:
    host = _header(request, b"host") or "localhost"
    scheme = "https" if request.isSecure() else "http"
    return f"{scheme}://{host}"


def _json(request: Request, code: int, body: Any) -> bytes:
    request.setResponseCode(code)
    request.setHeader(b"content-type", b"application/json")
    return json.dumps(body).encode()


def _text(request: Request, code: int, text: str) -> bytes:
    request.setResponseCode(code)
    request.setHeader(b"content-type", b"text/plain; charset=utf-8")
    return text.encode()


def _bad(request: Request, field: str, message: str) -> bytes:
    return _json(request, 400, {field: [message]})
