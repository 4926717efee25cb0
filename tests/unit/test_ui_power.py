"""The node page's power settings form, through the real twisted.web Site and Request
machinery (no sockets): real drivers' parameter schemas and the same check as the MAAS
API (NodeActions.set_power), secrets never in the page, CSRF like every other form."""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet import defer
from twisted.web import resource

from netboot.http.ui import build_ui
from netboot.http.ui.auth import hash_password
from netboot.http.ui.power import power_form, submitted_parameters
from netboot.metrics import Metrics
from netboot.nodes.actions import InvalidAction, NodeActions
from netboot.power import registry
from netboot.power.base import PowerError, PowerParameterSpec, PowerState
from netboot.power.ipmi import IPMIDriver
from netboot.store.sqlite import SQLiteStore
from tests.unit.test_ui_pages import PASSWORD, Client, csrf_of, enlist, logged_in

SECRET = "bmc-Secret-77"


class AnsweringIPMI(IPMIDriver):
    """The real ipmi driver's schema and checks; the BMC is scripted: the password
    SECRET is accepted (power on), anything else refused as a BMC refuses it."""

    def query(self, params):
        if params.get("power_pass") == SECRET:
            return defer.succeed(PowerState.ON)
        address = params["power_address"]
        return defer.fail(
            PowerError(f"BMC {address} refused the credentials for user 'admin'", False)
        )


@pytest.fixture
def store(tmp_path: Path):
    s = SQLiteStore(tmp_path / "state" / "netboot.sqlite3")
    s.create_user("admin", hash_password(PASSWORD, n=2**10), 0.0)
    yield s
    s.close()


@pytest.fixture
def site(store, fake_boot_dir):
    def lookup(power_type: str):
        if power_type == "ipmi":
            return AnsweringIPMI(None)
        return registry.driver_for(power_type, None)

    actions = NodeActions(store, lookup, clock=lambda: 5000.0)
    root = resource.Resource()
    root.putChild(b"ui", build_ui(store, fake_boot_dir, lambda: 5000.0, None, actions))
    return Metrics(store, lambda: 5000.0, process=False).site(root)


def ipmi_form(page, address="10.0.0.5:623", password=SECRET, **extra) -> dict[str, str]:
    return {
        "csrf_token": csrf_of(page),
        "power_type": "ipmi",
        "param_power_address": address,
        "param_power_user": "admin",
        "param_power_pass": password,
        **extra,
    }


def input_value(body: str, name: str) -> str | None:
    match = re.search(rf'<input [^>]*name="{name}"[^>]*value="([^"]*)"', body)
    return match.group(1) if match else None


def test_the_form_shows_the_chosen_drivers_fields_from_its_schema(site, store):
    system_id = enlist(store, "52:54:00:00:00:01")
    client = logged_in(site)
    page = client.get(f"/ui/nodes/{system_id}")
    assert 'id="power-form"' in page.body and 'id="power-type-choice"' in page.body
    for t in registry.power_types():
        assert f'<option value="{t}"' in page.body
    assert "manual has no parameters." in page.body  # a new node is manual
    page = client.get(f"/ui/nodes/{system_id}?power_type=ipmi")
    for spec in IPMIDriver.parameters:
        assert f'name="param_{spec.name}"' in page.body
    assert 'type="password" name="param_power_pass"' in page.body
    assert 'type="password" name="param_k_g"' in page.body
    assert 'id="power-check" checked' in page.body  # ipmi can ask the BMC
    assert "switches the node from manual to ipmi" in page.body
    # An unknown type in the query string falls back to the node's own.
    assert "manual has no parameters." in client.get(f"/ui/nodes/{system_id}?power_type=x").body


