"""Operator authentication for the web UI: password hashes, sessions, CSRF tokens.

Pure: no I/O, no reactor, the clock is injected. The Twisted resources in ``pages.py``
call these; the unit tests drive them with a fake clock.

- Passwords: ``hashlib.scrypt`` (RFC 7914) with a random 16-byte salt; the parameters
  are stored with the hash (``scrypt$N$r$p$salt$hash``) so they can be raised later
  without invalidating existing users.
- Sessions: a random 256-bit token in an HttpOnly, SameSite=Strict cookie, kept in
  memory (a restart logs everybody out). Idle and absolute lifetimes bound each one.
- CSRF: every session (also the anonymous one the login form gets) carries its own
  random token; every POST must echo it in the ``csrf_token`` form field.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

SCRYPT_N = 2**15
SCRYPT_R = 8
SCRYPT_P = 1
_SCRYPT_MAXMEM = 64 * 1024 * 1024
MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024

IDLE_SECONDS = 8 * 3600
ABSOLUTE_SECONDS = 24 * 3600
MAX_SESSIONS = 10_000


class WeakPassword(ValueError):
    pass


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def check_password_policy(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise WeakPassword(f"password must be at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise WeakPassword(f"password must be at most {MAX_PASSWORD_LENGTH} characters")


def hash_password(password: str, salt: bytes | None = None, n: int = SCRYPT_N) -> str:
    """``scrypt$N$r$p$salt$hash`` for ``password`` (salt random unless given; a lower
    cost ``n`` only for tests)."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode("utf-8"),
        salt=salt,
        n=n,
        r=SCRYPT_R,
        p=SCRYPT_P,
        maxmem=_SCRYPT_MAXMEM,
        dklen=32,
    )
    return f"scrypt${n}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    """True if ``password`` matches ``stored``; a malformed stored hash never matches."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        n_i, r_i, p_i = int(n), int(r), int(p)
        # Bound the work a tampered row could make us do.
        if not (2 <= n_i <= 2**20 and 1 <= r_i <= 32 and 1 <= p_i <= 16):
            return False
        expected = _unb64(digest)
        got = hashlib.scrypt(
            password.encode("utf-8"),
            salt=_unb64(salt),
            n=n_i,
            r=r_i,
            p=p_i,
            maxmem=256 * 1024 * 1024,
            dklen=len(expected),
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, expected)


@functools.cache
def dummy_hash() -> str:
    """A hash of a random password: verifying against it when the user does not exist
    costs the same time as a real check, so response times do not reveal which users
    exist. Made on first use, not at import (the CLI imports this module too)."""
    return hash_password(secrets.token_urlsafe(16))


@dataclass(slots=True)
class Session:
    token: str
    csrf_token: str
    created: float
    last_seen: float
    username: str | None = None
    password_hash: str | None = None  # the stored hash at login: a reset ends the session
    flash: list[str] = field(default_factory=list)

    @property
    def authenticated(self) -> bool:
        return self.username is not None

    def csrf_ok(self, submitted: str | None) -> bool:
        return submitted is not None and hmac.compare_digest(
            submitted.encode("utf-8", "replace"), self.csrf_token.encode("ascii")
        )


class SessionBook:
    """In-memory sessions keyed by their cookie token, oldest evicted past MAX_SESSIONS."""

    def __init__(
        self,
        clock: Callable[[], float],
        idle_seconds: float = IDLE_SECONDS,
        absolute_seconds: float = ABSOLUTE_SECONDS,
        max_sessions: int = MAX_SESSIONS,
    ) -> None:
        self.clock = clock
        self.idle_seconds = idle_seconds
        self.absolute_seconds = absolute_seconds
        self.max_sessions = max_sessions
        self._sessions: OrderedDict[str, Session] = OrderedDict()

    def __len__(self) -> int:
        return len(self._sessions)

    def new(self, username: str | None = None) -> Session:
        now = self.clock()
        session = Session(
            token=secrets.token_urlsafe(32),
            csrf_token=secrets.token_urlsafe(32),
            created=now,
            last_seen=now,
            username=username,
        )
        self._sessions[session.token] = session
        while len(self._sessions) > self.max_sessions:
            self._sessions.popitem(last=False)
        return session

    def get(self, token: str | None) -> Session | None:
        """The live session for a cookie value, touching its idle timer; None if unknown
        or expired (an expired one is forgotten)."""
        if not token:
            return None
        session = self._sessions.get(token)
        if session is None:
            return None
        now = self.clock()
        if (
            now - session.last_seen > self.idle_seconds
            or now - session.created > self.absolute_seconds
        ):
            del self._sessions[token]
            return None
        session.last_seen = now
        self._sessions.move_to_end(token)
        return session

    def login(self, old: Session | None, username: str, password_hash: str) -> Session:
        """A fresh session (new cookie and CSRF token) for ``username``: the pre-login
        token is dropped so a planted cookie cannot ride the login (session fixation)."""
        if old is not None:
            self.drop(old)
        session = self.new(username)
        session.password_hash = password_hash
        return session

    def drop(self, session: Session) -> None:
        self._sessions.pop(session.token, None)

    def drop_user(self, username: str) -> None:
        for token in [t for t, s in self._sessions.items() if s.username == username]:
            del self._sessions[token]


class LoginThrottle:
    """Failed logins per user name and per client address: after ``limit`` failures
    within ``window`` seconds, further attempts are refused for ``lockout`` seconds
    (without checking the password), which bounds online guessing."""

    def __init__(
        self,
        clock: Callable[[], float],
        limit: int = 5,
        window: float = 300.0,
        lockout: float = 60.0,
        max_keys: int = 10_000,
    ) -> None:
        self.clock = clock
        self.limit = limit
        self.window = window
        self.lockout = lockout
        self.max_keys = max_keys
        self._failures: OrderedDict[str, list[float]] = OrderedDict()

    def _recent(self, key: str, now: float) -> list[float]:
        times = [t for t in self._failures.get(key, ()) if now - t < self.window]
        if times:
            self._failures[key] = times
        else:
            self._failures.pop(key, None)
        return times

    def wait(self, username: str, peer: str) -> float:
        """Seconds until ``username`` may try again from ``peer`` (0: now)."""
        now = self.clock()
        longest = 0.0
        for key in (f"user:{username}", f"peer:{peer}"):
            times = self._recent(key, now)
            if len(times) >= self.limit:
                longest = max(longest, times[-1] + self.lockout - now)
        return max(longest, 0.0)

    def failed(self, username: str, peer: str) -> None:
        now = self.clock()
        for key in (f"user:{username}", f"peer:{peer}"):
            self._failures.setdefault(key, []).append(now)
            self._failures.move_to_end(key)
        while len(self._failures) > self.max_keys:
            self._failures.popitem(last=False)

    def succeeded(self, username: str, peer: str) -> None:
        self._failures.pop(f"user:{username}", None)
        self._failures.pop(f"peer:{peer}", None)


def safe_next(target: str | None, default: str = "/ui/") -> str:
    """Where to go after login: only a local path under /ui/ (no open redirect)."""
    if (
        not target
        or not target.startswith("/ui/")
        or target.startswith("//")
        or "\\" in target
        or any(ord(c) < 0x21 for c in target)
    ):
        return default
    return target
