"""BlockingCalls: a blocking library call on its own thread, cut off at its deadline."""

from __future__ import annotations

import queue
import threading

from twisted.internet import task

from netboot.power.base import PowerError
from netboot.power.blocking import BlockingCalls


class ThreadAwareClock(task.Clock):
    """task.Clock plus callFromThread: calls from worker threads wait in a queue until
    the test delivers them, as the reactor thread would."""

    def __init__(self) -> None:
        super().__init__()
        self.from_threads: queue.Queue = queue.Queue()

    def callFromThread(self, f, *args, **kw):  # noqa: N802 (twisted API name)
        self.from_threads.put((f, args, kw))

    def deliver(self, timeout: float = 10.0) -> None:
        f, args, kw = self.from_threads.get(timeout=timeout)
        f(*args, **kw)


def outcome(d):
    out = []
    d.addBoth(out.append)
    return out


def test_the_result_comes_back_through_the_reactor():
    clock = ThreadAwareClock()
    d = BlockingCalls(clock).run("query via BMC x", 30, lambda a, b: a + b, 2, 3)
    clock.deliver()
    assert outcome(d) == [5]
    assert not clock.getDelayedCalls()  # the deadline timer was cancelled


def test_an_exception_in_the_thread_fails_the_deferred():
    clock = ThreadAwareClock()

    def boom():
        raise PowerError("BMC x refused the password", retryable=False)

    d = BlockingCalls(clock).run("on via BMC x", 30, boom)
    clock.deliver()
    failure = outcome(d)[0]
    assert failure.check(PowerError) and "refused the password" in failure.getErrorMessage()


def test_a_call_that_never_returns_fails_at_the_deadline_and_its_late_answer_is_dropped():
    clock = ThreadAwareClock()
    release = threading.Event()
    d = BlockingCalls(clock).run("on via BMC 10.0.0.9", 8, lambda: release.wait(30) and "late")
    result = outcome(d)
    clock.advance(7.9)
    assert result == []
    clock.advance(0.1)
    assert result[0].check(PowerError) and result[0].value.retryable
    assert result[0].getErrorMessage() == "on via BMC 10.0.0.9: no answer within 8 s"
    release.set()
    clock.deliver()  # the thread's late answer arrives and is ignored
    assert len(result) == 1


def test_past_the_thread_cap_calls_fail_at_once_instead_of_queueing():
    clock = ThreadAwareClock()
    release = threading.Event()
    calls = BlockingCalls(clock, max_threads=BlockingCalls.running() + 2)
    first = calls.run("a", 30, release.wait, 30)
    second = calls.run("b", 30, release.wait, 30)
    third = outcome(calls.run("c", 30, release.wait, 30))
    assert third[0].check(PowerError) and "still waiting on BMCs" in third[0].getErrorMessage()
    release.set()
    clock.deliver()
    clock.deliver()
    assert outcome(first) == [True] and outcome(second) == [True]


def test_blocking_drivers_share_the_missing_library_and_bad_parameter_errors(monkeypatch):
    """virsh, ipmi and redfish all go through BlockingDriver._call: a missing library
    and malformed parameters fail at once, not retryable, before any thread starts."""
    from netboot.power import ipmi, redfish, virsh

    cases = [
        (virsh, "libvirt", virsh.VirshDriver, "libvirt-python", {"power_address": "http://x"}),
        (ipmi, "pyghmi_command", ipmi.IPMIDriver, "pyghmi", {"power_address": "10.0.0.300"}),
        (redfish, "sushy", redfish.RedfishDriver, "sushy", {"power_address": "ftp://x"}),
    ]
    for module, attribute, cls, library, bad in cases:
        clock = ThreadAwareClock()
        driver = cls(clock, timeout=5)
        params = {"power_id": "d", "power_user": "u", "power_pass": "p", **bad}
        for action in ("on", "off", "cycle", "query"):
            failure = outcome(getattr(driver, action)(params))[0]
            assert failure.check(PowerError) and not failure.value.retryable
            assert failure.getErrorMessage().startswith(f"{cls.name} parameters: power_address")
        with monkeypatch.context() as patch:
            patch.setattr(module, attribute, None)
            failure = outcome(driver.on(params))[0]
            assert failure.getErrorMessage() == f"{library} is not installed on the appliance"
        assert clock.from_threads.empty() and not clock.getDelayedCalls()
