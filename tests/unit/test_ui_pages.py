"""The /ui/ resource through the real twisted.web Site and Request machinery (in process,
no sockets): login flow, session cookie flags, CSRF refusals, redirects, pages, actions.
Node actions are the real NodeActions over a real SQLite store with a fake power driver."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from io import BytesIO
from ipaddress import IPv4Address
from pathlib import Path
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet import defer, task
from twisted.web import resource, util
from twisted.web.server import Request
from twisted.web.test.requesthelper import DummyChannel

from netboot.dhcp.leases import Binding, State
from netboot.http.ui import build_ui
from netboot.http.ui.auth import hash_password
from netboot.images.cache import ImageVersion
from netboot.images.manifest import FileEntry, Manifest
from netboot.metrics import Metrics
from netboot.nodes.actions import NodeActions
from netboot.nodes.inventory import parse_enlist_body
from netboot.nodes.lifecycle import NodeStatus
from netboot.store.leases import Alarm, LeaseStore, PutLease, RecordAlarm
from netboot.store.sqlite import SQLiteStore

PASSWORD = "s3cret-password"
HOST = b"appliance.test:5248"


class FakePower:
    name = "manual"
    parameters = ()
    can_query = False

    def __init__(self) -> None:
        self.calls: list[str] = []

    def on(self, params: Mapping[str, str]) -> defer.Deferred:
        self.calls.append("on")
        return defer.succeed(None)

    def off(self, params: Mapping[str, str]) -> defer.Deferred:
        self.calls.append("off")
        return defer.succeed(None)

    def cycle(self, params):
        return defer.succeed(None)

    def query(self, params):
        raise AssertionError("manual power cannot query")


class FakeImageCache:
    """ImageCache's read side: one current deploy image."""

    def images(self) -> list[ImageVersion]:
        files = (FileEntry("root.tar.xz", "ef" * 32, 300 << 20),)
        manifest = Manifest("deploy", "bookworm", "20260101", "amd64", files, {})
        return [ImageVersion(manifest, Path("/nowhere"), True)]


@dataclass
class Response:
    code: int
    headers: dict[str, list[str]]
    body: str

    def header(self, name: str) -> str | None:
        values = self.headers.get(name.lower())
        return values[0] if values else None


@dataclass
class Client:
    """Sends real server.Request objects into the Site; keeps cookies like a browser."""

    site: object
    cookies: dict[str, str] = field(default_factory=dict)

    def request(self, method: str, path: str, form=None, headers=None, meanwhile=None) -> Response:
        channel = DummyChannel()
        channel.site = self.site
        req = Request(channel)
        body = urlencode(form or {}).encode()
        req.requestHeaders.setRawHeaders(b"host", [HOST])
        if form is not None:
            req.requestHeaders.setRawHeaders(
                b"content-type", [b"application/x-www-form-urlencoded"]
            )
            req.requestHeaders.setRawHeaders(b"content-length", [str(len(body)).encode()])
        if self.cookies:
            cookie = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
            req.requestHeaders.setRawHeaders(b"cookie", [cookie.encode()])
        for name, value in (headers or {}).items():
            req.requestHeaders.setRawHeaders(name.encode(), [value.encode()])
        req.content = BytesIO(body)
        req.content.seek(0, 2)  # as after the channel wrote the body into it
        req.parseCookies()  # the HTTP channel does this when the headers are complete
        req.requestReceived(method.encode(), path.encode(), b"HTTP/1.0")
        if meanwhile is not None:  # e.g. advance a fake clock while the answer is pending
            meanwhile()
        raw = channel.transport.written.getvalue()
        head, _, payload = raw.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        code = int(lines[0].split()[1])
        headers_out: dict[str, list[str]] = {}
        for line in lines[1:]:
            name, _, value = line.partition(": ")
            headers_out.setdefault(name.lower(), []).append(value)
        for set_cookie in headers_out.get("set-cookie", []):
            name, _, rest = set_cookie.partition("=")
            value = rest.split(";")[0]
            if "max-age=0" in set_cookie.lower() or not value:
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value
        return Response(code, headers_out, payload.decode("utf-8"))

    def get(self, path: str) -> Response:
        return self.request("GET", path)

    def post(self, path: str, form: dict, **kw) -> Response:
        return self.request("POST", path, form, **kw)


def csrf_of(page: Response) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.body)
    assert match, page.body
    return match.group(1)


@pytest.fixture
def store(tmp_path: Path):
    s = SQLiteStore(tmp_path / "state" / "netboot.sqlite3")
    s.create_user("admin", hash_password(PASSWORD, n=2**10), 0.0)  # cheap for tests
    yield s
    s.close()


