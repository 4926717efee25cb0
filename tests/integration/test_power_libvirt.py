"""Power drivers against real endpoints in front of real libvirt domains, all on loopback:
the virsh driver straight to a private libvirtd, the ipmi driver through virtualbmc,
the redfish driver through sushy-tools' emulator. Plus the failures an operator meets:
wrong password, unreachable BMC, a BMC that never answers -- each a bounded, clear
PowerError that holds up nothing else, and that marks the node in the store.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyroute2 import IPRoute
from twisted.internet import defer

from netboot.nodes.actions import NodeActions, PowerActionFailed
from netboot.power.base import PowerError, PowerState
from netboot.power.ipmi import IPMIDriver
from netboot.power.queue import PowerQueue, RetryPolicy
from netboot.power.redfish import RedfishDriver
from netboot.power.registry import PowerSettings, check
from netboot.power.service import PowerService
from netboot.power.settings import PowerConfig
from netboot.power.virsh import VirshDriver
from netboot.store.nodes_ext import create_node
from netboot.store.sqlite import SQLiteStore
from tests.conftest import require_root
from tests.integration.power_lab import (
    LibvirtDaemon,
    SilentServer,
    SshServer,
    SushyEmulator,
    ThreadedReactor,
    VirtualBMC,
    free_port,
    wait_until,
)

USER, PASSWORD = "admin", "p4ssw0rd"
TIMEOUT = 8.0  # per driver call; generous for a loaded 2-core CI box
SILENT = 5.0  # per call where the test waits out a BMC that never answers


@pytest.fixture(scope="module")
def rx() -> Iterator[ThreadedReactor]:
    r = ThreadedReactor()
    yield r
    r.close()


@pytest.fixture(scope="module")
def libvirtd() -> Iterator[LibvirtDaemon]:
    require_root()
    daemon = LibvirtDaemon()
    try:
        for name in ("nb-virsh", "nb-ipmi", "nb-redfish"):
            daemon.define(name)
        yield daemon
    finally:
        daemon.close()


@pytest.fixture(scope="module")
def vbmc(libvirtd: LibvirtDaemon) -> Iterator[VirtualBMC]:
    bmc = VirtualBMC(libvirtd.uri, "nb-ipmi", USER, PASSWORD)
    yield bmc
    bmc.close()


@pytest.fixture(scope="module")
def redfish_bmc(libvirtd: LibvirtDaemon, tmp_path_factory) -> Iterator[SushyEmulator]:
    emulator = SushyEmulator(libvirtd.uri, USER, PASSWORD, tmp_path_factory.mktemp("sushy"))
    yield emulator
    emulator.close()


def timed(rx: ThreadedReactor, fn, *args, timeout: float = 60.0):
    """(outcome or exception, seconds)."""
    start = time.monotonic()
    try:
        outcome = rx.call(fn, *args, timeout=timeout)
    except PowerError as exc:
        outcome = exc
    return outcome, time.monotonic() - start


def drive_cycle(rx, driver, params, libvirtd: LibvirtDaemon, domain: str) -> None:
    """off -> query off -> on -> query on (libvirt agrees) -> cycle -> on -> off."""
    rx.call(driver.off, params)
    assert rx.call(driver.query, params) is PowerState.OFF
    assert not libvirtd.is_active(domain)
    rx.call(driver.on, params)
    wait_until(lambda: libvirtd.is_active(domain), 30, f"{domain} to run")
    wait_until(lambda: rx.call(driver.query, params) is PowerState.ON, 30, "query to say on")
    rx.call(driver.cycle, params)
    wait_until(lambda: libvirtd.is_active(domain), 30, f"{domain} to run after cycle")
    rx.call(driver.off, params)
    wait_until(lambda: not libvirtd.is_active(domain), 30, f"{domain} to stop")
    assert rx.call(driver.query, params) is PowerState.OFF


# -- virsh --------------------------------------------------------------------------------


def test_virsh_driver_powers_a_libvirt_domain(rx, libvirtd):
    driver = VirshDriver(rx.reactor, timeout=30)
    params = {"power_address": libvirtd.uri, "power_id": "nb-virsh"}
    drive_cycle(rx, driver, params, libvirtd, "nb-virsh")
    result = rx.call(check, driver, params)
    assert result.ok and result.state is PowerState.OFF
    # The private daemon has no networks, so nothing bridged or dnsmasq'd on the host.
    conn = libvirtd.connect()
    try:
        assert conn.listAllNetworks() == []
    finally:
        conn.close()
    with IPRoute() as ip:
        assert not [
            link for link in ip.get_links() if link.get("IFLA_IFNAME", "").startswith("virbr")
        ]


def test_virsh_by_uuid_and_unknown_domain(rx, libvirtd):
    driver = VirshDriver(rx.reactor, timeout=30)
    conn = libvirtd.connect()
    try:
        domain_uuid = conn.lookupByName("nb-virsh").UUIDString()
    finally:
        conn.close()
    assert rx.call(driver.query, {"power_address": libvirtd.uri, "power_id": domain_uuid}) in (
        PowerState.OFF,
        PowerState.ON,
    )
    error, _ = timed(rx, driver.on, {"power_address": libvirtd.uri, "power_id": "no-such-vm"})
    assert isinstance(error, PowerError) and not error.retryable
    assert "no domain 'no-such-vm'" in str(error)


def test_virsh_unreachable_libvirt_is_a_prompt_clear_error(rx, tmp_path):
    driver = VirshDriver(rx.reactor, timeout=TIMEOUT)
    uri = f"qemu+unix:///session?socket={tmp_path}/nothing-here.sock"
    error, seconds = timed(rx, driver.query, {"power_address": uri, "power_id": "nb-virsh"})
    assert isinstance(error, PowerError) and "cannot connect to libvirt" in str(error)
    assert seconds < TIMEOUT + 5


def test_virsh_a_libvirt_that_never_answers_is_cut_off_at_the_deadline(rx, tmp_path):
    silent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    silent.bind(str(tmp_path / "silent.sock"))
    silent.listen(4)  # connections are accepted by the kernel; nobody ever answers
    try:
        driver = VirshDriver(rx.reactor, timeout=3)
        uri = f"qemu+unix:///session?socket={tmp_path}/silent.sock"
        error, seconds = timed(rx, driver.on, {"power_address": uri, "power_id": "nb-virsh"})
    finally:
        silent.close()
    assert isinstance(error, PowerError) and error.retryable
    assert "no answer within 3 s" in str(error)
    assert seconds < 3 + 5


# -- ipmi through virtualbmc --------------------------------------------------------------


def ipmi_params(address: str, password: str = PASSWORD) -> dict[str, str]:
    return {"power_address": address, "power_user": USER, "power_pass": password}


def test_ipmi_driver_through_virtualbmc_powers_the_domain(rx, libvirtd, vbmc):
    driver = IPMIDriver(rx.reactor, timeout=30)
    drive_cycle(rx, driver, ipmi_params(vbmc.address), libvirtd, "nb-ipmi")


def test_ipmi_wrong_password_is_refused_clearly_and_not_retried(rx, vbmc):
    driver = IPMIDriver(rx.reactor, timeout=TIMEOUT)
    error, seconds = timed(rx, driver.query, ipmi_params(vbmc.address, "wrong-password"))
    assert isinstance(error, PowerError) and not error.retryable
    assert f"BMC {vbmc.address} refused the credentials for user 'admin'" in str(error)
    result = rx.call(check, driver, ipmi_params(vbmc.address, "wrong-password"))
    assert not result.ok and "refused the credentials" in result.message


def test_ipmi_unreachable_and_silent_bmcs_fail_within_the_deadline(rx):
    driver = IPMIDriver(rx.reactor, timeout=SILENT)
    closed = f"127.0.0.1:{free_port(socket.SOCK_DGRAM)}"  # nobody listens there
    error, seconds = timed(rx, driver.on, ipmi_params(closed))
    assert isinstance(error, PowerError) and error.retryable
    assert closed in str(error)
    assert seconds < SILENT + 5
    silent = SilentServer(socket.SOCK_DGRAM)  # takes the packets, never answers
    try:
        error, seconds = timed(rx, driver.query, ipmi_params(silent.address))
    finally:
        silent.close()
    assert isinstance(error, PowerError) and error.retryable
    assert silent.address in str(error)
    assert "did not answer" in str(error) or f"no answer within {SILENT:g} s" in str(error)
    assert seconds < SILENT + 5


def test_redfish_driver_through_sushy_tools_powers_the_domain(rx, libvirtd, redfish_bmc):
    driver = RedfishDriver(rx.reactor, timeout=30)
    conn = libvirtd.connect()
    try:
        node_id = conn.lookupByName("nb-redfish").UUIDString()
    finally:
        conn.close()
    params = {
        "power_address": redfish_bmc.url,
        "power_user": USER,
        "power_pass": PASSWORD,
        "node_id": node_id,
    }
    drive_cycle(rx, driver, params, libvirtd, "nb-redfish")
    # Three domains behind one emulator: without node_id the driver says which exist.
    error, _ = timed(rx, driver.query, {k: v for k, v in params.items() if k != "node_id"})
    assert isinstance(error, PowerError) and "set node_id" in str(error) and node_id in str(error)


def test_redfish_wrong_password_unreachable_and_silent_bmcs(rx, redfish_bmc):
    driver = RedfishDriver(rx.reactor, timeout=TIMEOUT)
    base = {"power_user": USER, "power_pass": PASSWORD}
    error, _ = timed(
        rx, driver.query, {**base, "power_address": redfish_bmc.url, "power_pass": "nope"}
    )
    assert isinstance(error, PowerError) and not error.retryable
    assert "refused the credentials for user 'admin' (HTTP 401)" in str(error)

    closed = f"http://127.0.0.1:{free_port()}"
    error, seconds = timed(rx, driver.query, {**base, "power_address": closed})
    assert isinstance(error, PowerError) and error.retryable and "cannot reach" in str(error)
    assert seconds < TIMEOUT + 5

    silent = SilentServer(socket.SOCK_STREAM)
    try:
        quick = RedfishDriver(rx.reactor, timeout=3)
        error, seconds = timed(
            rx, quick.query, {**base, "power_address": f"http://{silent.address}"}
        )
    finally:
        silent.close()
    assert isinstance(error, PowerError) and error.retryable
    assert "no answer within 3 s" in str(error) or "cannot reach" in str(error)
    assert seconds < 3 + 5


# -- a hung BMC holds up nothing else; the node shows the error ---------------------------


def test_a_silent_bmc_holds_up_no_other_node(rx, libvirtd, vbmc):
    """A node whose BMC never answers keeps retrying (each attempt bounded by SILENT s)
    while a libvirt node and another IPMI node are powered on; the operator can then
    cancel it, which frees its queue at once. (Single-attempt bounds for silent and
    closed BMCs: test_ipmi_unreachable_and_silent_bmcs_fail_within_the_deadline.)"""
    policy = RetryPolicy(attempts=20, first_delay=1.0, factor=1.0, attempt_timeout=SILENT + 2)
    queue = PowerQueue(rx.reactor, policy)
    ipmi = IPMIDriver(rx.reactor, timeout=SILENT)
    virsh = VirshDriver(rx.reactor, timeout=30)
    silent = SilentServer(socket.SOCK_DGRAM)
    hung_d: list = []
    try:
        libvirtd.set_active("nb-virsh", False)
        libvirtd.set_active("nb-ipmi", False)
        start = time.monotonic()

        def submit_hung():
            d = queue.submit("hung-node", ipmi, "on", ipmi_params(silent.address))
            hung_d.append(d)
            return d

        hung = rx.start(submit_hung)
        rx.call(
            queue.submit,
            "vm-node",
            virsh,
            "on",
            {"power_address": libvirtd.uri, "power_id": "nb-virsh"},
        )
        virsh_done = time.monotonic() - start
        rx.call(queue.submit, "bmc-node", ipmi, "on", ipmi_params(vbmc.address))
        ipmi_done = time.monotonic() - start
        assert hung.empty(), f"the silent BMC's action ended early: {hung.get_nowait()!r}"
        assert libvirtd.is_active("nb-virsh")
        wait_until(lambda: libvirtd.is_active("nb-ipmi"), 30, "nb-ipmi to run")
        rx.call(lambda: hung_d[0].cancel())
        outcome = hung.get(timeout=SILENT + 10)
        assert rx.call(lambda: queue.pending("hung-node")) == 0
    finally:
        silent.close()
        libvirtd.set_active("nb-virsh", False)
        libvirtd.set_active("nb-ipmi", False)
    assert outcome.check(defer.CancelledError)
    print(
        f"\nwhile a silent BMC was retried: virsh node on after {virsh_done:.2f} s, "
        f"ipmi node on after {ipmi_done:.2f} s"
    )


def appliance_power(rx: ThreadedReactor, store: SQLiteStore) -> tuple[PowerService, NodeActions]:
    """The appliance's power service (queue, retries, poller) and NodeActions over it."""
    power = PowerService(
        store,
        rx.reactor,
        config=PowerConfig(
            drivers=PowerSettings(timeout=TIMEOUT),
            retry=RetryPolicy(attempts=2, first_delay=0.5, attempt_timeout=TIMEOUT + 2),
        ),
    )
    return power, NodeActions(store, power.lookup)


