"""NodeActions: every status change is checked, atomic with its event, and drives power.

A real SQLite store (a temporary file) and a fake power driver at the driver interface.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from twisted.internet import defer, task

from netboot.nodes.actions import (
    IllegalTransition,
    InvalidAction,
    NodeActions,
    NodeNotFound,
    NoMatchingNode,
    PowerActionFailed,
    Timeouts,
)
from netboot.nodes.constraints import ConstraintError, Constraints, parse_constraints
from netboot.nodes.inventory import parse_enlist_body
from netboot.nodes.lifecycle import NodeStatus as S
from netboot.nodes.timeouts import TimeoutChecker
from netboot.power.base import PowerError, PowerParameterSpec, PowerState
from netboot.store.schema import MIGRATIONS
from netboot.store.sqlite import open_store


class FakeDriver:
    def __init__(self, name="fake", can_query=True) -> None:
        self.name = name
        self.parameters = (
            PowerParameterSpec("address"),
            PowerParameterSpec("password", required=False, secret=True),
        )
        self.can_query = can_query
        self.calls: list[tuple[str, dict]] = []
        self.fail: str | None = None
        self.state = PowerState.OFF

    def _do(self, action, params):
        self.calls.append((action, dict(params)))
        if self.fail:
            return defer.fail(PowerError(self.fail))
        return defer.succeed(None)

    def on(self, params):
        return self._do("on", params)

    def off(self, params):
        return self._do("off", params)

    def cycle(self, params):
        return self._do("cycle", params)

    def query(self, params):
        self.calls.append(("query", dict(params)))
        if self.fail:
            return defer.fail(PowerError(self.fail))
        return defer.succeed(self.state)


def enlist(store, mac="52:54:00:00:00:01", cpus=2, mem=1024, now=1.0):
    body = {
        "boot_mac": mac,
        "interfaces": [{"name": "eth0", "mac": mac}],
        "cpu": {"count": cpus, "model": "cpu"},
        "memory": {"total_mib": mem},
        "disks": [{"name": "vda", "size_bytes": 1 << 30}],
    }
    node, _ = store.enlist(parse_enlist_body(json.dumps(body).encode()), now, "test")
    return node


@pytest.fixture
def env(tmp_path: Path):
    store = open_store(tmp_path / "db.sqlite3")
    clock = task.Clock()
    clock.advance(1000)
    drivers = {"fake": FakeDriver(), "manual": FakeDriver("manual", can_query=False)}

    def lookup(power_type):
        return drivers[power_type]

    actions = NodeActions(store, lookup, clock.seconds, Timeouts(100, 200, 50))
    yield store, actions, drivers["fake"], clock
    store.close()


def fake_powered(store, actions, node):
    return actions.set_power(node.system_id, "admin", "fake", {"address": "10.0.0.5"})


def result(d: defer.Deferred):
    out = []
    d.addBoth(out.append)
    assert out, "deferred did not fire"
    return out[0]


def ready(store, actions, clock, **kw):
    node = enlist(store, **kw)
    fake_powered(store, actions, node)
    result(actions.commission(node.system_id, "admin"))
    return actions.commissioning_done(node.system_id, "node@x", True, "all scripts passed")


def test_commission_moves_to_commissioning_writes_event_and_powers_on(env):
    store, actions, driver, clock = env
    node = enlist(store)
    fake_powered(store, actions, node)
    done = result(actions.commission(node.system_id, "alice", "first look"))
    assert done.status is S.COMMISSIONING
    assert done.power_state == "on"
    assert done.status_deadline == clock.seconds() + 100
    assert driver.calls == [("on", {"address": "10.0.0.5"})]
    change = [e for e in store.events(node.system_id) if e.kind == "status"][-1]
    assert (change.actor, change.from_status, change.to_status, change.message, change.time) == (
        "alice",
        S.NEW,
        S.COMMISSIONING,
        "first look",
        clock.seconds(),
    )


def test_illegal_transition_names_current_state_and_changes_nothing(env):
    store, actions, driver, _ = env
    node = enlist(store)
    events_before = store.events(node.system_id)
    with pytest.raises(IllegalTransition, match="NEW to DEPLOYING") as err:
        actions.deploy(node.system_id, "alice")
    assert err.value.current is S.NEW
    assert store.node(node.system_id).status is S.NEW
    assert store.events(node.system_id) == events_before
    assert driver.calls == []


def test_unknown_node_raises_not_found(env):
    _, actions, _, _ = env
    with pytest.raises(NodeNotFound):
        actions.commission("nope00", "alice")


def test_power_failure_on_commission_fails_the_node_with_the_drivers_message(env):
    store, actions, driver, _ = env
    node = enlist(store)
    fake_powered(store, actions, node)
    driver.fail = "BMC 10.0.0.5 refused the password"
    failure = result(actions.commission(node.system_id, "alice"))
    assert failure.check(PowerActionFailed)
    after = store.node(node.system_id)
    assert after.status is S.FAILED_COMMISSIONING
    assert "refused the password" in after.status_message
    assert after.status_deadline is None
    assert store.events(node.system_id)[-1].to_status is S.FAILED_COMMISSIONING


def test_commissioning_done_ready_or_failed_with_log(env):
    store, actions, _, clock = env
    ok = ready(store, actions, clock)
    assert ok.status is S.READY and ok.status_deadline is None
    bad = enlist(store, mac="52:54:00:00:00:02")
    fake_powered(store, actions, bad)
    result(actions.commission(bad.system_id, "alice"))
    failed = actions.commissioning_done(bad.system_id, "node@y", False, "20-disks exited 1")
    assert failed.status is S.FAILED_COMMISSIONING
    assert failed.status_message == "20-disks exited 1"
    with pytest.raises(IllegalTransition):  # only a COMMISSIONING node completes
        actions.commissioning_done(ok.system_id, "node@x", True, "again")


def test_allocate_picks_the_smallest_match_and_sets_owner(env):
    store, actions, _, clock = env
    small = ready(store, actions, clock, mac="52:54:00:00:00:01", cpus=2, mem=1024)
    big = ready(store, actions, clock, mac="52:54:00:00:00:02", cpus=8, mem=8192)
    got = actions.allocate(Constraints(cpu_count=4), "alice", agent_name="model-1")
    assert got.system_id == big.system_id
    assert (got.status, got.owner, got.agent_name) == (S.ALLOCATED, "alice", "model-1")
    got = actions.allocate(Constraints(), "bob")
    assert got.system_id == small.system_id
    with pytest.raises(NoMatchingNode):
        actions.allocate(Constraints(), "carol")


def test_allocate_dry_run_changes_nothing(env):
    store, actions, _, clock = env
    node = ready(store, actions, clock)
    events = store.events(node.system_id)
    assert actions.allocate(Constraints(mem=512), "alice", dry_run=True).system_id == node.system_id
    assert store.node(node.system_id).status is S.READY
    assert store.events(node.system_id) == events
    with pytest.raises(NoMatchingNode):
        actions.allocate(Constraints(mem=10**6), "alice", dry_run=True)


def test_deploy_a_ready_node_allocates_first_then_deploys_and_powers_on(env):
    store, actions, driver, clock = env
    node = ready(store, actions, clock)
    driver.calls.clear()
    done = result(
        actions.deploy(node.system_id, "alice", distro_series="bookworm", user_data=b"#!/bin/sh")
    )
    assert (done.status, done.owner, done.distro_series) == (S.DEPLOYING, "alice", "bookworm")
    assert store.user_data(node.system_id) == b"#!/bin/sh"
    assert [c[0] for c in driver.calls] == ["on"]
    moves = [(e.from_status, e.to_status) for e in store.events(node.system_id) if e.to_status]
    assert moves[-2:] == [(S.READY, S.ALLOCATED), (S.ALLOCATED, S.DEPLOYING)]
    assert actions.deployment_done(node.system_id, "node@x", True, "installed").status is S.DEPLOYED


def test_release_powers_off_and_clears_ownership(env):
    store, actions, driver, clock = env
    node = ready(store, actions, clock)
    result(actions.deploy(node.system_id, "alice", user_data=b"x", agent_name="m"))
    actions.set_owner_data(node.system_id, "alice", {"juju-model": "m"})
    driver.calls.clear()
    done = result(actions.release(node.system_id, "alice", comment="bye"))
    assert done.status is S.READY
    assert (done.owner, done.agent_name, done.owner_data) == (None, "", {})
    assert store.user_data(node.system_id) is None
    assert driver.calls == [("off", {"address": "10.0.0.5"})]
    moves = [e.to_status for e in store.events(node.system_id) if e.to_status]
    assert moves[-2:] == [S.RELEASING, S.READY]


def test_release_of_allocated_node_is_immediate_and_power_failure_fails_releasing(env):
    store, actions, driver, clock = env
    a = ready(store, actions, clock, mac="52:54:00:00:00:01")
    actions.allocate(Constraints(system_id=a.system_id), "alice")
    driver.calls.clear()
    assert result(actions.release(a.system_id, "alice")).status is S.READY
    assert driver.calls == []
    result(actions.deploy(a.system_id, "alice"))
    driver.fail = "no route to BMC"
    failure = result(actions.release(a.system_id, "alice"))
    assert failure.check(PowerActionFailed)
    assert store.node(a.system_id).status is S.FAILED_RELEASING
    with pytest.raises(InvalidAction, match="erase_mode"):
        actions.release(a.system_id, "alice", erase=True, erase_mode="gently")


def test_set_owner_data_merges_and_empty_value_deletes(env):
    store, actions, _, clock = env
    node = ready(store, actions, clock)
    actions.set_owner_data(node.system_id, "alice", {"a": "1", "b": "2"})
    after = actions.set_owner_data(node.system_id, "alice", {"a": "", "c": "3"})
    assert after.owner_data == {"b": "2", "c": "3"}


def test_set_power_validates_type_and_parameters(env):
    store, actions, _, _ = env
    node = enlist(store)
    with pytest.raises(InvalidAction) as err:
        actions.set_power(node.system_id, "a", "nosuch", {})
    assert err.value.field == "power_type"
    with pytest.raises(InvalidAction) as err:
        actions.set_power(node.system_id, "a", "fake", {})
    assert err.value.field == "power_parameters_address"
    with pytest.raises(InvalidAction) as err:
        actions.set_power(node.system_id, "a", "fake", {"address": "x", "colour": "red"})
    assert err.value.field == "power_parameters_colour"
    assert store.node(node.system_id).power_type == "manual"


def test_power_query_stores_state_and_error(env):
    store, actions, driver, _ = env
    node = enlist(store)
    fake_powered(store, actions, node)
    driver.state = PowerState.ON
    assert result(actions.power_query(node.system_id, "a")) is PowerState.ON
    assert store.node(node.system_id).power_state == "on"
    driver.fail = "timeout"
    assert result(actions.power_query(node.system_id, "a")) is PowerState.ERROR
    assert store.node(node.system_id).power_state == "error"


def test_manual_power_reports_unknown_state(env):
    store, actions, _, _ = env
    node = enlist(store)
    done = result(actions.commission(node.system_id, "alice"))
    assert done.power_type == "manual" and done.power_state == "unknown"


def test_mark_broken_and_fixed(env):
    store, actions, _, clock = env
    node = ready(store, actions, clock)
    broken = actions.mark_broken(node.system_id, "alice", "fan noise")
    assert (broken.status, broken.status_message) == (S.BROKEN, "fan noise")
    assert actions.mark_fixed(node.system_id, "alice").status is S.READY
    with pytest.raises(IllegalTransition):
        actions.mark_fixed(node.system_id, "alice")


def test_timeout_checker_fails_a_silent_node_after_its_deadline(env):
    store, actions, _, clock = env
    node = enlist(store)
    fake_powered(store, actions, node)
    result(actions.commission(node.system_id, "alice"))
    checker = TimeoutChecker(actions, clock, interval=10)
    checker.startService()
    try:
        clock.advance(90)
        assert store.node(node.system_id).status is S.COMMISSIONING
        clock.advance(10)  # t = 100 s: the deadline
        after = store.node(node.system_id)
        assert after.status is S.FAILED_COMMISSIONING
        assert "no report from the node within 100 s of commissioning" in after.status_message
        last = store.events(node.system_id)[-1]
        assert (last.actor, last.from_status, last.to_status) == (
            "netboot",
            S.COMMISSIONING,
            S.FAILED_COMMISSIONING,
        )
        clock.advance(100)  # a failed node is not failed again
        assert len([e for e in store.events(node.system_id) if e.to_status]) == 2
    finally:
        checker.stopService()


def test_deploying_and_releasing_time_out_to_their_failed_states(env):
    store, actions, _, clock = env
    a = ready(store, actions, clock, mac="52:54:00:00:00:01")
    result(actions.deploy(a.system_id, "alice"))
    clock.advance(201)
    [failed] = actions.expire_overdue()
    assert failed.status is S.FAILED_DEPLOYMENT
    # RELEASING normally ends at once (power off); a stuck one times out too.
    store.transition(
        a.system_id,
        S.RELEASING,
        clock.seconds(),
        "t",
        "stuck",
        fields={"status_deadline": clock.seconds() + 50},
    )
    clock.advance(51)
    [failed] = actions.expire_overdue()
    assert failed.status is S.FAILED_RELEASING


def test_transition_hook_failure_rolls_back_status_and_event(env):
    store, actions, _, _ = env
    node = enlist(store)
    events = store.events(node.system_id)

    def boom(tx):
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        store.transition(node.system_id, S.COMMISSIONING, 5.0, "t", "x", before=boom)
    assert store.node(node.system_id).status is S.NEW
    assert store.events(node.system_id) == events


def test_parse_constraints_reads_maas_fields_and_names_bad_ones():
    c = parse_constraints(
        {"cpu_count": ["2"], "mem": ["1024.0"], "tags": ["a,b", "c"], "arch": ["amd64"]}
    )
    assert (c.cpu_count, c.mem, c.tags, c.arch) == (2.0, 1024.0, ("a", "b", "c"), ("amd64",))
    for form, field in [
        ({"cpu_count": ["two"]}, "cpu_count"),
        ({"mem": ["-1"]}, "mem"),
        ({"storage": ["root:8"]}, "storage"),
        ({"pool": ["gpu"]}, "pool"),
    ]:
        with pytest.raises(ConstraintError) as err:
            parse_constraints(form)
        assert err.value.field == field


def test_migration_2_upgrades_a_version_1_database(tmp_path: Path):
    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path)
    db.executescript(MIGRATIONS[0])
    db.execute(
        "INSERT INTO nodes (system_id, hostname, status, boot_mac, token, created, updated)"
        " VALUES ('abc123', 'old-node', 4, '52:54:00:00:00:09', 't', 1, 1)"
    )
    db.execute("PRAGMA user_version = 1")
    db.commit()
    db.close()
    store = open_store(path)
    try:
        node = store.node("abc123")
        assert (node.status, node.owner, node.zone, node.power_type, node.tags) == (
            S.READY,
            None,
            "default",
            "manual",
            (),
        )
        assert store.power_parameters("abc123") == {}
    finally:
        store.close()


def test_lifecycle_config_table_is_validated_and_names_the_key(tmp_path: Path):
    from netboot.config import ConfigError, parse_config

    base = {"server_address": "10.0.0.1", "state_dir": "s", "boot_dir": "b"}
    cfg = parse_config(
        {**base, "lifecycle": {"commissioning_timeout": 60, "commissioning_scripts": "scr"}},
        base_dir=tmp_path,
    )
    assert cfg.lifecycle.timeouts.commissioning == 60.0
    assert cfg.lifecycle.timeouts.deploying == Timeouts().deploying
    assert cfg.lifecycle.commissioning_scripts == tmp_path / "scr"
    for bad, key in [
        ({"commissioning_timeout": "soon"}, "lifecycle.commissioning_timeout"),
        ({"releasing_timeout": -1}, "lifecycle.releasing_timeout"),
        ({"colour": 1}, "lifecycle.colour"),
    ]:
        with pytest.raises(ConfigError) as err:
            parse_config({**base, "lifecycle": bad})
        assert err.value.key == key


def test_lease_ips_reads_held_unexpired_leases(env):
    store, *_ = env
    columns = {r[1] for r in store._db.execute("PRAGMA table_info(leases)")}
    now = 1000.0
    rows = [("52:54:00:00:00:01", "10.0.0.5", now + 60), ("52:54:00:00:00:02", "10.0.0.6", now - 1)]
    for mac, ip, expires in rows:
        values = {"mac": mac, "ip": ip, "expires": expires, "updated": now}
        if "state" in columns:
            values |= {"state": "active", "client_id": "01" + mac.replace(":", "")}
        store._db.execute(
            f"INSERT INTO leases ({', '.join(values)}) VALUES ({', '.join('?' * len(values))})",
            tuple(values.values()),
        )
    assert store.lease_ips(now) == {"52:54:00:00:00:01": "10.0.0.5"}