def test_saving_stores_normalised_parameters_and_never_shows_the_secret(site, store):
    system_id = enlist(store, "52:54:00:00:00:01")
    client = logged_in(site)
    page = client.get(f"/ui/nodes/{system_id}?power_type=ipmi")
    r = client.post(f"/ui/nodes/{system_id}/power", ipmi_form(page, address="10.0.0.5"))
    assert r.code == 303 and r.header("location") == f"/ui/nodes/{system_id}#power"
    node = store.node(system_id)
    assert node.power_type == "ipmi"
    assert store.power_parameters(system_id) == {
        "power_address": "10.0.0.5:623",  # normalised as the API stores it
        "power_user": "admin",
        "power_pass": SECRET,
    }
    event = store.events(system_id)[-1]
    assert (event.kind, event.actor) == ("power-config", "admin")
    after = client.get(f"/ui/nodes/{system_id}")
    assert "power settings saved (ipmi)" in after.body
    assert SECRET not in after.body
    assert input_value(after.body, "param_power_address") == "10.0.0.5:623"
    assert input_value(after.body, "param_power_pass") == ""
    assert 'placeholder="stored: leave blank to keep"' in after.body


def test_a_blank_secret_keeps_the_stored_one_and_an_optional_one_can_be_cleared(site, store):
    system_id = enlist(store, "52:54:00:00:00:01")
    client = logged_in(site)
    page = client.get(f"/ui/nodes/{system_id}?power_type=ipmi")
    client.post(f"/ui/nodes/{system_id}/power", ipmi_form(page, param_k_g="kg-key"))
    page = client.get(f"/ui/nodes/{system_id}")
    assert "kg-key" not in page.body and 'id="power-clear-k_g"' in page.body
    r = client.post(
        f"/ui/nodes/{system_id}/power", ipmi_form(page, address="10.0.0.6", password="")
    )
    assert r.code == 303
    assert store.power_parameters(system_id) == {
        "power_address": "10.0.0.6:623",
        "power_user": "admin",
        "power_pass": SECRET,
        "k_g": "kg-key",
    }
    page = client.get(f"/ui/nodes/{system_id}")
    form = ipmi_form(page, password="", clear_k_g="1")
    assert client.post(f"/ui/nodes/{system_id}/power", form).code == 303
    assert "k_g" not in store.power_parameters(system_id)
    assert store.power_parameters(system_id)["power_pass"] == SECRET


def test_a_bad_address_is_refused_on_the_form_with_the_api_message(site, store):
    system_id = enlist(store, "52:54:00:00:00:01")
    client = logged_in(site)
    page = client.get(f"/ui/nodes/{system_id}?power_type=ipmi")
    r = client.post(f"/ui/nodes/{system_id}/power", ipmi_form(page, address="10.0.0.300"))
    assert r.code == 400
    error = html.unescape(re.search(r'id="power-error">([^<]*)<', r.body).group(1))
    # The same check and words as the MAAS API (power_parameters_power_address there).
    actions = NodeActions(store, lambda t: registry.driver_for(t, None))
    bad = {"power_address": "10.0.0.300", "power_user": "a", "power_pass": "b"}
    with pytest.raises(InvalidAction) as api:
        actions.check_power("ipmi", bad)
    assert api.value.field == "power_parameters_power_address"
    assert error == "power_address: " + api.value.message
    assert "10.0.0.300" in error and "is not an IP address or host name" in error
    assert input_value(r.body, "param_power_address") == "10.0.0.300"  # kept to fix it
    assert SECRET not in r.body  # not even the one just typed
    assert store.node(system_id).power_type == "manual"  # nothing stored
    assert store.power_parameters(system_id) == {}
    # Too long a password, a missing required one: the field is named as well.
    r = client.post(f"/ui/nodes/{system_id}/power", ipmi_form(page, password="p" * 21))
    assert r.code == 400 and "power_pass: password is longer than 20 bytes" in r.body
    r = client.post(f"/ui/nodes/{system_id}/power", ipmi_form(page, password=""))
    assert r.code == 400 and "power_pass: is required" in r.body
    r = client.post(
        f"/ui/nodes/{system_id}/power", {"csrf_token": csrf_of(page), "power_type": "nonsense"}
    )
    assert r.code == 400 and "power type: unknown &#39;nonsense&#39;" in r.body