def test_failures_mark_the_node_with_a_clear_power_error(rx, vbmc, tmp_path: Path):
    store = SQLiteStore(tmp_path / "netboot.sqlite3")
    try:
        node = create_node(
            store,
            macs=("52:54:00:00:08:01",),
            now=time.time(),
            actor="test",
            power_type="ipmi",
            power_parameters=ipmi_params(vbmc.address, "wrong-password"),
        )
        power, actions = appliance_power(rx, store)
        with pytest.raises(PowerActionFailed) as info:
            rx.call(actions.power_on, node.system_id, "operator")
        assert "refused the credentials" in info.value.message
        stored = store.node(node.system_id)
        assert stored.power_state == "error"
        events = [e for e in store.events(node.system_id) if e.kind == "power-failed"]
        assert len(events) == 1 and "refused the credentials for user 'admin'" in events[0].message

        # Fix the password: the periodic query brings the state back from error.
        store.update_node(
            node.system_id,
            {"power_parameters": ipmi_params(vbmc.address)},
            time.time(),
            "test",
            "power-config",
            "fixed",
        )
        rx.call(power.poller.poll_once)
        assert store.node(node.system_id).power_state in ("on", "off")
        assert any(
            e.kind == "power-state" and e.message.startswith("power state error ->")
            for e in store.events(node.system_id)
        )
    finally:
        store.close()


