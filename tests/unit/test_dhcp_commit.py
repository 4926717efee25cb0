"""Group commit: ACK callbacks run only after their changes are written; submissions of
one reactor iteration share one transaction; a failed batch runs no callback."""

from __future__ import annotations

import queue
import threading

import pytest
from twisted.internet.task import Clock

from netboot.dhcp.commit import GroupCommitter


class Store:
    def __init__(self, fail: bool = False) -> None:
        self.batches: list[list[str]] = []
        self.fail = fail

    def apply(self, changes) -> None:
        if self.fail:
            raise OSError("disk full")
        self.batches.append(list(changes))


def test_reactor_mode_commits_one_iteration_in_one_batch_before_any_callback():
    clock, store, events = Clock(), Store(), []
    committer = GroupCommitter(store.apply, clock, events.append, mode="reactor")
    for n in range(5):
        committer.submit([f"row{n}"], lambda n=n: events.append((n, len(store.batches))))
    assert store.batches == [] and events == []  # nothing before the iteration ends
    clock.advance(0)
    assert store.batches == [["row0", "row1", "row2", "row3", "row4"]]
    assert events == [(n, 1) for n in range(5)]  # each after the one commit


def test_a_failed_batch_sends_nothing_and_reports_the_error():
    clock, store, callbacks, errors = Clock(), Store(fail=True), [], []
    committer = GroupCommitter(store.apply, clock, errors.append, mode="reactor")
    committer.submit(["row"], lambda: callbacks.append("ack"))
    clock.advance(0)
    assert callbacks == [] and [type(e) for e in errors] == [OSError]


class ThreadReactor:
    """callFromThread into a queue the test thread drains, like the reactor would."""

    def __init__(self) -> None:
        self.calls: queue.Queue = queue.Queue()

    def callFromThread(self, f, *args) -> None:  # noqa: N802 (twisted API)
        self.calls.put((f, args))

    def run_one(self) -> None:
        f, args = self.calls.get(timeout=10)
        f(*args)


def test_thread_mode_writes_off_the_reactor_and_batches_while_busy():
    reactor, gate, seen = ThreadReactor(), threading.Event(), []
    store = Store()

    def slow_apply(changes) -> None:
        gate.wait(10)  # the first batch "fsyncs" until the test lets it go
        store.apply(changes)

    committer = GroupCommitter(slow_apply, reactor, seen.append, mode="thread")
    committer.submit(["a"], lambda: seen.append("ack a"))
    committer.submit(["b"], lambda: seen.append("ack b"))  # queued behind the busy writer
    committer.submit(["c"], lambda: seen.append("ack c"))
    gate.set()
    reactor.run_one()  # first batch done: its ACK, and the next batch starts
    reactor.run_one()
    assert store.batches == [["a"], ["b", "c"]]
    assert seen == ["ack a", "ack b", "ack c"]
    committer.stop()


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="commit mode"):
        GroupCommitter(Store().apply, Clock(), print, mode="sometimes")


@pytest.mark.parametrize("mode", ["thread", "reactor"])
def test_the_configured_commit_mode_reaches_the_server(tmp_path, mode):
    from ipaddress import IPv4Address

    from netboot.dhcp.service import DHCPService
    from netboot.dhcp.settings import parse_dhcp
    from netboot.store.sqlite import open_store

    open_store(tmp_path / "db").close()
    raw = {"interfaces": ["br0"], "subnet": "10.0.0.0/24", "commit": mode}
    service = DHCPService(parse_dhcp(raw, IPv4Address("10.0.0.1")), tmp_path / "db", "", Clock())
    server, _ = service._build_server()
    try:
        assert server.committer._mode == mode
    finally:
        server.committer.stop()
        service._store.close()
