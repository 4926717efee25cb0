"""Plain-text answers for the node-facing endpoints (installer, erase, rescue, metadata)."""

from __future__ import annotations

from twisted.web.server import Request


def text(request: Request, code: int, body: str) -> bytes:
    """A one-line text/plain answer with ``code``."""
    request.setResponseCode(code)
    request.setHeader(b"content-type", b"text/plain; charset=utf-8")
    return body.encode() + b"\n"


def env_file(request: Request, body: str) -> bytes:
    """An environment file the node sources: its token is inside, so never cached."""
    request.setHeader(b"content-type", b"text/plain; charset=utf-8")
    request.setHeader(b"cache-control", b"no-store")
    return body.encode()
