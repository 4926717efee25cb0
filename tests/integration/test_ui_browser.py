"""The web UI in headless Chromium (Debian's package), against `netboot serve` in a lab
namespace. Chromium runs in a second lab namespace (a client host on the lab bridge),
driven over the DevTools protocol (tests/integration/ui_browser.py), so neither the
appliance nor the browser can reach anything outside the lab.

Nodes enlist over HTTP (curl) and are moved through their lifecycle with NodeActions on
the appliance's store file, the same calls the node callbacks make. A screenshot of every
page is kept under artifacts/ui/ (gitignored) for a human to look at.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from netboot.lab.appliance import LabAppliance
from netboot.lab.netns import LabHost, LabNetwork
from netboot.nodes.actions import NodeActions
from netboot.nodes.lifecycle import NodeStatus
from netboot.nodes.wiring import power_lookup
from netboot.store.sqlite import SQLiteStore
from tests.conftest import REPO, require_root
from tests.integration.maas_helpers import MaasCurl
from tests.integration.ui_browser import Browser, Page

pytestmark = pytest.mark.netns
ARTIFACTS = REPO / "artifacts" / "ui"
PASSWORD = "lab-password-1"


@dataclass
class UILab:
    lab: LabNetwork
    app: LabAppliance
    client: LabHost
    browser: Browser
    page: Page  # logged in as admin
    nodes: dict[str, str]  # role -> system_id

    @property
    def base(self) -> str:
        return self.app.http_base

    def store(self) -> SQLiteStore:
        return SQLiteStore(self.app.state_dir / "netboot.sqlite3")


def enlist(client: LabHost, base: str, index: int, vendor: str) -> str:
    mac, second = f"52:54:00:00:10:{index:02x}", f"52:54:00:00:11:{index:02x}"
    body = {
        "boot_mac": mac,
        "interfaces": [{"name": "ens3", "mac": mac}, {"name": "ens4", "mac": second}],
        "dmi": {"sys_vendor": vendor, "product_name": "Standard PC (Q35)", "product_serial": "S1"},
        "cpu": {"count": 2, "model": "QEMU Virtual CPU version 2.5+"},
        "memory": {"total_mib": 2048},
        "disks": [{"name": "vda", "size_bytes": 20 << 30, "model": "QEMU HARDDISK", "serial": "D"}],
    }
    result = client.run(
        ["curl", "-sS", "--max-time", "10", "--data-binary", json.dumps(body), f"{base}/api/enlist"]
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["system_id"]


def seed_lifecycle(app: LabAppliance, nodes: dict[str, str]) -> None:
    """ready / deployed / failed nodes, through NodeActions as node callbacks do it."""
    store = SQLiteStore(app.state_dir / "netboot.sqlite3")
    try:
        actions = NodeActions(store, power_lookup(None))
        for role in ("ready", "deployed", "failed"):
            actions.commission(nodes[role], "admin")
        store.add_script_result(nodes["ready"], "00-lscpu", 0, b"Architecture: x86_64\n", 1.0)
        store.add_script_result(nodes["ready"], "10-lsblk", 0, b"vda 20G QEMU HARDDISK\n", 1.0)
        actions.commissioning_done(nodes["ready"], "node", True, "commissioned", {"nics": 2})
        actions.commissioning_done(nodes["deployed"], "node", True, "commissioned")
        actions.commissioning_done(nodes["failed"], "node", False, "00-lscpu exited 1")
        actions.deploy(nodes["deployed"], "admin", distro_series="bookworm")
        actions.deployment_done(nodes["deployed"], "node", True, "installed")
    finally:
        store.close()


def dhclient_lease(host: LabHost, workdir: Path) -> None:
    lease_file = workdir / "dhclient.leases"
    proc = host.popen(
        ["dhclient", "-d", "-4", "-1", "-lf", str(lease_file), "-pf", str(workdir / "dhc.pid")]
        + ["-sf", "/bin/true", host.interface],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    try:
        while not (lease_file.exists() and "fixed-address" in lease_file.read_text()):
            assert time.monotonic() < deadline, "dhclient got no lease within 60 s"
            time.sleep(0.2)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def wait_for_alarm(app: LabAppliance, timeout: float = 90) -> None:
    store = SQLiteStore(app.state_dir / "netboot.sqlite3")
    deadline = time.monotonic() + timeout
    try:
        while not store._db.execute("SELECT 1 FROM dhcp_alarms").fetchone():
            assert time.monotonic() < deadline, "no rogue-DHCP alarm: " + app.log_text()[-2000:]
            time.sleep(0.3)
    finally:
        store.close()


def login(page: Page, base: str, password: str = PASSWORD) -> int | None:
    page.goto(f"{base}/ui/login")
    page.js(
        f"document.getElementById('username').value = 'admin';"
        f"document.getElementById('password').value = {json.dumps(password)};"
    )
    return page.submit("document.getElementById('login-form').submit()")


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UILab]:
    require_root()
    work = tmp_path_factory.mktemp("ui")
    boot = work / "boot"
    boot.mkdir()
    (boot / "undionly.kpxe").write_bytes(b"\x00" * 70_000)
    (boot / "vmlinuz").write_bytes(b"\x01" * 1_000_000)
    with LabNetwork(prefix="nbui") as lab:
        # A second DHCP server on the wire while the appliance starts: its start-up
        # rogue-DHCP probe records an alarm for the alarms page. Stopped before dhclient.
        rogue = lab.add_host("10.66.0.2/24")
        dnsmasq = rogue.popen(
            ["dnsmasq", "-k", "--conf-file=/dev/null", "--port=0", "--interface=eth0",
             "--bind-interfaces", "--dhcp-range=10.66.0.210,10.66.0.220,255.255.255.0,1h",
             f"--dhcp-leasefile={work / 'dnsmasq.leases'}", f"--pid-file={work / 'dm.pid'}",
             "--user=root", "--group=root", "--no-ping"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        app = LabAppliance(lab, work / "appliance", boot).start()
        try:
            app.wait_ready(60)
            wait_for_alarm(app)
            dnsmasq.terminate()
            dnsmasq.wait(timeout=10)
            created = subprocess.run(
                [sys.executable, "-m", "netboot.cli", "--config", str(app.config_path)]
                + ["user", "create", "admin", "--password-stdin"],
                input=PASSWORD + "\n",
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert created.returncode == 0, created.stderr
            client = lab.add_host("10.66.0.50/24")
            nodes = {
                role: enlist(client, app.http_base, i, vendor)
                for i, (role, vendor) in enumerate(
                    [("new", "Acme"), ("ready", "QEMU"), ("deployed", "QEMU"), ("failed", "QEMU")]
                )
            }
            seed_lifecycle(app, nodes)
            dhclient_lease(lab.add_host(), app.workdir)
            browser = Browser(client.popen, work / "browser")
            try:
                page = browser.page()
                assert login(page, app.http_base) == 200
                yield UILab(lab, app, client, browser, page, nodes)
            finally:
                browser.close()
        finally:
            app.stop()


def shot(page: Page, name: str) -> None:
    page.screenshot(ARTIFACTS / f"{name}.png")


def test_not_logged_in_is_redirected_to_the_login_form(ui: UILab):
    anonymous = ui.browser.page(fresh_context=True)  # no cookies
    anonymous.goto(f"{ui.base}/ui/nodes/{ui.nodes['new']}")
    assert anonymous.url == f"{ui.base}/ui/login?next=/ui/nodes/{ui.nodes['new']}"
    assert anonymous.js("document.getElementById('login-form') !== null")
    shot(anonymous, "login")
    # A wrong password stays on the form, says so, and is a 401.
    assert login(anonymous, ui.base, "not-the-password") == 401
    assert anonymous.js("document.getElementById('login-error').textContent") == (
        "Wrong user name or password."
    )


def test_login_then_lands_on_the_page_asked_for(ui: UILab):
    page = ui.browser.page(fresh_context=True)
    page.goto(f"{ui.base}/ui/leases")
    page.js(
        "document.getElementById('username').value = 'admin';"
        f"document.getElementById('password').value = {json.dumps(PASSWORD)};"
    )
    assert page.submit("document.getElementById('login-form').submit()") == 200
    assert page.url == f"{ui.base}/ui/leases"
    # The session cookie is HttpOnly: page scripts cannot read it.
    assert page.js("document.cookie") == ""


def test_node_list_shows_every_node_with_its_status_colour(ui: UILab):
    ui.page.goto(f"{ui.base}/ui/")
    classes = ui.page.js(
        "Object.fromEntries([...document.querySelectorAll('#nodes tbody tr')].map("
        "r => [r.dataset.systemId, r.querySelector('.status').className]))"
    )
    expected = {
        "new": "tone-new",
        "ready": "tone-ready",
        "deployed": "tone-owned",
        "failed": "tone-failed",
    }
    for role, tone in expected.items():
        assert tone in classes[ui.nodes[role]].split(), (role, classes)
    # The colours are real CSS, not just class names: ready is green, failed red.
    colours = ui.page.js(
        "Object.fromEntries([...document.querySelectorAll('#nodes tbody tr')].map("
        "r => [r.dataset.status, getComputedStyle(r.querySelector('.status')).backgroundColor]))"
    )
    assert colours["ready"] == "rgb(14, 132, 32)"
    assert colours["failed_commissioning"] == "rgb(199, 22, 43)"
    assert colours["deployed"] == "rgb(44, 110, 203)"
    shot(ui.page, "nodes")


def test_filter_by_mac_and_by_status(ui: UILab):
    ui.page.goto(f"{ui.base}/ui/")
    ui.page.js("document.getElementById('q').value = '52:54:00:00:99:99'")
    ui.page.submit("document.getElementById('filter-form').submit()")
    assert ui.page.js("document.querySelectorAll('#nodes tbody tr[data-system-id]').length") == 0
    # The failed node's second NIC, written the Windows way: found all the same.
    ui.page.js("document.getElementById('q').value = '52-54-00-00-11-03'")
    ui.page.submit("document.getElementById('filter-form').submit()")
    shown = ui.page.js(
        "[...document.querySelectorAll('#nodes tbody tr[data-system-id]')]"
        ".map(r => r.dataset.systemId)"
    )
    assert shown == [ui.nodes["failed"]]
    ui.page.js(
        "document.getElementById('q').value = '';"
        "document.getElementById('status-filter').value = 'ready'"
    )
    ui.page.submit("document.getElementById('filter-form').submit()")
    shown = ui.page.js(
        "[...document.querySelectorAll('#nodes tbody tr[data-system-id]')]"
        ".map(r => r.dataset.systemId)"
    )
    assert shown == [ui.nodes["ready"]]
    assert "status=ready" in ui.page.url
    shot(ui.page, "nodes-filtered")


def test_node_page_shows_inventory_events_and_commissioning_output(ui: UILab):
    ui.page.goto(f"{ui.base}/ui/nodes/{ui.nodes['ready']}")
    text = ui.page.js("document.getElementById('inventory').innerText")
    assert "52:54:00:00:10:01 (boot)" in text and "52:54:00:00:11:01" in text
    assert "QEMU Virtual CPU version 2.5+" in text and "2.0 GiB" in text
    assert "vda" in text and "20.0 GiB" in text and "QEMU HARDDISK" in text
    assert "nics" in text  # the commissioning inventory
    results = ui.page.js(
        "[...document.querySelectorAll('#commissioning details summary')].map(s => s.innerText)"
    )
    assert [r.split()[0] for r in results] == ["00-lscpu", "10-lsblk"]
    events = ui.page.js("[...document.querySelectorAll('#events tbody tr')].map(r => r.innerText)")
    assert any("Commissioning \u2192 Ready" in e for e in events), events
    assert any("enlisted" in e for e in events), events
    assert ui.page.js("document.getElementById('power-state').innerText") == "power: unknown"
    shot(ui.page, "node")


def test_action_button_commissions_the_node(ui: UILab):
    system_id = ui.nodes["new"]
    ui.page.goto(f"{ui.base}/ui/nodes/{system_id}")
    status = ui.page.submit("document.getElementById('action-commission').click()")
    assert status == 200
    assert ui.page.url == f"{ui.base}/ui/nodes/{system_id}"  # POST, redirect, GET
    assert ui.page.js("document.getElementById('node-status').innerText") == "Commissioning"
    assert "commission: done" in ui.page.js("document.querySelector('.flash').innerText")
    store = ui.store()
    try:
        assert store.node(system_id).status is NodeStatus.COMMISSIONING
        transition = [e for e in store.events(system_id) if e.to_status is not None][-1]
        assert (transition.actor, transition.to_status) == ("admin", NodeStatus.COMMISSIONING)
    finally:
        store.close()
    shot(ui.page, "node-after-commission")


def test_post_without_csrf_token_is_refused(ui: UILab):
    system_id = ui.nodes["ready"]
    ui.page.goto(f"{ui.base}/ui/nodes/{system_id}")
    ui.page.js(
        "document.querySelectorAll('#actions input[name=csrf_token]').forEach(i => i.remove())"
    )
    assert ui.page.submit("document.getElementById('action-deploy').click()") == 403
    assert "CSRF" in ui.page.js("document.getElementById('error-detail').innerText")
    shot(ui.page, "csrf-refused")
    store = ui.store()
    try:
        assert store.node(system_id).status is NodeStatus.READY
    finally:
        store.close()


def test_leases_images_and_alarms_pages(ui: UILab):
    ui.page.goto(f"{ui.base}/ui/leases")
    rows = ui.page.js("[...document.querySelectorAll('#leases tbody tr')].map(r => r.innerText)")
    assert len(rows) == 1 and "10.66.0.100" in rows[0] and "active" in rows[0], rows
    shot(ui.page, "leases")

    ui.page.goto(f"{ui.base}/ui/images")
    files = ui.page.js(
        "[...document.querySelectorAll('#images tbody tr')].map(r => r.cells[0].innerText)"
    )
    assert files == ["undionly.kpxe", "vmlinuz"]
    digest = ui.page.js("document.querySelector('#images tbody tr .hash').innerText")
    assert digest == hashlib.sha256(b"\x00" * 70_000).hexdigest()
    shot(ui.page, "images")

    assert ui.page.goto(f"{ui.base}/ui/alarms") == 200
    alarms = ui.page.js("[...document.querySelectorAll('#alarms tbody tr')].map(r => r.innerText)")
    assert len(alarms) == 1 and "rogue-dhcp" in alarms[0] and "10.66.0.2" in alarms[0], alarms
    shot(ui.page, "alarms")


def test_logout_ends_the_session(ui: UILab):
    page = ui.browser.page(fresh_context=True)
    assert login(page, ui.base) == 200
    assert page.submit("document.querySelector('form.logout').submit()") == 200
    assert page.url == f"{ui.base}/ui/login"
    page.goto(f"{ui.base}/ui/")
    assert page.url.startswith(f"{ui.base}/ui/login")


def test_power_settings_form_stores_checks_and_never_shows_the_secret(ui: UILab):
    """Choose a power type, fill in its fields, save: stored as the API would store it,
    the password never back in the page, a bad address refused on the form with the
    same message the MAAS API gives."""
    system_id, secret = ui.nodes["deployed"], "Bmc-pw-0815"
    page = ui.page
    page.goto(f"{ui.base}/ui/nodes/{system_id}")
    page.js("document.getElementById('power-type-choice').value = 'ipmi'")
    assert page.submit("document.getElementById('power-type-form').submit()") == 200
    fields = page.js(
        "[...document.querySelectorAll('#power-form input[name^=param_]')]"
        ".map(i => [i.name, i.type])"
    )
    assert fields == [
        ["param_power_address", "text"],
        ["param_power_user", "text"],
        ["param_power_pass", "password"],
        ["param_k_g", "password"],
        ["param_privilege_level", "text"],
    ]

    def fill(address: str) -> int | None:
        page.js(
            f"document.getElementById('power-param-power_address').value = '{address}';"
            "document.getElementById('power-param-power_user').value = 'admin';"
            f"document.getElementById('power-param-power_pass').value = '{secret}';"
            "document.getElementById('power-check').checked = false;"  # no BMC in this lab
        )
        return page.submit("document.getElementById('power-save').click()")

    assert fill("10.66.0.300") == 400
    error = page.js("document.getElementById('power-error').innerText")
    assert error == "power_address: '10.66.0.300' is not an IP address or host name"
    assert secret not in page.js("document.documentElement.outerHTML")
    assert page.js("document.getElementById('power-param-power_address').value") == "10.66.0.300"
    shot(page, "node-power-refused")
    key = ui.app.netboot("apikey", "create", "--user", "admin")
    assert key.returncode == 0, key.stderr
    api = MaasCurl(ui.client, ui.base, key.stdout.strip())
    code, body = api.call(
        "PUT",
        f"machines/{system_id}/",
        data={
            "power_type": "ipmi",
            "power_parameters_power_address": "10.66.0.300",
            "power_parameters_power_user": "admin",
            "power_parameters_power_pass": secret,
        },
    )
    assert code == 400 and error.split(": ", 1)[1] in str(body["power_parameters_power_address"])

    assert fill("10.66.0.200") == 200
    assert page.url == f"{ui.base}/ui/nodes/{system_id}#power"
    assert "power settings saved (ipmi)" in page.js("document.querySelector('.flash').innerText")
    html = page.js("document.documentElement.outerHTML")
    assert secret not in html
    assert (
        page.js("document.getElementById('power-param-power_address').value") == "10.66.0.200:623"
    )
    assert page.js("document.getElementById('power-param-power_pass').value") == ""
    assert page.js("document.getElementById('power-param-power_pass').placeholder") == (
        "stored: leave blank to keep"
    )
    assert page.js("document.getElementById('power-state').innerText") == "power: unknown"
    assert page.js("document.querySelector('#actions .sub').innerText") == "(ipmi)"
    shot(page, "node-power-saved")
    code, machine = api.call("GET", f"machines/{system_id}/")
    assert code == 200 and machine["power_type"] == "ipmi" and secret not in str(machine)
    store = ui.store()
    try:
        assert store.power_parameters(system_id) == {
            "power_address": "10.66.0.200:623",
            "power_user": "admin",
            "power_pass": secret,
        }
    finally:
        store.close()
    # Saved again with the password left blank: the stored one is kept.
    page.js(
        "document.getElementById('power-param-power_user').value = 'operator';"
        "document.getElementById('power-check').checked = false;"
    )
    assert page.submit("document.getElementById('power-save').click()") == 200
    store = ui.store()
    try:
        stored = store.power_parameters(system_id)
        assert stored["power_user"] == "operator" and stored["power_pass"] == secret
    finally:
        store.close()
    # Switching to redfish with the BMC check on (the default): nothing listens on the
    # appliance's own TCP port 1, so the form says so and nothing is stored.
    page.js("document.getElementById('power-type-choice').value = 'redfish'")
    assert page.submit("document.getElementById('power-type-form').submit()") == 200
    assert page.js("document.getElementById('power-check').checked") is True
    bmc = f"http://{ui.app.lab.address.ip}:1"
    page.js(
        f"document.getElementById('power-param-power_address').value = '{bmc}';"
        "document.getElementById('power-param-power_user').value = 'admin';"
        f"document.getElementById('power-param-power_pass').value = '{secret}';"
    )
    assert page.submit("document.getElementById('power-save').click()") == 400
    error = page.js("document.getElementById('power-error').innerText")
    assert error == f"not saved: cannot reach Redfish BMC {bmc}: [Errno 111] Connection refused"
    assert secret not in page.js("document.documentElement.outerHTML")
    shot(page, "node-power-check-failed")
    store = ui.store()
    try:
        assert store.node(system_id).power_type == "ipmi"
        assert store.power_parameters(system_id)["power_user"] == "operator"
    finally:
        store.close()