@pytest.fixture
def power() -> FakePower:
    return FakePower()


@pytest.fixture
def site(store, power, fake_boot_dir):
    """Just the UI (and the root redirect) under the metrics-counting Site, as
    build_site mounts them; the other areas have their own tests."""
    actions = NodeActions(store, lambda power_type: power, clock=lambda: 5000.0)
    root = resource.Resource()
    images = FakeImageCache()
    ui = build_ui(store, fake_boot_dir, lambda: 5000.0, None, actions, images=images)
    root.putChild(b"ui", ui)
    root.putChild(b"", util.Redirect(b"/ui/"))
    return Metrics(store, lambda: 5000.0, process=False).site(root)


def enlist(store, mac: str, **extra) -> str:
    body = {"boot_mac": mac, "cpu": {"count": 2, "model": "QEMU Virtual CPU"}}
    body["memory"] = {"total_mib": 1024}
    body["dmi"] = {"sys_vendor": "QEMU", "product_name": "Standard PC (i440FX)"}
    body["disks"] = [{"name": "vda", "size_bytes": 8 << 30, "model": "virtio", "serial": "D1"}]
    body.update(extra)
    node, _ = store.enlist(parse_enlist_body(json.dumps(body).encode()), 1000.0, "node@test")
    return node.system_id


def logged_in(site) -> Client:
    client = Client(site)
    form = client.get("/ui/login")
    r = client.post(
        "/ui/login",
        {"csrf_token": csrf_of(form), "username": "admin", "password": PASSWORD, "next": "/ui/"},
    )
    assert r.code == 303, r.body
    return client


def test_not_logged_in_gets_redirected_to_login_with_next(site):
    r = Client(site).get("/ui/leases")
    assert r.code == 303
    assert r.header("location") == "/ui/login?next=/ui/leases"


def test_login_sets_a_strict_httponly_cookie_and_rotates_it(site):
    client = Client(site)
    form = client.get("/ui/login")
    assert form.code == 200
    anonymous = client.cookies["netboot_session"]
    [set_cookie] = form.headers["set-cookie"]
    assert "HttpOnly" in set_cookie and "SameSite=strict" in set_cookie.replace("Strict", "strict")
    assert "Path=/ui" in set_cookie
    r = client.post(
        "/ui/login",
        {
            "csrf_token": csrf_of(form),
            "username": "admin",
            "password": PASSWORD,
            "next": "/ui/leases",
        },
    )
    assert r.code == 303 and r.header("location") == "/ui/leases"
    assert client.cookies["netboot_session"] != anonymous  # no session fixation
    assert client.get("/ui/leases").code == 200


def test_wrong_password_is_refused_without_saying_which_part_was_wrong(site, store):
    client = Client(site)
    form = client.get("/ui/login")
    for user, password in (("admin", "wrong-password"), ("nobody", PASSWORD)):
        r = client.post(
            "/ui/login", {"csrf_token": csrf_of(form), "username": user, "password": password}
        )
        assert r.code == 401
        assert "Wrong user name or password." in r.body
    assert client.get("/ui/").code == 303  # still not logged in
    assert store.user("admin").last_login is None


def test_repeated_failures_lock_the_login_even_for_the_right_password(site):
    client = Client(site)
    form = client.get("/ui/login")
    for _ in range(5):
        r = client.post(
            "/ui/login", {"csrf_token": csrf_of(form), "username": "admin", "password": "nope"}
        )
        assert r.code == 401
    r = client.post(
        "/ui/login", {"csrf_token": csrf_of(form), "username": "admin", "password": PASSWORD}
    )
    assert r.code == 429 and "Too many failed logins" in r.body
    assert r.header("retry-after") == "61"
    assert client.get("/ui/").code == 303  # not logged in


def test_deleting_the_account_or_resetting_its_password_ends_its_sessions(site, store):
    client = logged_in(site)
    assert client.get("/ui/").code == 200
    store.create_user("admin", hash_password("a-new-password", n=2**10), 1.0, replace=True)
    assert client.get("/ui/").code == 303  # back to the login form
    client = Client(site)
    form = client.get("/ui/login")
    r = client.post(
        "/ui/login",
        {"csrf_token": csrf_of(form), "username": "admin", "password": "a-new-password"},
    )
    assert r.code == 303 and client.get("/ui/").code == 200
    store.delete_user("admin")
    assert client.get("/ui/").code == 303


