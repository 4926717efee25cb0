"""The [power] config table, and PowerService's bookkeeping in a real SQLite store
(fake drivers, task.Clock)."""

from __future__ import annotations

import pytest
from twisted.internet import task

from netboot.config import ConfigError
from netboot.nodes.actions import NodeActions, PowerActionFailed
from netboot.power.base import PowerError, PowerState
from netboot.power.queue import RetryPolicy
from netboot.power.service import PowerService
from netboot.power.settings import PowerConfig, parse_power
from netboot.store.nodes_ext import create_node
from netboot.store.sqlite import SQLiteStore
from tests.unit.power_fakes import FakeDriver


def test_defaults_and_wol_interfaces_follow_dhcp():
    cfg = parse_power({}, ("br-prov",))
    assert cfg.drivers.timeout == 30 and cfg.drivers.wol_interfaces == ("br-prov",)
    assert cfg.retry.attempts == 3 and cfg.poll_interval == 300
    cfg = parse_power({"wol_interfaces": ["eth1"], "timeout": 5, "attempts": 1}, ("br-prov",))
    assert cfg.drivers.wol_interfaces == ("eth1",) and cfg.retry.attempt_timeout == 10


@pytest.mark.parametrize(
    "raw,key",
    [
        ({"colour": 1}, "power.colour"),
        ({"timeout": "fast"}, "power.timeout"),
        ({"timeout": 0}, "power.timeout"),
        ({"attempts": 2.5}, "power.attempts"),
        ({"wol_interfaces": "br0"}, "power.wol_interfaces"),
        ({"timeout": 60, "action_deadline": 30}, "power.action_deadline"),
        ({"poll_interval": True}, "power.poll_interval"),
    ],
)
def test_bad_values_name_the_key(raw, key):
    with pytest.raises(ConfigError) as info:
        parse_power(raw)
    assert info.value.key == key


@pytest.fixture
def store(tmp_path):
    s = SQLiteStore(tmp_path / "netboot.sqlite3")
    yield s
    s.close()


def service_with(store, driver, **retry):
    clock = task.Clock()
    config = PowerConfig(retry=RetryPolicy(**retry), poll_interval=60)
    power = PowerService(
        store, clock, clock=lambda: 1000.0, config=config, drivers=lambda t: driver
    )
    return clock, power


def node(store, mac="52:54:00:00:00:01", address="10.0.0.5"):
    return create_node(
        store,
        macs=(mac,),
        now=1.0,
        actor="test",
        power_type="ipmi",
        power_parameters={"power_address": address, "power_pass": "x"},
    )


def test_a_failed_action_marks_the_node_and_records_why(store):
    n = node(store)
    driver = FakeDriver(
        name="ipmi",
        script=[PowerError("BMC 10.0.0.5 timed out"), PowerError("BMC 10.0.0.5 timed out")],
    )
    clock, power = service_with(store, driver, attempts=2, first_delay=3)
    actions = NodeActions(store, power.lookup)
    out = []
    actions.power_on(n.system_id, "operator").addBoth(out.append)
    assert out == []  # retrying after 3 s
    clock.advance(3)
    assert out and out[0].check(PowerActionFailed)
    assert store.node(n.system_id).power_state == "error"
    kinds = [(e.kind, e.message) for e in store.events(n.system_id) if e.kind.startswith("power")]
    assert kinds[0][0] == "power-retrying" and "retrying in 3 s" in kinds[0][1]
    assert kinds[1][0] == "power-failed" and "BMC 10.0.0.5 timed out" in kinds[1][1]


def test_actions_are_attributed_to_the_node_owning_the_bmc(store):
    a, b = node(store), node(store, "52:54:00:00:00:02", "10.0.0.6")
    driver = FakeDriver(name="ipmi", script=["hang", None])
    clock, power = service_with(store, driver)
    actions = NodeActions(store, power.lookup)
    actions.power_on(a.system_id, "op")
    actions.power_on(b.system_id, "op")
    assert len(driver.calls) == 2  # two BMCs: b does not wait for a's hung BMC
    assert power.queue.pending(a.system_id) == 1 and power.queue.pending(b.system_id) == 0
    assert store.node(b.system_id).power_state == "on"
    driver.hanging[0].errback(PowerError("BMC 10.0.0.5 refused the password", retryable=False))
    assert store.node(a.system_id).power_state == "error"
    assert store.node(b.system_id).power_state == "on"


