"""PowerPoller: the periodic query that keeps power_state current (task.Clock, fakes)."""

from __future__ import annotations

from twisted.internet import task

from netboot.power.base import PowerError, PowerState
from netboot.power.poller import PollTarget, PowerPoller
from netboot.power.queue import PowerQueue, RetryPolicy
from tests.unit.power_fakes import FakeDriver


def setup(targets, drivers, interval=60.0, concurrency=8):
    clock = task.Clock()
    queue = PowerQueue(clock, RetryPolicy(attempts=1))
    states = []
    poller = PowerPoller(
        clock,
        queue,
        lambda: targets,
        lambda power_type: drivers[power_type],
        lambda node, state, message: states.append((node, state, message)),
        interval=interval,
        concurrency=concurrency,
    )
    return clock, queue, poller, states


def target(node, power_type="fake", address=None):
    return PollTarget(node, power_type, {"power_address": address or f"bmc-{node}"})


def test_each_queryable_node_is_queried_and_its_state_reported():
    fake = FakeDriver(script=[PowerState.ON, PowerState.OFF])
    manual = FakeDriver(name="manual", can_query=False)
    targets = [target("n1"), target("n2"), target("n3", "manual"), target("n4", "nosuch")]
    clock, queue, poller, states = setup(targets, {"fake": fake, "manual": manual})
    poller.poll_once()
    assert ("n1", PowerState.ON, "") in states and ("n2", PowerState.OFF, "") in states
    assert manual.calls == []  # cannot query: left alone
    assert ("n4", PowerState.ERROR, "unknown power type 'nosuch'") in states


def test_a_failed_query_reports_error_with_the_drivers_message():
    fake = FakeDriver(script=[PowerError("BMC 10.0.0.9 refused the password", retryable=False)])
    clock, queue, poller, states = setup([target("n1")], {"fake": fake})
    poller.poll_once()
    assert states == [("n1", PowerState.ERROR, "BMC 10.0.0.9 refused the password")]


def test_nodes_with_an_action_in_progress_are_skipped():
    fake = FakeDriver(script=["hang"])
    clock, queue, poller, states = setup([target("n1")], {"fake": fake})
    queue.submit("n1", fake, "on", {"power_address": "bmc-n1"})
    poller.poll_once()
    assert [c[0] for c in fake.calls] == ["on"]
    assert states == []


def test_the_loop_polls_every_interval_on_the_injected_clock():
    fake = FakeDriver(script=[PowerState.ON, PowerState.OFF, PowerState.ON])
    clock, queue, poller, states = setup([target("n1")], {"fake": fake}, interval=30.0)
    poller.start()
    assert len(fake.calls) == 1
    clock.advance(29)
    assert len(fake.calls) == 1
    clock.advance(1)
    assert len(fake.calls) == 2
    clock.advance(30)
    assert [s[1] for s in states] == [PowerState.ON, PowerState.OFF, PowerState.ON]
    poller.stop()
    clock.advance(300)
    assert len(fake.calls) == 3


def test_at_most_concurrency_queries_run_at_once():
    fake = FakeDriver(script=["hang"] * 10)
    targets = [target(f"n{i}") for i in range(10)]
    clock, queue, poller, states = setup(targets, {"fake": fake}, concurrency=3)
    poller.poll_once()
    assert len(fake.calls) == 3
    fake.hanging[0].callback(PowerState.ON)
    assert len(fake.calls) == 4


def test_a_slow_round_is_not_doubled_by_the_next_tick():
    fake = FakeDriver(script=["hang", PowerState.ON])
    clock, queue, poller, states = setup([target("n1")], {"fake": fake}, interval=10.0)
    first = poller.poll_once()
    again = poller.poll_once()
    assert again is first and len(fake.calls) == 1
    fake.hanging[0].callback(PowerState.OFF)
    poller.poll_once()
    assert len(fake.calls) == 2
    assert poller.rounds == 2