# -- the operator's command line ------------------------------------------------------


def netboot_cli(config: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "netboot.cli", "--config", str(config), "power", *args],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def test_netboot_power_cli_checks_sets_and_drives_a_node(libvirtd, vbmc, tmp_path: Path):
    config = tmp_path / "netboot.toml"
    config.write_text(
        f'server_address = "127.0.0.1"\nstate_dir = "{tmp_path}/state"\n'
        f'boot_dir = "{tmp_path}/boot"\n[power]\ntimeout = {TIMEOUT:g}\nattempts = 1\n'
    )
    virsh = [f"power_address={libvirtd.uri}", "power_id=nb-virsh"]
    libvirtd.set_active("nb-virsh", False)

    refused = netboot_cli(
        config, "check", "ipmi", f"power_address={vbmc.address}", "power_user=admin", "power_pass=x"
    )
    assert refused.returncode == 1
    assert f"failed: BMC {vbmc.address} refused the credentials" in refused.stdout
    malformed = netboot_cli(
        config, "check", "ipmi", "power_address=10.0.0.300", "power_user=a", "power_pass=b"
    )
    assert malformed.returncode == 2 and "invalid power parameter power_address" in malformed.stderr

    store = SQLiteStore(tmp_path / "state" / "netboot.sqlite3")
    try:
        node = create_node(store, macs=("52:54:00:00:08:09",), now=time.time(), actor="test")
    finally:
        store.close()
    stored = netboot_cli(config, "set", node.hostname, "virsh", *virsh, "power_pass=libvirt-pw")
    assert stored.returncode == 0, stored.stderr
    assert "ok: virsh: the BMC answered, power is off" in stored.stdout  # checked first
    assert "libvirt-pw" not in stored.stdout and "********" in stored.stdout
    assert netboot_cli(config, "on", node.hostname).returncode == 0
    assert libvirtd.is_active("nb-virsh")
    query = netboot_cli(config, "query", node.system_id)
    assert query.returncode == 0 and query.stdout.strip().endswith(": on")
    assert netboot_cli(config, "off", node.hostname).returncode == 0
    assert not libvirtd.is_active("nb-virsh")


