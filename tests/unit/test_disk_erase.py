"""Release with erase: DISK_ERASING in the lifecycle table, NodeActions' transitions,
events, power and timeouts, the [deploy] defaults, the MAAS release flags, and the
installer's erase config.

A real SQLite store (a temporary file) and the fake power driver of test_node_actions.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from twisted.internet import task

from netboot.http.maas.forms import BadForm, Form
from netboot.http.maas.machines import _erase_options
from netboot.images.deploycfg import erase_env
from netboot.nodes.actions import (
    IllegalTransition,
    InvalidAction,
    NodeActions,
    PowerActionFailed,
    Timeouts,
)
from netboot.nodes.constraints import Constraints
from netboot.nodes.lifecycle import TRANSITIONS, check_transition
from netboot.nodes.lifecycle import NodeStatus as S
from netboot.store.sqlite import open_store
from tests.unit.test_node_actions import FakeDriver, ready, result


def make_env(tmp_path: Path, **kw):
    store = open_store(tmp_path / "db.sqlite3")
    clock = task.Clock()
    clock.advance(1000)
    driver = FakeDriver()
    actions = NodeActions(
        store, lambda _t: driver, clock.seconds, Timeouts(100, 200, 50, 300), **kw
    )
    return store, actions, driver, clock


@pytest.fixture
def env(tmp_path: Path):
    store, actions, driver, clock = make_env(tmp_path)
    yield store, actions, driver, clock
    store.close()


def deployed(store, actions, clock, mac="52:54:00:00:00:01"):
    node = ready(store, actions, clock, mac=mac)
    result(actions.deploy(node.system_id, "alice", user_data=b"#cloud-config\n"))
    return actions.deployment_done(node.system_id, "node@x", True, "phoned home")


def test_disk_erasing_numbers_and_labels_follow_maas():
    assert (S.DISK_ERASING.value, S.DISK_ERASING.label) == (14, "Disk erasing")
    assert (S.FAILED_DISK_ERASING.value, S.FAILED_DISK_ERASING.label) == (
        15,
        "Failed disk erasing",
    )


def test_transition_table_lets_owned_nodes_erase_and_erasing_end_ready_or_failed():
    for start in (S.ALLOCATED, S.DEPLOYING, S.DEPLOYED, S.FAILED_DEPLOYMENT, S.FAILED_RELEASING):
        check_transition(start, S.DISK_ERASING)
    assert TRANSITIONS[S.DISK_ERASING] == {S.READY, S.FAILED_DISK_ERASING, S.BROKEN}
    check_transition(S.FAILED_DISK_ERASING, S.DISK_ERASING)  # retry
    for start in (S.NEW, S.READY, S.COMMISSIONING, S.BROKEN):
        with pytest.raises(IllegalTransition):
            check_transition(start, S.DISK_ERASING)
    with pytest.raises(IllegalTransition):
        check_transition(S.FAILED_DISK_ERASING, S.READY)  # only by erasing (or releasing)


def test_release_with_erase_goes_to_disk_erasing_power_cycles_and_keeps_owner(env):
    store, actions, driver, clock = env
    node = deployed(store, actions, clock)
    driver.calls.clear()
    erasing = result(actions.release(node.system_id, "alice", erase=True))
    assert erasing.status is S.DISK_ERASING
    assert erasing.status_message == "Erasing disks (quick)"
    assert erasing.status_deadline == clock.seconds() + 300
    assert erasing.owner == "alice"  # cleared when the erase reports done
    assert erasing.power_state == "on"
    assert driver.calls == [("cycle", {"address": "10.0.0.5"})]
    gone = store.erasure(node.system_id)
    assert (gone.mode, gone.started, gone.finished, gone.ok) == (
        "quick",
        clock.seconds(),
        None,
        None,
    )
    change = [e for e in store.events(node.system_id) if e.kind == "status"][-1]
    assert (change.from_status, change.to_status, change.message) == (
        S.DEPLOYED,
        S.DISK_ERASING,
        "released with quick disk erase",
    )


def test_erasing_done_ok_makes_the_node_ready_and_clears_what_it_owned(env):
    store, actions, _, clock = env
    node = deployed(store, actions, clock)
    result(actions.release(node.system_id, "alice", erase=True, erase_mode="secure"))
    clock.advance(42)
    done = actions.erasing_done(node.system_id, "node@x", True, "disks erased", b"log text")
    assert done.status is S.READY
    assert (done.owner, done.osystem, done.status_message, done.status_deadline) == (
        None,
        "",
        "",
        None,
    )
    assert store.user_data(node.system_id) is None
    gone = store.erasure(node.system_id)
    assert (gone.mode, gone.ok, gone.finished, gone.log) == (
        "secure",
        True,
        clock.seconds(),
        b"log text",
    )
    moves = [e.to_status for e in store.events(node.system_id) if e.to_status]
    assert moves[-2:] == [S.DISK_ERASING, S.READY]


def test_erasing_failure_keeps_the_log_and_a_new_release_with_erase_retries(env):
    store, actions, driver, clock = env
    node = deployed(store, actions, clock)
    result(actions.release(node.system_id, "alice", erase=True))
    failed = actions.erasing_done(
        node.system_id, "node@x", False, "disk erasing failed: cannot erase /dev/vda", b"L"
    )
    assert failed.status is S.FAILED_DISK_ERASING
    assert failed.status_message == "disk erasing failed: cannot erase /dev/vda"
    assert failed.status_deadline is None
    assert store.erasure(node.system_id).ok is False
    assert store.erasure(node.system_id).log == b"L"
    # A second report is refused: only an erasing node completes.
    with pytest.raises(IllegalTransition):
        actions.erasing_done(node.system_id, "node@x", True, "late", b"")
    again = result(actions.release(node.system_id, "alice", erase=True))
    assert again.status is S.DISK_ERASING
    assert store.erasure(node.system_id).ok is None  # a fresh row for the new attempt


def test_release_with_erase_of_an_allocated_node_erases_too(env):
    store, actions, driver, clock = env
    node = ready(store, actions, clock)
    actions.allocate(Constraints(system_id=node.system_id), "alice")
    driver.calls.clear()
    assert result(actions.release(node.system_id, "alice", erase=True)).status is S.DISK_ERASING
    assert driver.calls == [("cycle", {"address": "10.0.0.5"})]


def test_release_with_erase_of_a_ready_node_is_a_no_op(env):
    store, actions, driver, clock = env
    node = ready(store, actions, clock)
    driver.calls.clear()
    assert result(actions.release(node.system_id, "alice", erase=True)).status is S.READY
    assert driver.calls == []
    assert store.erasure(node.system_id) is None


def test_power_cycle_failure_fails_disk_erasing_with_the_drivers_message(env):
    store, actions, driver, clock = env
    node = deployed(store, actions, clock)
    driver.fail = "no route to BMC"
    failure = result(actions.release(node.system_id, "alice", erase=True))
    assert failure.check(PowerActionFailed)
    now = store.node(node.system_id)
    assert now.status is S.FAILED_DISK_ERASING
    assert now.status_message == "power cycle failed: no route to BMC"


def test_silent_erasing_node_times_out_into_failed_disk_erasing(env):
    store, actions, _, clock = env
    node = deployed(store, actions, clock)
    result(actions.release(node.system_id, "alice", erase=True))
    clock.advance(299)
    assert actions.expire_overdue() == []
    clock.advance(2)
    [failed] = actions.expire_overdue()
    assert failed.status is S.FAILED_DISK_ERASING
    assert failed.status_message == (
        "timed out: no report from the node within 300 s of disk erasing"
    )


def test_erase_on_release_default_applies_unless_the_caller_says(tmp_path: Path):
    store, actions, driver, clock = make_env(tmp_path, erase_on_release=True, erase_mode="secure")
    try:
        a = deployed(store, actions, clock)
        assert result(actions.release(a.system_id, "alice")).status is S.DISK_ERASING
        assert store.erasure(a.system_id).mode == "secure"
        b = deployed(store, actions, clock, mac="52:54:00:00:00:02")
        assert result(actions.release(b.system_id, "alice", erase=False)).status is S.READY
    finally:
        store.close()


def test_unknown_erase_mode_is_refused_before_anything_changes(env):
    store, actions, _, clock = env
    node = deployed(store, actions, clock)
    with pytest.raises(InvalidAction, match="erase_mode"):
        actions.release(node.system_id, "alice", erase=True, erase_mode="dban")
    assert store.node(node.system_id).status is S.DEPLOYED


def test_deploy_config_table_is_validated_and_names_the_key(tmp_path: Path):
    from netboot.config import ConfigError, parse_config

    base = {"server_address": "10.0.0.1", "state_dir": "s", "boot_dir": "b"}
    cfg = parse_config(base, base_dir=tmp_path)
    assert (cfg.deploy.erase_on_release, cfg.deploy.erase_mode) == (False, "quick")
    cfg = parse_config(
        {
            **base,
            "deploy": {"erase_on_release": True, "erase_mode": "secure"},
            "lifecycle": {"disk_erasing_timeout": 600},
        },
        base_dir=tmp_path,
    )
    assert (cfg.deploy.erase_on_release, cfg.deploy.erase_mode) == (True, "secure")
    assert cfg.lifecycle.timeouts.disk_erasing == 600.0
    for bad, key in [
        ({"erase_on_release": "yes"}, "deploy.erase_on_release"),
        ({"erase_mode": "full"}, "deploy.erase_mode"),
        ({"wipe": True}, "deploy.wipe"),
    ]:
        with pytest.raises(ConfigError) as err:
            parse_config({**base, "deploy": bad})
        assert err.value.key == key


def _form(**values: str) -> SimpleNamespace:
    return SimpleNamespace(form=Form({k: [v.encode()] for k, v in values.items()}))


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({}, (None, None)),  # the [deploy] erase_on_release default decides
        ({"erase": "true"}, (True, None)),  # erase in the configured mode
        ({"erase": "false"}, (False, None)),
        ({"erase": "1", "quick_erase": "1"}, (True, "quick")),
        ({"erase": "true", "secure_erase": "true"}, (True, "secure")),
        ({"quick_erase": "true"}, (True, "quick")),
        ({"secure_erase": "1", "quick_erase": "1"}, (True, "secure")),
    ],
)
def test_maas_release_flags_map_to_erase_and_mode(values, expected):
    assert _erase_options(_form(**values)) == expected


def test_maas_release_flag_that_is_not_a_boolean_is_a_bad_form():
    with pytest.raises(BadForm):
        _erase_options(_form(erase="maybe"))


def test_erase_env_gives_the_token_and_the_mode(env):
    store, actions, _, clock = env
    node = deployed(store, actions, clock)
    text = erase_env(node, "secure")
    assert f"NB_TOKEN='{node.token}'" in text.splitlines()
    assert "NB_ERASE_MODE='secure'" in text.splitlines()
    assert all(line.startswith("NB_") for line in text.splitlines())
