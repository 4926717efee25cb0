"""Web UI auth logic, pure: scrypt password hashes, sessions with a fake clock, CSRF
token checks, the login redirect target and the Origin check."""

from __future__ import annotations

import pytest

from netboot.http.ui.auth import (
    LoginThrottle,
    SessionBook,
    WeakPassword,
    check_password_policy,
    hash_password,
    safe_next,
    verify_password,
)
from netboot.http.ui.pages import origin_allowed


class FakeClock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_password_hash_verifies_only_the_right_password():
    stored = hash_password("correct horse battery")
    assert stored.startswith("scrypt$32768$8$1$")
    assert verify_password("correct horse battery", stored)
    assert not verify_password("correct horse batterY", stored)
    assert not verify_password("", stored)


def test_same_password_gets_a_different_salt_each_time():
    assert hash_password("same password") != hash_password("same password")


@pytest.mark.parametrize(
    "stored",
    [
        "",
        "plain",
        "md5$1$2$3$abc$def",
        "scrypt$x$8$1$AAAA$AAAA",
        "scrypt$1073741824$8$1$AAAA$AAAA",  # absurd cost from a tampered row: refused
        "scrypt$16384$8$1$!!!$AAAA",
    ],
)
def test_malformed_stored_hash_never_matches_and_never_raises(stored):
    assert verify_password("anything", stored) is False


def test_password_policy_rejects_short_passwords():
    with pytest.raises(WeakPassword, match="at least 8"):
        check_password_policy("short")
    check_password_policy("long enough")


def test_session_lookup_touches_and_expires_when_idle():
    clock = FakeClock()
    book = SessionBook(clock, idle_seconds=100, absolute_seconds=1000)
    s = book.new("admin")
    clock.now += 99
    assert book.get(s.token) is s  # touched: the idle timer restarts
    clock.now += 99
    assert book.get(s.token) is s
    clock.now += 101
    assert book.get(s.token) is None
    assert len(book) == 0  # forgotten, not just hidden


def test_session_has_an_absolute_lifetime_even_when_active():
    clock = FakeClock()
    book = SessionBook(clock, idle_seconds=100, absolute_seconds=250)
    s = book.new("admin")
    for _ in range(2):
        clock.now += 90
        assert book.get(s.token) is s
    clock.now += 90
    assert book.get(s.token) is None


def test_unknown_or_empty_cookie_has_no_session():
    book = SessionBook(FakeClock())
    book.new("admin")
    assert book.get(None) is None
    assert book.get("") is None
    assert book.get("not-a-token") is None


def test_login_replaces_the_anonymous_session_and_its_csrf_token():
    book = SessionBook(FakeClock())
    anonymous = book.new()
    assert not anonymous.authenticated
    fresh = book.login(anonymous, "admin", "scrypt$stored")
    assert fresh.authenticated and fresh.username == "admin"
    assert fresh.password_hash == "scrypt$stored"
    assert fresh.token != anonymous.token
    assert fresh.csrf_token != anonymous.csrf_token
    # A cookie planted before login (session fixation) is worthless afterwards.
    assert book.get(anonymous.token) is None
    assert book.get(fresh.token) is fresh


def test_csrf_token_must_match_exactly():
    s = SessionBook(FakeClock()).new("admin")
    assert s.csrf_ok(s.csrf_token)
    assert not s.csrf_ok(None)
    assert not s.csrf_ok("")
    assert not s.csrf_ok(s.csrf_token[:-1])
    assert not s.csrf_ok(s.csrf_token + "x")
    assert not s.csrf_ok("\u00e9" * 10)  # non-ASCII input is just wrong, not an error
    other = SessionBook(FakeClock()).new("admin")
    assert not s.csrf_ok(other.csrf_token)  # tokens are per session


def test_tokens_are_long_and_random():
    book = SessionBook(FakeClock())
    sessions = [book.new() for _ in range(50)]
    tokens = {s.token for s in sessions} | {s.csrf_token for s in sessions}
    assert len(tokens) == 100
    assert all(len(t) >= 43 for t in tokens)  # 32 random bytes, base64url


def test_session_book_evicts_the_oldest_past_its_cap():
    book = SessionBook(FakeClock(), max_sessions=3)
    first, *rest = [book.new() for _ in range(4)]
    assert len(book) == 3
    assert book.get(first.token) is None
    assert all(book.get(s.token) is s for s in rest)


def test_drop_user_ends_all_their_sessions():
    book = SessionBook(FakeClock())
    a1, a2, b = book.new("alice"), book.new("alice"), book.new("bob")
    book.drop_user("alice")
    assert book.get(a1.token) is None and book.get(a2.token) is None
    assert book.get(b.token) is b


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/ui/nodes/abc123", "/ui/nodes/abc123"),
        ("/ui/?q=web&status=ready", "/ui/?q=web&status=ready"),
        (None, "/ui/"),
        ("", "/ui/"),
        ("https://evil.example/", "/ui/"),
        ("//evil.example/ui/", "/ui/"),
        ("/api/nodes", "/ui/"),
        ("/ui/\\evil", "/ui/"),
        ("/ui/\r\nSet-Cookie: x=y", "/ui/"),
    ],
)
def test_login_only_redirects_to_local_ui_paths(target, expected):
    assert safe_next(target) == expected


@pytest.mark.parametrize(
    ("origin", "host", "ok"),
    [
        (None, b"10.66.0.1:5248", True),  # no Origin header (old clients): token decides
        (b"http://10.66.0.1:5248", b"10.66.0.1:5248", True),
        (b"http://evil.example", b"10.66.0.1:5248", False),
        (b"http://10.66.0.1:9999", b"10.66.0.1:5248", False),
        (b"null", b"10.66.0.1:5248", False),
        (b"http://10.66.0.1:5248", None, False),
    ],
)
def test_post_origin_must_be_this_server(origin, host, ok):
    assert origin_allowed(origin, host) is ok


def test_login_throttle_locks_a_user_after_repeated_failures_then_forgives():
    clock = FakeClock()
    throttle = LoginThrottle(clock, limit=3, window=60, lockout=30)
    for _ in range(2):
        throttle.failed("admin", "10.0.0.5")
    assert throttle.wait("admin", "10.0.0.5") == 0
    throttle.failed("admin", "10.0.0.5")
    assert throttle.wait("admin", "10.0.0.5") == 30
    # The user name is locked from every address, and that address for every user.
    assert throttle.wait("admin", "10.0.0.9") == 30
    assert throttle.wait("bob", "10.0.0.5") == 30
    assert throttle.wait("bob", "10.0.0.9") == 0
    clock.now += 30
    assert throttle.wait("admin", "10.0.0.5") == 0


def test_login_throttle_counts_only_recent_failures_and_resets_on_success():
    clock = FakeClock()
    throttle = LoginThrottle(clock, limit=3, window=60, lockout=30)
    for _ in range(2):
        throttle.failed("admin", "p")
    clock.now += 61  # those two are forgotten
    throttle.failed("admin", "p")
    assert throttle.wait("admin", "p") == 0
    throttle.failed("admin", "p")
    throttle.succeeded("admin", "p")
    throttle.failed("admin", "p")
    assert throttle.wait("admin", "p") == 0


def test_login_throttle_memory_is_bounded():
    throttle = LoginThrottle(FakeClock(), max_keys=10)
    for i in range(100):
        throttle.failed(f"user{i}", f"10.0.{i}.1")
    assert len(throttle._failures) == 10