def test_nodes_sharing_one_bmc_keep_their_own_events_and_errors(rx, libvirtd, vbmc, tmp_path):
    """Two nodes configured with one IPMI address (one vbmc): one with a wrong password,
    one right. Each node's events, power_state and power error stay on that node, for
    actions (submitted together, so they queue on the shared BMC) and for the poller."""
    store = SQLiteStore(tmp_path / "netboot.sqlite3")
    try:
        libvirtd.set_active("nb-ipmi", False)
        nodes = {}
        for role, mac, password in (
            ("wrong", "52:54:00:00:08:21", "wrong-password"),
            ("right", "52:54:00:00:08:22", PASSWORD),
        ):
            nodes[role] = create_node(
                store,
                macs=(mac,),
                now=time.time(),
                actor="test",
                power_type="ipmi",
                power_parameters=ipmi_params(vbmc.address, password),
            ).system_id
        power, actions = appliance_power(rx, store)

        def both_on():
            return defer.DeferredList(
                [actions.power_on(nodes[r], "operator") for r in ("wrong", "right")],
                consumeErrors=True,
            )

        (ok_wrong, wrong), (ok_right, right) = rx.call(both_on)
        assert not ok_wrong and wrong.check(PowerActionFailed)
        assert "refused the credentials" in wrong.value.message
        assert ok_right and right.system_id == nodes["right"]
        wait_until(lambda: libvirtd.is_active("nb-ipmi"), 30, "nb-ipmi to run")

        def power_events(role: str) -> list[str]:
            return [e.kind for e in store.events(nodes[role]) if e.kind.startswith("power")]

        def right_is_clean() -> None:
            # The right node may see its own retry on a loaded box (a slow vbmc), but
            # never a failure, and never the wrong node's refusal.
            events = [e for e in store.events(nodes["right"]) if e.kind.startswith("power")]
            assert "power-failed" not in [e.kind for e in events], events
            assert not any("refused the credentials" in e.message for e in events), events
            assert store.node(nodes["right"]).power_state == "on"

        assert store.node(nodes["wrong"]).power_state == "error"
        assert "power-failed" in power_events("wrong") and "power" not in power_events("wrong")
        assert power_events("right")[-1] == "power"
        right_is_clean()

        rx.call(power.poller.poll_once)  # both nodes queried through the one BMC
        assert store.node(nodes["wrong"]).power_state == "error"
        queried = [e.message for e in store.events(nodes["wrong"]) if e.kind == "power-state"]
        assert queried == []  # error -> error is no new event; the failure event stays
        right_is_clean()
    finally:
        libvirtd.set_active("nb-ipmi", False)
        store.close()