def test_the_bmc_check_refuses_wrong_credentials_and_stores_nothing(site, store):
    system_id = enlist(store, "52:54:00:00:00:01")
    client = logged_in(site)
    page = client.get(f"/ui/nodes/{system_id}?power_type=ipmi")
    r = client.post(
        f"/ui/nodes/{system_id}/power", ipmi_form(page, password="wrong-one", check="1")
    )
    assert r.code == 400
    assert "not saved: BMC 10.0.0.5:623 refused the credentials for user &#39;admin&#39;" in r.body
    assert store.node(system_id).power_type == "manual"
    r = client.post(f"/ui/nodes/{system_id}/power", ipmi_form(page, check="1"))
    assert r.code == 303
    assert "the BMC answered: power is on" in client.get(f"/ui/nodes/{system_id}").body
    assert store.power_parameters(system_id)["power_pass"] == SECRET


def test_the_power_form_needs_the_csrf_token_and_a_login(site, store):
    system_id = enlist(store, "52:54:00:00:00:01")
    client = logged_in(site)
    page = client.get(f"/ui/nodes/{system_id}?power_type=ipmi")
    form = ipmi_form(page)
    del form["csrf_token"]
    assert client.post(f"/ui/nodes/{system_id}/power", form).code == 403
    assert Client(site).post(f"/ui/nodes/{system_id}/power", ipmi_form(page)).code == 403
    assert store.node(system_id).power_type == "manual"
    assert client.post("/ui/nodes/nope/power", ipmi_form(page)).code == 404


def test_power_form_view_and_submission_are_pure():
    specs = (
        PowerParameterSpec("power_address"),
        PowerParameterSpec("power_pass", secret=True),
        PowerParameterSpec("k_g", required=False, secret=True),
    )
    stored = {"power_address": "h:1", "power_pass": "s", "k_g": "k"}
    view = power_form(("manual", "ipmi"), "ipmi", "ipmi", specs, stored)
    assert [(f.name, f.value, f.stored) for f in view.fields] == [
        ("power_address", "h:1", True),
        ("power_pass", "", True),
        ("k_g", "", True),
    ]
    other = power_form(("manual", "ipmi"), "ipmi", "manual", specs, stored)
    assert [(f.value, f.stored) for f in other.fields] == [("", False)] * 3
    form = {"param_power_address": " h:2 ", "param_power_pass": "", "param_k_g": ""}
    assert submitted_parameters(specs, form, stored, same_type=True) == {
        "power_address": "h:2",
        "power_pass": "s",
        "k_g": "k",
    }
    assert submitted_parameters(specs, {**form, "clear_k_g": "1"}, stored, True) == {
        "power_address": "h:2",
        "power_pass": "s",
    }
    assert submitted_parameters(specs, form, stored, same_type=False) == {"power_address": "h:2"}
    # A secret is taken as typed (spaces may belong to it).
    assert submitted_parameters(specs, {"param_power_pass": " x "}, {}, False) == {
        "power_pass": " x "
    }


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    power_type=st.sampled_from([*registry.power_types(), "", "nonsense"]),
    form=st.dictionaries(
        st.sampled_from(
            ["param_power_address", "param_power_user", "param_power_pass", "param_power_id"]
            + ["param_mac_address", "param_k_g", "param_privilege_level", "param_x"]
            + ["clear_power_pass", "clear_k_g", "check"]
        ),
        st.text(max_size=30),
        max_size=8,
    ),
    secret=st.text(max_size=16).map(lambda t: "Zq9#" + t),
)
def test_random_power_forms_are_stored_or_refused_never_a_crash(
    site, store, power_type, form, secret
):
    system_id = store.nodes()[0].system_id if store.nodes() else enlist(store, "52:54:00:00:00:09")
    client = logged_in(site)
    page = client.get(f"/ui/nodes/{system_id}")
    r = client.post(
        f"/ui/nodes/{system_id}/power",
        {**form, "param_power_pass": secret, "power_type": power_type, "csrf_token": csrf_of(page)},
    )
    assert r.code in (303, 400), r.body
    shown = r.body if r.code == 400 else client.get(f"/ui/nodes/{system_id}").body
    if not any(secret in value for value in form.values()):  # not echoed as another field
        assert html.escape(secret) not in shown and secret not in shown
    if r.code == 400:
        assert 'id="power-error"' in r.body
    else:
        assert store.node(system_id).power_type == power_type
