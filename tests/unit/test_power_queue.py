"""PowerQueue: per-node and per-BMC serialisation, retries with backoff, time bounds,
events -- driven by task.Clock and fake drivers."""

from __future__ import annotations

import pytest
from twisted.internet import defer, task

from netboot.power.base import PowerError, PowerState
from netboot.power.queue import PowerQueue, QueuedDriver, RetryPolicy
from tests.unit.power_fakes import FakeDriver

BMC_A = {"power_address": "10.0.0.5", "power_pass": "s3cret"}
BMC_B = {"power_address": "10.0.0.6", "power_pass": "s3cret"}


def make_queue(**policy):
    clock = task.Clock()
    events = []
    queue = PowerQueue(clock, RetryPolicy(**policy), on_event=events.append)
    return clock, queue, events


def result_of(d: defer.Deferred):
    out = []
    d.addBoth(out.append)
    return out


def test_second_action_on_a_node_waits_for_the_first():
    clock, queue, _ = make_queue()
    driver = FakeDriver(script=["hang", None])
    first = result_of(queue.submit("n1", driver, "off", BMC_A))
    second = result_of(queue.submit("n1", driver, "on", BMC_A))
    assert [c[0] for c in driver.calls] == ["off"]
    assert queue.pending("n1") == 2
    driver.hanging[0].callback(None)
    assert [c[0] for c in driver.calls] == ["off", "on"]
    assert first == [None] and second == [None]
    assert queue.pending("n1") == 0
    assert queue.busy_keys() == set()


def test_a_hung_node_does_not_hold_up_another_node():
    clock, queue, _ = make_queue()
    hung = FakeDriver(script=["hang"])
    fine = FakeDriver()
    stuck = result_of(queue.submit("n1", hung, "on", BMC_A))
    other = result_of(queue.submit("n2", fine, "on", BMC_B))
    assert other == [None]  # finished while n1 is still waiting on its BMC
    assert stuck == []


def test_two_nodes_behind_one_bmc_are_serialised():
    clock, queue, _ = make_queue()
    driver = FakeDriver(script=["hang", None])
    result_of(queue.submit("n1", driver, "on", BMC_A))
    second = result_of(queue.submit("n2", driver, "on", BMC_A))
    assert len(driver.calls) == 1 and second == []
    driver.hanging[0].callback(None)
    assert len(driver.calls) == 2 and second == [None]


def test_retryable_error_is_retried_with_growing_delays_then_succeeds():
    clock, queue, events = make_queue(attempts=3, first_delay=2.0, factor=2.0)
    driver = FakeDriver(script=[PowerError("BMC busy"), PowerError("BMC busy"), None])
    out = result_of(queue.submit("n1", driver, "on", BMC_A))
    assert len(driver.calls) == 1
    clock.advance(1.9)
    assert len(driver.calls) == 1
    clock.advance(0.1)
    assert len(driver.calls) == 2
    clock.advance(3.9)
    assert len(driver.calls) == 2  # second delay is 4 s
    clock.advance(0.1)
    assert len(driver.calls) == 3 and out == [None]
    kinds = [e.kind for e in events]
    assert kinds == ["started", "retrying", "started", "retrying", "started", "done"]
    assert "retrying in 2 s" in events[1].message and "retrying in 4 s" in events[3].message


def test_non_retryable_error_fails_at_once_with_its_message():
    clock, queue, events = make_queue(attempts=5)
    driver = FakeDriver(script=[PowerError("BMC 10.0.0.5 refused the password", retryable=False)])
    out = result_of(queue.submit("n1", driver, "on", BMC_A))
    assert len(driver.calls) == 1
    assert out[0].check(PowerError)
    assert "refused the password" in out[0].getErrorMessage()
    assert events[-1].kind == "failed"
    assert "not retried" in events[-1].message and "refused the password" in events[-1].message