def test_login_post_without_the_form_token_is_refused(site):
    client = Client(site)
    client.get("/ui/login")
    r = client.post("/ui/login", {"username": "admin", "password": PASSWORD})
    assert r.code == 403
    assert "CSRF" in r.body


def test_post_without_csrf_token_is_refused_and_changes_nothing(site, store):
    system_id = enlist(store, "52:54:00:00:00:01")
    client = logged_in(site)
    r = client.post(f"/ui/nodes/{system_id}", {"action": "commission"})
    assert r.code == 403
    r = client.post(f"/ui/nodes/{system_id}", {"action": "commission", "csrf_token": "forged"})
    assert r.code == 403
    assert store.node(system_id).status is NodeStatus.NEW


def test_post_from_another_origin_is_refused_even_with_the_token(site, store, power):
    system_id = enlist(store, "52:54:00:00:00:01")
    client = logged_in(site)
    token = csrf_of(client.get(f"/ui/nodes/{system_id}"))
    r = client.post(
        f"/ui/nodes/{system_id}",
        {"action": "power_on", "csrf_token": token},
        headers={"origin": "http://evil.example"},
    )
    assert r.code == 403
    assert power.calls == []


def test_post_without_a_session_is_refused(site, store):
    system_id = enlist(store, "52:54:00:00:00:01")
    r = Client(site).post(f"/ui/nodes/{system_id}", {"action": "commission", "csrf_token": "x"})
    assert r.code == 403
    assert store.node(system_id).status is NodeStatus.NEW


def test_action_button_changes_state_and_records_the_operator(site, store, power):
    system_id = enlist(store, "52:54:00:00:00:01")
    client = logged_in(site)
    page = client.get(f"/ui/nodes/{system_id}")
    assert 'id="action-commission"' in page.body
    r = client.post(f"/ui/nodes/{system_id}", {"action": "commission", "csrf_token": csrf_of(page)})
    assert r.code == 303 and r.header("location") == f"/ui/nodes/{system_id}"
    node = store.node(system_id)
    assert node.status is NodeStatus.COMMISSIONING
    assert power.calls == ["on"]
    event = store.events(system_id)[-2]  # the transition, then the power event
    assert (event.actor, event.from_status, event.to_status) == (
        "admin",
        NodeStatus.NEW,
        NodeStatus.COMMISSIONING,
    )
    after = client.get(f"/ui/nodes/{system_id}")
    assert "commission: done, now Commissioning." in after.body  # the flash, shown once
    assert "commission: done" not in client.get(f"/ui/nodes/{system_id}").body


def test_a_slow_power_driver_answers_the_form_after_ten_seconds(store, fake_boot_dir):
    clock = task.Clock()
    pending: defer.Deferred = defer.Deferred()

    class SlowPower(FakePower):
        def on(self, params):
            return pending

    actions = NodeActions(store, lambda power_type: SlowPower(), clock=lambda: 5000.0)
    root = resource.Resource()
    root.putChild(b"ui", build_ui(store, fake_boot_dir, lambda: 5000.0, None, actions))
    ui = root.children[b"ui"]
    ui.reactor = clock  # timers from the fake clock; password checks stay inline
    site = Metrics(store, lambda: 5000.0, process=False).site(root)
    system_id = enlist(store, "52:54:00:00:00:01")
    client = logged_in(site)
    token = csrf_of(client.get(f"/ui/nodes/{system_id}"))
    r = client.post(
        f"/ui/nodes/{system_id}",
        {"action": "commission", "csrf_token": token},
        meanwhile=lambda: clock.advance(10),
    )
    assert r.code == 303  # answered although the driver has not
    assert store.node(system_id).status is NodeStatus.COMMISSIONING
    assert "the power driver has not answered yet" in client.get(f"/ui/nodes/{system_id}").body
    pending.callback(None)  # the BMC answers later: the result shows on the next page
    assert "commission: done, now Commissioning." in client.get(f"/ui/nodes/{system_id}").body
    assert clock.getDelayedCalls() == []


def test_illegal_action_is_explained_not_executed(site, store, power):
    system_id = enlist(store, "52:54:00:00:00:01")
    client = logged_in(site)
    token = csrf_of(client.get(f"/ui/nodes/{system_id}"))
    r = client.post(f"/ui/nodes/{system_id}", {"action": "release", "csrf_token": token})
    assert r.code == 303
    assert store.node(system_id).status is NodeStatus.NEW
    assert "release refused: the node is New" in client.get(f"/ui/nodes/{system_id}").body
    r = client.post(f"/ui/nodes/{system_id}", {"action": "format_disks", "csrf_token": token})
    assert r.code == 400 and "unknown" in r.body


