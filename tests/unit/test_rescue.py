"""Rescue mode (MAAS's ENTERING_RESCUE_MODE 17 .. FAILED_EXITING_RESCUE_MODE 20, and
RESCUE_MODE 16): the lifecycle table, NodeActions' transitions, power and timeouts, the
way back to the state rescue started from, the boot config of every loader, the MAAS
operations and the UI buttons.

A real SQLite store (a temporary file) and the fake power driver of test_node_actions.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from twisted.internet import task

from netboot.bootconfig.scripts import ENVIRONMENTS, BootPurpose, NodeBoot, ScriptRenderer
from netboot.bootconfig.scripts import boot_purpose as purpose_of
from netboot.http.maas.handlers import HANDLERS
from netboot.http.ui.views import ACTION_NAMES, TONES, available_actions
from netboot.images.deploycfg import rescue_env
from netboot.images.installerboot import installer_boot
from netboot.images.nodeboot import NodeBootFacts, installer_purpose
from netboot.nodes.actions import IllegalTransition, NodeActions, PowerActionFailed, Timeouts
from netboot.nodes.lifecycle import RESCUE_ORIGINS, TRANSITIONS, check_transition
from netboot.nodes.lifecycle import NodeStatus as S
from netboot.nodes.settings import parse_lifecycle
from netboot.store.sqlite import open_store
from tests.unit.test_bootconfig import BASE, MAC, node
from tests.unit.test_installer_boot import installer_cache
from tests.unit.test_node_actions import FakeDriver, ready, result

RESCUE = (
    S.RESCUE_MODE,
    S.ENTERING_RESCUE_MODE,
    S.FAILED_ENTERING_RESCUE_MODE,
    S.EXITING_RESCUE_MODE,
    S.FAILED_EXITING_RESCUE_MODE,
)


@pytest.fixture
def env(tmp_path: Path):
    store = open_store(tmp_path / "db.sqlite3")
    clock = task.Clock()
    clock.advance(1000)
    driver = FakeDriver()
    timeouts = Timeouts(100, 200, 50, 300, entering_rescue_mode=400, exiting_rescue_mode=60)
    actions = NodeActions(store, lambda _t: driver, clock.seconds, timeouts)
    yield store, actions, driver, clock
    store.close()


def deployed(store, actions, clock):
    n = ready(store, actions, clock)
    result(actions.deploy(n.system_id, "alice", user_data=b"#cloud-config\n"))
    return actions.deployment_done(n.system_id, "node@x", True, "phoned home")


def status_changes(store, sid):
    return [(e.from_status, e.to_status) for e in store.events(sid) if e.kind == "status"]


# -- numbers, labels, table ---------------------------------------------------------------


def test_rescue_numbers_and_labels_follow_maas():
    assert [(s.value, s.label) for s in RESCUE] == [
        (16, "Rescue mode"),
        (17, "Entering rescue mode"),
        (18, "Failed to enter rescue mode"),
        (19, "Exiting rescue mode"),
        (20, "Failed to exit rescue mode"),
    ]


def test_transition_table_enters_rescue_from_maas_origins_only():
    for start in (S.NEW, S.READY, S.ALLOCATED, S.DEPLOYED, S.BROKEN, S.FAILED_DEPLOYMENT):
        check_transition(start, S.ENTERING_RESCUE_MODE)
    for start in (S.COMMISSIONING, S.DEPLOYING, S.RELEASING, S.DISK_ERASING, S.RESCUE_MODE):
        with pytest.raises(IllegalTransition):
            check_transition(start, S.ENTERING_RESCUE_MODE)
    # Only through entering: the shell's report is what makes RESCUE_MODE.
    for start in (S.READY, S.DEPLOYED):
        with pytest.raises(IllegalTransition):
            check_transition(start, S.RESCUE_MODE)
    assert TRANSITIONS[S.RESCUE_MODE] == {S.EXITING_RESCUE_MODE, S.BROKEN}
    assert TRANSITIONS[S.EXITING_RESCUE_MODE] == RESCUE_ORIGINS | {S.FAILED_EXITING_RESCUE_MODE}
    for failed in (S.FAILED_ENTERING_RESCUE_MODE, S.FAILED_EXITING_RESCUE_MODE):
        check_transition(failed, S.ENTERING_RESCUE_MODE)  # retry
        check_transition(failed, S.EXITING_RESCUE_MODE)


# -- actions ------------------------------------------------------------------------------


def test_rescue_of_a_deployed_node_cycles_it_reports_up_and_exits_back_to_deployed(env):
    store, actions, driver, clock = env
    n = deployed(store, actions, clock)
    driver.calls.clear()
    entering = result(actions.rescue_mode(n.system_id, "admin", "fsck the root"))
    assert entering.status is S.ENTERING_RESCUE_MODE
    assert entering.status_deadline == clock.seconds() + 400
    assert (entering.owner, entering.osystem) == ("alice", "debian")  # kept
    assert driver.calls == [("cycle", {"address": "10.0.0.5"})]
    up = actions.rescue_done(n.system_id, "node@x", True, "rescue environment up")
    assert (up.status, up.status_deadline, up.status_message) == (S.RESCUE_MODE, None, "")
    driver.calls.clear()
    back = result(actions.exit_rescue_mode(n.system_id, "admin"))
    assert back.status is S.DEPLOYED and back.owner == "alice"
    assert driver.calls == [("cycle", {"address": "10.0.0.5"})]  # back into its OS
    assert status_changes(store, n.system_id)[-4:] == [
        (S.DEPLOYED, S.ENTERING_RESCUE_MODE),
        (S.ENTERING_RESCUE_MODE, S.RESCUE_MODE),
        (S.RESCUE_MODE, S.EXITING_RESCUE_MODE),
        (S.EXITING_RESCUE_MODE, S.DEPLOYED),
    ]
    assert store.rescue_origin(n.system_id) is S.DEPLOYED


def test_rescue_of_a_ready_node_exits_with_a_power_off_back_to_ready(env):
    store, actions, driver, clock = env
    n = ready(store, actions, clock)
    result(actions.rescue_mode(n.system_id, "admin"))
    actions.rescue_done(n.system_id, "node@x", True, "up")
    driver.calls.clear()
    back = result(actions.exit_rescue_mode(n.system_id, "admin"))
    assert (back.status, back.power_state) == (S.READY, "off")
    assert driver.calls == [("off", {"address": "10.0.0.5"})]


def test_failed_entry_and_retry_keep_the_original_origin(env):
    store, actions, driver, clock = env
    n = deployed(store, actions, clock)
    driver.fail = "BMC unreachable"
    failure = result(actions.rescue_mode(n.system_id, "admin"))
    assert failure.check(PowerActionFailed)
    now = store.node(n.system_id)
    assert now.status is S.FAILED_ENTERING_RESCUE_MODE
    assert now.status_message == "power cycle failed: BMC unreachable"
    driver.fail = None
    result(actions.rescue_mode(n.system_id, "admin"))  # retry from the failed state
    failed = actions.rescue_done(n.system_id, "node@x", False, "no network")
    assert failed.status is S.FAILED_ENTERING_RESCUE_MODE
    assert store.rescue_origin(n.system_id) is S.DEPLOYED  # not the failed rescue state
    driver.fail = "BMC unreachable"
    failure = result(actions.exit_rescue_mode(n.system_id, "admin"))
    assert failure.check(PowerActionFailed)
    assert store.node(n.system_id).status is S.FAILED_EXITING_RESCUE_MODE
    driver.fail = None
    assert result(actions.exit_rescue_mode(n.system_id, "admin")).status is S.DEPLOYED


def test_silent_entering_node_times_out_into_failed_entering(env):
    store, actions, _, clock = env
    n = ready(store, actions, clock)
    result(actions.rescue_mode(n.system_id, "admin"))
    clock.advance(399)
    assert actions.expire_overdue() == []
    clock.advance(2)
    [failed] = actions.expire_overdue()
    assert failed.status is S.FAILED_ENTERING_RESCUE_MODE
    assert failed.status_message == (
        "timed out: no report from the node within 400 s of entering rescue mode"
    )
    # The shell's late report changes nothing now.
    with pytest.raises(IllegalTransition):
        actions.rescue_done(n.system_id, "node@x", True, "up")


def test_rescue_is_refused_while_deploying_and_exit_when_not_in_rescue(env):
    store, actions, _, clock = env
    n = ready(store, actions, clock)
    with pytest.raises(IllegalTransition):
        actions.exit_rescue_mode(n.system_id, "admin")
    result(actions.deploy(n.system_id, "alice"))
    with pytest.raises(IllegalTransition) as exc:
        actions.rescue_mode(n.system_id, "admin")
    assert exc.value.current is S.DEPLOYING
    assert store.node(n.system_id).status is S.DEPLOYING


def test_lifecycle_settings_take_the_rescue_timeouts(tmp_path: Path):
    cfg = parse_lifecycle(
        {"entering_rescue_mode_timeout": 120, "exiting_rescue_mode_timeout": 30}, tmp_path
    )
    assert (cfg.timeouts.entering_rescue_mode, cfg.timeouts.exiting_rescue_mode) == (120, 30)
    assert parse_lifecycle({}, tmp_path).timeouts.entering_rescue_mode == 1800


# -- boot: every loader boots the installer in rescue mode ---------------------------------


@pytest.mark.parametrize("status", [S.ENTERING_RESCUE_MODE, S.RESCUE_MODE])
def test_every_loader_boots_the_installer_with_purpose_rescue(tmp_path: Path, status):
    cache = installer_cache(tmp_path)
    n = node(status)
    assert purpose_of(n) is BootPurpose.RESCUE and installer_purpose(n) == "rescue"
    facts = NodeBoot(installer=installer_boot(n, cache, BASE, "rescue"))
    r = ScriptRenderer()
    grub = r.grub(n, MAC, BASE, facts)
    assert (
        "linux /images/boot/installer/i1/vmlinuz initrd=deploy.initrd console=tty0 "
        "console=ttyS0,115200n8 quiet loglevel=3 netboot.purpose=rescue "
        f"netboot.url={BASE} netboot.system_id=abc123 BOOTIF=01-52-54-00-12-34-56"
    ) in grub
    pxe = r.pxelinux(n, MAC, BASE, facts)
    assert f"KERNEL {BASE}/images/boot/installer/i1/vmlinuz" in pxe
    assert f"INITRD {BASE}/images/boot/installer/i1/deploy.initrd" in pxe
    assert "netboot.purpose=rescue" in pxe and "IPAPPEND 2" in pxe
    ipxe = r.ipxe(n, MAC, BASE, facts)
    assert f"chain --replace {BASE}/api/deploy/abc123/boot.ipxe" in ipxe
    for text in (grub, pxe, ipxe):
        assert "rescue.initrd" not in text and "netboot.token" not in text
    assert BootPurpose.RESCUE not in ENVIRONMENTS  # no separate rescue initrd


def test_rescue_without_an_installer_says_why_in_grub_and_pxelinux():
    n = node(S.RESCUE_MODE)
    facts = NodeBoot(error="no installer boot image")
    assert "cannot rescue brave-otter: no installer boot image" in ScriptRenderer().grub(
        n, MAC, BASE, facts
    )
    assert "SAY netboot: cannot rescue brave-otter" in ScriptRenderer().pxelinux(
        n, MAC, BASE, facts
    )


def test_exiting_boots_the_disk_and_failed_rescue_states_re_enlist():
    assert purpose_of(node(S.EXITING_RESCUE_MODE)) is BootPurpose.LOCAL
    assert "LOCALBOOT 0" in ScriptRenderer().pxelinux(node(S.EXITING_RESCUE_MODE), MAC, BASE)
    for status in (S.FAILED_ENTERING_RESCUE_MODE, S.FAILED_EXITING_RESCUE_MODE):
        assert purpose_of(node(status)) is BootPurpose.ENLIST
        assert installer_purpose(node(status)) is None


def test_node_boot_facts_choose_the_fast_installer_for_rescue_even_after_a_preseed_deploy(
    tmp_path: Path,
):
    cache = installer_cache(tmp_path)
    n = dataclasses.replace(node(S.RESCUE_MODE), osystem="debian-installer")
    got = NodeBootFacts(None, cache, BASE)(n)
    assert (got.installer.purpose, got.installer.method) == ("rescue", "image")


def test_rescue_env_gives_the_token_and_the_name(env):
    store, actions, _, clock = env
    n = ready(store, actions, clock)
    assert rescue_env(n) == (
        f"NB_TOKEN='{n.token}'\nNB_SYSTEM_ID='{n.system_id}'\nNB_HOSTNAME='{n.hostname}'\n"
    )


# -- MAAS operations and UI ---------------------------------------------------------------


def test_maas_machine_handler_offers_rescue_mode_and_exit_rescue_mode():
    [machine] = [h for h in HANDLERS if h.name == "MachineHandler"]
    ops = {(o.method, o.op) for o in machine.ops}
    assert {("POST", "rescue_mode"), ("POST", "exit_rescue_mode")} <= ops


def test_ui_offers_rescue_where_the_table_allows_it():
    assert {"rescue_mode", "exit_rescue_mode"} <= ACTION_NAMES
    names = lambda s: [a.name for a in available_actions(s)]  # noqa: E731
    assert "rescue_mode" in names(S.DEPLOYED) and "exit_rescue_mode" not in names(S.DEPLOYED)
    assert "exit_rescue_mode" in names(S.RESCUE_MODE) and "rescue_mode" not in names(S.RESCUE_MODE)
    assert "rescue_mode" not in names(S.DEPLOYING)
    assert all(s in TONES for s in RESCUE)


def test_a_rescued_node_keeps_its_deployed_image_pinned(env):
    store, actions, _, clock = env
    n = deployed(store, actions, clock)
    episode = store.deploy_episode(n.system_id)
    store.begin_deployment(n.system_id, episode, "image", "deploy/d/1", "boot/i/1", clock.seconds())
    result(actions.rescue_mode(n.system_id, "admin"))
    assert store.images_in_use() == {"deploy/d/1", "boot/i/1"}
    actions.rescue_done(n.system_id, "node@x", False, "no network")
    assert store.images_in_use() == {"deploy/d/1", "boot/i/1"}