def test_attempts_are_cut_off_and_the_whole_action_is_bounded():
    clock, queue, events = make_queue(attempts=2, first_delay=1.0, attempt_timeout=10.0)
    driver = FakeDriver(script=["hang", "hang"])
    out = result_of(queue.submit("n1", driver, "query", BMC_A))
    clock.advance(10.0)
    assert len(driver.calls) == 1 and out == []  # waiting out the backoff
    clock.advance(1.0)
    assert len(driver.calls) == 2
    clock.advance(10.0)
    assert out and out[0].check(PowerError)
    assert "no answer within 10 s" in out[0].getErrorMessage()
    assert [e.kind for e in events][-1] == "failed"
    assert queue.pending("n1") == 0


def test_no_retry_starts_past_the_deadline():
    clock, queue, events = make_queue(attempts=10, first_delay=5.0, factor=1.0, deadline=12.0)
    driver = FakeDriver(script=[PowerError("down")] * 10)
    out = result_of(queue.submit("n1", driver, "on", BMC_A))
    clock.advance(60)
    assert len(driver.calls) == 2  # t=0, t=5; a third at t=10 would end past 12 with its delay
    assert out[0].check(PowerError)


def test_a_crashing_driver_becomes_a_power_error_and_the_queue_goes_on():
    clock, queue, events = make_queue()
    driver = FakeDriver(script=[ZeroDivisionError("driver bug"), None])
    first = result_of(queue.submit("n1", driver, "on", BMC_A))
    second = result_of(queue.submit("n1", driver, "off", BMC_A))
    assert first[0].check(PowerError) and "internal error" in first[0].getErrorMessage()
    assert second == [None]


def test_query_result_is_passed_back_and_named_in_the_done_event():
    clock, queue, events = make_queue()
    driver = FakeDriver(script=[PowerState.OFF])
    assert result_of(queue.submit("n1", driver, "query", BMC_A)) == [PowerState.OFF]
    assert events[-1].kind == "done" and events[-1].message.endswith(": off")


def test_event_sink_failure_does_not_break_the_action():
    def broken_sink(event):
        raise RuntimeError("store is down")

    queue = PowerQueue(task.Clock(), RetryPolicy(), on_event=broken_sink)
    assert result_of(queue.submit("n1", FakeDriver(), "on", BMC_A)) == [None]


def test_unknown_action_is_refused():
    clock, queue, _ = make_queue()
    with pytest.raises(ValueError):
        queue.submit("n1", FakeDriver(), "explode", BMC_A)


def test_queued_driver_routes_actions_through_the_queue_under_the_node():
    clock, queue, events = make_queue()
    inner = FakeDriver(script=["hang", None])
    driver = QueuedDriver(inner, queue, node_of=lambda params: "node-" + params["power_address"])
    assert driver.name == "fake" and driver.can_query and driver.parameters == inner.parameters
    assert driver.bmc_key(BMC_A) == "10.0.0.5"
    driver.off(BMC_A)
    pending_on = result_of(driver.on(BMC_A))
    assert queue.pending("node-10.0.0.5") == 2 and pending_on == []
    inner.hanging[0].callback(None)
    assert pending_on == [None]
    assert {e.node for e in events} == {"node-10.0.0.5"}


def test_cancelling_a_hung_action_frees_the_node_and_bmc_for_the_next():
    clock, queue, events = make_queue(attempts=5, first_delay=1.0)
    driver = FakeDriver(script=["hang", None])
    hung = queue.submit("n1", driver, "on", BMC_A)
    queued = result_of(queue.submit("n1", driver, "off", BMC_A))
    hung.addErrback(lambda f: f.trap(defer.CancelledError))
    hung.cancel()
    assert queued == [None] and [c[0] for c in driver.calls] == ["on", "off"]
    assert "cancelled" in [e.message for e in events if e.kind == "failed"][0]
    assert queue.pending("n1") == 0 and queue.busy_keys() == set()


def test_cancelling_during_the_backoff_stops_the_retries():
    clock, queue, events = make_queue(attempts=5, first_delay=10.0)
    driver = FakeDriver(script=[PowerError("busy")] * 5)
    d = queue.submit("n1", driver, "on", BMC_A)
    d.addErrback(lambda f: f.trap(defer.CancelledError))
    clock.advance(5)
    d.cancel()
    clock.advance(100)
    assert len(driver.calls) == 1 and queue.pending("n1") == 0