# -- virsh over qemu+ssh --------------------------------------------------------------------


@pytest.fixture(scope="module")
def sshd() -> Iterator[SshServer]:
    server = SshServer()
    yield server
    server.close()


def test_virsh_over_qemu_ssh_through_a_real_ssh_server(libvirtd, sshd, tmp_path: Path):
    """The operator's path to a remote KVM host: `netboot power set/on/query/off` with a
    qemu+ssh URI. ssh (OpenSSH's client, as libvirt runs it) logs in to dropbear on
    127.0.0.1 with a key made for this test; libvirt runs nc there to reach the private
    libvirtd's socket. A key the server does not accept is a prompt, clear error."""
    known_hosts_before = Path("/root/.ssh/known_hosts").exists()
    libvirtd.define("nb-ssh")
    config = tmp_path / "netboot.toml"
    config.write_text(
        f'server_address = "127.0.0.1"\nstate_dir = "{tmp_path}/state"\n'
        f'boot_dir = "{tmp_path}/boot"\n[power]\ntimeout = {TIMEOUT:g}\nattempts = 1\n'
    )

    def power(*args: str) -> subprocess.CompletedProcess:
        argv = [sys.executable, "-m", "netboot.cli", "--config", str(config), "power", *args]
        return subprocess.run(
            sshd.client_command(argv),
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )

    store = SQLiteStore(tmp_path / "state" / "netboot.sqlite3")
    try:
        node = create_node(store, macs=("52:54:00:00:08:31",), now=time.time(), actor="test")
    finally:
        store.close()
    uri = sshd.libvirt_uri(libvirtd.socket)
    try:
        stored = power("set", node.hostname, "virsh", f"power_address={uri}", "power_id=nb-ssh")
        assert stored.returncode == 0, stored.stderr + sshd.tail()
        assert "ok: virsh: the BMC answered, power is off" in stored.stdout
        assert "Pubkey auth succeeded for 'root'" in sshd.tail()  # it went through ssh
        on = power("on", node.hostname)
        assert on.returncode == 0, on.stderr
        assert libvirtd.is_active("nb-ssh")
        query = power("query", node.system_id)
        assert query.returncode == 0 and query.stdout.strip().endswith(": on"), query.stdout
        off = power("off", node.hostname)
        assert off.returncode == 0, off.stderr
        assert not libvirtd.is_active("nb-ssh")
        query = power("query", node.system_id)
        assert query.returncode == 0 and query.stdout.strip().endswith(": off"), query.stdout

        refused_uri = sshd.libvirt_uri(libvirtd.socket, sshd.other_key)
        start = time.monotonic()
        refused = power("check", "virsh", f"power_address={refused_uri}", "power_id=nb-ssh")
        seconds = time.monotonic() - start
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert f"failed: cannot connect to libvirt at {refused_uri}" in refused.stdout
        print(f"\nqemu+ssh: a key the server refuses is reported after {seconds:.1f} s")
    finally:
        libvirtd.set_active("nb-ssh", False)
        conn = libvirtd.connect()
        try:
            conn.lookupByName("nb-ssh").undefine()
        finally:
            conn.close()
    # Nothing was written into the host's own ~root/.ssh.
    assert Path("/root/.ssh/known_hosts").exists() == known_hosts_before