def test_node_list_shows_status_colours_and_filters(site, store):
    a = enlist(store, "52:54:00:00:00:01")
    b = enlist(store, "52:54:00:00:00:02")
    store.transition(b, NodeStatus.COMMISSIONING, 1.0, "test", "seed")
    store.transition(b, NodeStatus.READY, 2.0, "test", "seed")
    client = logged_in(site)
    page = client.get("/ui/").body
    row_a = re.search(rf'<tr data-system-id="{a}".*?</tr>', page, re.S).group(0)
    row_b = re.search(rf'<tr data-system-id="{b}".*?</tr>', page, re.S).group(0)
    assert "tone-new" in row_a and "tone-ready" in row_b
    filtered = client.get("/ui/?status=ready").body
    assert f'data-system-id="{b}"' in filtered and f'data-system-id="{a}"' not in filtered
    by_mac = client.get("/ui/?q=52-54-00-00-00-01").body
    assert f'data-system-id="{a}"' in by_mac and f'data-system-id="{b}"' not in by_mac
    assert "unknown status" in client.get("/ui/?status=nonsense").body


def test_node_list_pages_past_one_hundred_rows(site, store):
    for i in range(101):
        enlist(store, f"52:54:00:00:{i >> 8:02x}:{i & 255:02x}")
    client = logged_in(site)
    first = client.get("/ui/").body
    assert first.count("<tr data-system-id=") == 100
    assert "1&ndash;100 of 101 (page 1 of 2)" in first
    assert 'href="/ui/?q=&amp;status=&amp;page=2" rel="next"' in first
    second = client.get("/ui/?q=&status=&page=2").body
    assert second.count("<tr data-system-id=") == 1
    assert 'rel="prev"' in second and 'rel="next"' not in second


def test_node_page_shows_inventory_events_and_commissioning_output(site, store):
    system_id = enlist(store, "52:54:00:00:00:01")
    store.add_script_result(system_id, "10-lshw", 0, b"<lshw output>", 3.0)
    page = logged_in(site).get(f"/ui/nodes/{system_id}")
    assert page.code == 200
    assert "52:54:00:00:00:01 (boot)" in page.body
    assert "QEMU Virtual CPU" in page.body and "1.0 GiB" in page.body
    assert "vda" in page.body and "8.0 GiB" in page.body
    assert "enlisted from 52:54:00:00:00:01" in page.body
    assert "&lt;lshw output&gt;" in page.body  # autoescaped, never raw HTML


def test_node_inventory_text_is_escaped(site, store):
    system_id = enlist(store, "52:54:00:00:00:01", dmi={"sys_vendor": "<script>alert(1)</script>"})
    page = logged_in(site).get(f"/ui/nodes/{system_id}").body
    assert "<script>alert(1)" not in page
    assert "&lt;script&gt;alert(1)" in page


def test_unknown_node_and_page_are_404(site):
    client = logged_in(site)
    assert client.get("/ui/nodes/nope42").code == 404
    assert client.get("/ui/nosuchpage").code == 404


def test_images_page_lists_boot_files_and_the_image_cache(site, fake_boot_dir):
    import hashlib

    page = logged_in(site).get("/ui/images").body
    digest = hashlib.sha256((fake_boot_dir / "vmlinuz").read_bytes()).hexdigest()
    assert "vmlinuz" in page and digest in page
    assert "deploy/bookworm/20260101" in page and "300.0 MiB" in page and "ef" * 32 in page


def test_deploy_button_offers_the_cached_releases_and_deploys_one(site, store, power):
    system_id = enlist(store, "52:54:00:00:00:01")
    store.transition(system_id, NodeStatus.COMMISSIONING, 1.0, "test", "seed")
    store.transition(system_id, NodeStatus.READY, 2.0, "test", "seed")
    client = logged_in(site)
    page = client.get(f"/ui/nodes/{system_id}")
    assert '<option value="bookworm">bookworm</option>' in page.body
    r = client.post(
        f"/ui/nodes/{system_id}",
        {"action": "deploy", "distro_series": "bookworm", "csrf_token": csrf_of(page)},
    )
    assert r.code == 303
    node = store.node(system_id)
    assert node.status is NodeStatus.DEPLOYING
    assert (node.owner, node.distro_series) == ("admin", "bookworm")


