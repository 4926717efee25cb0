"""``/ui/``: the operator web UI as one twisted.web resource.

Every request passes the same gate, in this order: security headers; the static CSS
(public); the session from the cookie; for every POST, the Origin check and the session's
CSRF token (403 otherwise); for every page but the login form, an authenticated session
(GET: 303 to the login form; POST: 403). Forms use POST/redirect/GET with a flash
message, so a reload never repeats an action.
"""

from __future__ import annotations

from urllib.parse import quote

from twisted.web.server import Request

from netboot.http.ui.auth import Session, dummy_hash, safe_next, verify_password
from netboot.http.ui.base import (
    COOKIE,
    SECURITY_HEADERS,
    STATIC_DIR,
    arg,
    log,
    origin_allowed,
)
from netboot.http.ui.content import ContentPages

__all__ = ["UIResource", "origin_allowed"]


class UIResource(ContentPages):
    # -- the gate -------------------------------------------------------------------

    def render(self, request: Request) -> bytes | int:
        for name, value in SECURITY_HEADERS.items():
            request.setHeader(name, value)
        path = [p.decode("utf-8", "replace") for p in request.postpath or []]
        method = request.method
        if path == ["static", "ui.css"] and method in (b"GET", b"HEAD"):
            request.setHeader(b"content-type", b"text/css; charset=utf-8")
            request.setHeader(b"cache-control", b"max-age=3600")
            return (STATIC_DIR / "ui.css").read_bytes()
        request.setHeader(b"cache-control", b"no-store")
        if not path:
            return self._redirect(request, "/ui/")
        if method not in (b"GET", b"HEAD", b"POST"):
            request.setHeader(b"allow", b"GET, HEAD, POST")
            return self._error(request, None, 405, "Method Not Allowed", "use GET or POST")
        cookie = request.getCookie(COOKIE)
        session = self.sessions.get(cookie.decode("ascii", "replace") if cookie else None)
        if method == b"POST":
            refusal = self._post_refusal(request, session)
            if refusal:
                log.warn(
                    "refused POST {path} from {peer}: {why}",
                    path=request.path.decode("latin-1"),
                    peer=request.getClientAddress().host,
                    why=refusal,
                )
                return self._error(request, session, 403, "Forbidden", refusal)
        if path == ["login"]:
            return self._login(request, session)
        if session is not None and session.authenticated and not self._still_valid(session):
            self.sessions.drop(session)  # account deleted or password reset since login
            session = None
        if session is None or not session.authenticated:
            if method == b"POST":
                return self._error(request, session, 403, "Forbidden", "log in first")
            target = request.uri.decode("latin-1")
            return self._redirect(request, "/ui/login?next=" + quote(target, safe="/"))
        return self._route(request, session, path)

    def _still_valid(self, session: Session) -> bool:
        return self.store.password_hash(session.username) == session.password_hash

    def _post_refusal(self, request: Request, session: Session | None) -> str | None:
        if not origin_allowed(request.getHeader(b"origin"), request.getHeader(b"host")):
            return "cross-origin form submission"
        if session is None:
            return "no session (cookies disabled, or it expired): reload the page"
        if not session.csrf_ok(arg(request, "csrf_token") or None):
            return "missing or wrong CSRF token: reload the page and try again"
        return None

    def _route(self, request: Request, session: Session, path: list[str]) -> bytes | int:
        get = request.method in (b"GET", b"HEAD")
        if path == [""] and get:
            return self._nodes(request, session)
        if len(path) == 2 and path[0] == "nodes":
            if get:
                return self._node(request, session, path[1])
            return self._node_action(request, session, path[1])
        if len(path) == 3 and path[0] == "nodes" and path[2] == "power" and not get:
            return self._node_power(request, session, path[1])
        if path == ["leases"] and get:
            return self._leases(request, session)
        if path == ["images"] and get:
            return self._images(request, session)
        if path == ["alarms"] and get:
            return self._alarms(request, session)
        if path == ["logout"] and not get:
            self.sessions.drop(session)
            request.addCookie(
                COOKIE, b"", path=b"/ui", max_age=b"0", httpOnly=True, sameSite="strict"
            )
            return self._redirect(request, "/ui/login")
        return self._error(request, session, 404, "Not Found", "no such page")

    # -- login ------------------------------------------------------------------------

    def _login(self, request: Request, session: Session | None) -> bytes | int:
        if session is None:
            session = self.sessions.new()
            self._set_cookie(request, session)
        nxt = safe_next(arg(request, "next"))
        if request.method != b"POST":
            if session.authenticated:
                return self._redirect(request, nxt)
            return self._page(request, session, "login.html.j2", error="", next=nxt, username="")
        username = arg(request, "username").strip()
        password = arg(request, "password")
        peer = request.getClientAddress().host
        wait = self.throttle.wait(username, peer)
        if wait > 0:
            log.warn("UI login for {user!r} from {peer} throttled", user=username, peer=peer)
            request.setResponseCode(429)
            request.setHeader(b"retry-after", str(int(wait) + 1).encode())
            return self._page(
                request,
                session,
                "login.html.j2",
                error=f"Too many failed logins: try again in {int(wait) + 1} s.",
                next=nxt,
                username=username,
            )
        stored = self.store.password_hash(username) if username else None
        d = self.run_blocking(verify_password, password, stored or dummy_hash())

        def checked(ok: bool) -> bytes:
            if not ok or stored is None:
                self.throttle.failed(username, peer)
                log.warn("UI login failed for {user!r} from {peer}", user=username, peer=peer)
                request.setResponseCode(401)
                return self._page(
                    request,
                    session,
                    "login.html.j2",
                    error="Wrong user name or password.",
                    next=nxt,
                    username=username,
                )
            self.throttle.succeeded(username, peer)
            fresh = self.sessions.login(session, username, stored)
            self.store.record_login(username, self.clock())
            self._set_cookie(request, fresh)
            log.info("UI login {user} from {peer}", user=username, peer=peer)
            return self._redirect(request, nxt)

        return self._deferred(request, d.addCallback(checked))