def test_nodes_sharing_one_bmc_keep_their_own_events_and_errors(store):
    """Two nodes behind one BMC address (a chassis, one vbmc): the failing node's retry,
    failure and error state are its own, never the other node's, whichever of the two
    the BMC index lists last (regression: queue events were attributed through a
    BMC -> node index where the last node listed won)."""
    retry = PowerError("BMC timed out")
    refused = PowerError("BMC refused the password", retryable=False)
    for n, address in enumerate(("10.0.0.5", "10.0.0.7")):
        a = node(store, f"52:54:00:00:01:{n}0", address)
        b = node(store, f"52:54:00:00:01:{n}1", address)
        # First pair: a fails; second pair: b fails (the index names b both times).
        first, second = (a, b) if n == 0 else (b, a)
        driver = FakeDriver(name="ipmi", script=[retry, refused, None])
        clock, power = service_with(store, driver, attempts=3, first_delay=1)
        actions = NodeActions(store, power.lookup)
        out_first, out_second = [], []
        actions.power_on(first.system_id, "op").addBoth(out_first.append)
        actions.power_on(second.system_id, "op").addBoth(out_second.append)
        assert len(driver.calls) == 1  # one BMC: the second action waits for the first
        clock.advance(1)
        assert out_first and out_first[0].check(PowerActionFailed)
        assert out_second and out_second[0].system_id == second.system_id
        assert store.node(first.system_id).power_state == "error"
        assert store.node(second.system_id).power_state == "on"
        first_kinds = [e.kind for e in store.events(first.system_id)]
        second_kinds = [e.kind for e in store.events(second.system_id)]
        assert first_kinds.count("power-retrying") == 1 and "power-failed" in first_kinds
        assert "power-retrying" not in second_kinds and "power-failed" not in second_kinds
        assert second_kinds.count("power") == 1  # its own success, recorded once
    # A call not bound to a node, for a shared BMC, is pinned on no node at all.
    driver = FakeDriver(name="ipmi", script=[refused])
    _clock, power = service_with(store, driver)
    failed = []
    power.lookup("ipmi").off({"power_address": "10.0.0.5", "power_pass": "x"}).addErrback(
        failed.append
    )
    assert failed and failed[0].check(PowerError)
    for n in store.nodes():
        assert not any("power off" in e.message for e in store.events(n.system_id))


def test_polling_stores_state_changes_as_events_and_errors_once(store):
    n = node(store)
    err = PowerError("BMC 10.0.0.5 did not answer")
    driver = FakeDriver(
        name="ipmi", script=[PowerState.ON, PowerState.ON, err, err, PowerState.OFF]
    )
    clock, power = service_with(store, driver, attempts=1)
    power.startService()
    try:
        for _ in range(5):
            clock.advance(60)
    finally:
        power.stopService()
    assert store.node(n.system_id).power_state == "off"
    messages = [e.message for e in store.events(n.system_id) if e.kind == "power-state"]
    assert messages == [
        "power state unknown -> on",
        "power query failed: BMC 10.0.0.5 did not answer",
        "power state error -> off",
    ]


def test_the_power_table_is_part_of_the_appliance_config():
    from netboot.config import parse_config

    base = {"server_address": "10.66.0.1", "state_dir": "/tmp/s", "boot_dir": "/tmp/b"}
    assert parse_config(base).power == parse_power({})
    assert parse_config({**base, "power": {"poll_interval": 0}}).power.poll_interval == 0
    with pytest.raises(ConfigError) as info:
        parse_config({**base, "power": {"wol_port": 70000}})
    assert info.value.key == "power.wol_port"