def test_release_offers_an_erase_box_and_erasing_sends_the_node_to_disk_erasing(site, store):
    system_id = enlist(store, "52:54:00:00:00:01")
    for status in (NodeStatus.COMMISSIONING, NodeStatus.READY, NodeStatus.ALLOCATED):
        store.transition(system_id, status, 1.0, "test", "seed", fields={"owner": "admin"})
    store.transition(system_id, NodeStatus.DEPLOYING, 2.0, "test", "seed")
    store.transition(system_id, NodeStatus.DEPLOYED, 3.0, "test", "seed")
    client = logged_in(site)
    page = client.get(f"/ui/nodes/{system_id}")
    assert 'name="erase" value="1" id="release-erase">' in page.body  # unticked by default
    r = client.post(
        f"/ui/nodes/{system_id}",
        {"action": "release", "erase": "1", "csrf_token": csrf_of(page)},
    )
    assert r.code == 303
    node = store.node(system_id)
    assert node.status is NodeStatus.DISK_ERASING and node.owner == "admin"
    assert "Disk erasing" in client.get(f"/ui/nodes/{system_id}").body


def test_leases_page_lists_leases_from_the_dhcp_lease_table(site, store):
    system_id = enlist(store, "52:54:00:00:00:01")
    leases = LeaseStore(store.path)
    binding = Binding(
        b"\x01\x52\x54\x00\x00\x00\x01",
        "52:54:00:00:00:01",
        int(IPv4Address("10.66.0.100")),
        State.ACTIVE,
        9000.0,
        "brave-otter",
        "10.66.0.0/24",
    )
    leases.apply([PutLease(binding, 4000.0)])
    leases.close()
    page = logged_in(site).get("/ui/leases").body
    assert "10.66.0.100" in page and "brave-otter" in page
    assert f'<a href="/ui/nodes/{system_id}">52:54:00:00:00:01</a>' in page
    assert "1 held, 0 remembered" in page


def test_alarms_page_shows_rogue_dhcp_alarms(site, store):
    client = logged_in(site)
    assert "No alarms." in client.get("/ui/alarms").body
    leases = LeaseStore(store.path)
    alarm = Alarm(4500.0, "br-prov", "rogue-dhcp", "10.66.0.66", "52:54:00:66:66:66", "OFFER")
    leases.apply([RecordAlarm(alarm)])
    leases.close()
    page = client.get("/ui/alarms").body
    assert "10.66.0.66" in page and "rogue-dhcp" in page


def test_alarms_page_tolerates_a_store_without_an_alarm_table(site, store):
    store._db.execute("DROP TABLE dhcp_alarms")
    page = logged_in(site).get("/ui/alarms")
    assert page.code == 200
    assert 'id="no-alarms-table"' in page.body


def test_logout_ends_the_session(site):
    client = logged_in(site)
    token = csrf_of(client.get("/ui/"))
    old_cookie = client.cookies["netboot_session"]
    assert client.post("/ui/logout", {"csrf_token": token}).code == 303
    client.cookies["netboot_session"] = old_cookie  # replaying the old cookie is useless
    assert client.get("/ui/").code == 303


def test_pages_carry_security_headers(site):
    r = logged_in(site).get("/ui/")
    assert "default-src 'none'" in r.header("content-security-policy")
    assert r.header("x-frame-options") == "DENY"
    assert r.header("cache-control") == "no-store"


def test_root_redirects_to_the_ui_and_css_is_public(site):
    client = Client(site)
    assert client.get("/").header("location") == "/ui/"
    css = client.get("/ui/static/ui.css")
    assert css.code == 200 and ".tone-ready" in css.body


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    logged=st.booleans(),
    method=st.sampled_from(["GET", "POST", "HEAD", "PUT", "DELETE"]),
    segments=st.lists(st.text(min_size=0, max_size=12), max_size=4),
    form=st.dictionaries(
        st.sampled_from(["action", "csrf_token", "username", "password", "next", "q", "x"]),
        st.text(max_size=40),
        max_size=4,
    ),
)
def test_random_requests_never_crash_the_ui(site, logged, method, segments, form):
    path = "/ui/" + "/".join(quote(s, safe="") for s in segments)
    site.resource.children[b"ui"].throttle._failures.clear()  # examples share the site
    client = logged_in(site) if logged else Client(site)
    if logged and form.get("csrf_token") == "":
        form["csrf_token"] = csrf_of(client.get("/ui/"))  # sometimes a valid token
    response = client.request(method, path, form if method == "POST" else None)
    assert response.code in {200, 303, 400, 401, 403, 404, 405, 429}, (path, response.body)
