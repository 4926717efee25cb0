"""What every /ui/ page handler shares: the resource's dependencies, page rendering,
errors, redirects, the session cookie, and finishing a request from a Deferred."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import resource
from twisted.web.server import NOT_DONE_YET, Request

from netboot.http.ui.auth import LoginThrottle, Session, SessionBook
from netboot.http.ui.images import HashCache
from netboot.http.ui.render import PageRenderer
from netboot.store.leases import LeaseStore

log = Logger(namespace="netboot.ui")

COOKIE = b"netboot_session"
ALARMS_TABLE = "dhcp_alarms"  # written by the DHCP rogue-server probe
STATIC_DIR = Path(__file__).resolve().parent.parent.parent / "templates" / "ui" / "static"
SECURITY_HEADERS = {
    b"content-security-policy": (
        b"default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        b"frame-ancestors 'none'; base-uri 'none'"
    ),
    b"x-content-type-options": b"nosniff",
    b"x-frame-options": b"DENY",
    b"referrer-policy": b"same-origin",
}
RunBlocking = Callable[..., defer.Deferred]


def arg(request: Request, name: str) -> str:
    values = (request.args or {}).get(name.encode())
    return values[0].decode("utf-8", "replace") if values else ""


def origin_allowed(origin: bytes | None, host: bytes | None) -> bool:
    """A POST's Origin header (when the browser sends one) must name this server."""
    if origin is None:
        return True
    if host is None or origin == b"null":
        return False
    return urlsplit(origin.decode("latin-1")).netloc.lower() == host.decode("latin-1").lower()


class UIBase(resource.Resource):
    isLeaf = True

    def __init__(
        self,
        store: Any,
        boot_dir: Path,
        clock: Callable[[], float],
        run_blocking: RunBlocking,
        actions: Any = None,
        sessions: SessionBook | None = None,
        images: Any = None,
        reactor: Any = None,
    ) -> None:
        super().__init__()
        self.store = store
        self.boot_dir = boot_dir
        self.clock = clock
        self.run_blocking = run_blocking
        self.actions = actions  # netboot.nodes.actions.NodeActions, or None: read-only
        self.images = images  # netboot.images.cache.ImageCache, or None: no image cache
        self.reactor = reactor  # for timers (IReactorTime); None: wait for every action
        self.sessions = sessions or SessionBook(clock)
        self.throttle = LoginThrottle(clock)
        self.renderer = PageRenderer()
        self.hashes = HashCache()
        self._lease_reader: LeaseStore | None = None

    # -- helpers ----------------------------------------------------------------------

    def _page(self, request: Request, session: Session | None, template: str, **ctx: Any) -> bytes:
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        flash = list(session.flash) if session else []
        if session:
            session.flash.clear()
        ctx.setdefault("section", "")
        return self.renderer.render(
            template,
            user=session.username if session else None,
            csrf_token=session.csrf_token if session else "",
            flash=flash,
            **ctx,
        )

    def _error(
        self, request: Request, session: Session | None, code: int, title: str, detail: str
    ) -> bytes:
        request.setResponseCode(code)
        return self._page(request, session, "error.html.j2", code=code, title=title, detail=detail)

    def _redirect(self, request: Request, location: str) -> bytes:
        request.setResponseCode(303)
        request.setHeader(b"location", location.encode("utf-8"))
        return b""

    def _set_cookie(self, request: Request, session: Session) -> None:
        request.addCookie(
            COOKIE,
            session.token.encode("ascii"),
            path=b"/ui",
            httpOnly=True,
            sameSite="strict",
            secure=request.isSecure(),
        )

    def _deferred(self, request: Request, d: defer.Deferred) -> int:
        """Finish ``request`` with what ``d`` fires (bytes), unless the client left."""
        gone: list[bool] = []
        request.notifyFinish().addErrback(lambda _: gone.append(True))

        def write(body: bytes) -> None:
            if not gone:
                if request.method != b"HEAD":
                    request.write(body)
                request.finish()

        def crashed(failure: Failure) -> None:
            log.failure("UI request {path} failed", failure, path=request.path.decode("latin-1"))
            if not gone:
                request.setResponseCode(500)
                request.write(b"internal error\n")
                request.finish()

        d.addCallback(write).addErrback(crashed)
        return NOT_DONE_YET
