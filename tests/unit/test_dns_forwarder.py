"""Forwarder decisions that need no socket: upstream choice, hold-down, answer matching."""

from __future__ import annotations

from ipaddress import IPv4Address

from dnslib import DNSRecord
from twisted.internet import task

from netboot.dns.forwarder import (
    HOLDDOWN_MAX,
    Forwarder,
    UpstreamFailure,
    UpstreamHealth,
    choose_upstreams,
    new_query_id,
)
from netboot.dns.settings import Upstream
from netboot.dns.wire import build_query, question_matches

QUESTION = b"\x03www\x07Example\x04test\x00\x00\x01\x00\x01"

U1, U2, CORP = (Upstream(IPv4Address(f"192.0.2.{i}")) for i in (1, 2, 10))


def test_conditional_forwarders_pick_the_longest_matching_domain():
    conditional = [("corp.example", (CORP,)), ("lab.corp.example", (U2,))]
    assert choose_upstreams("www.example.com.", (U1,), conditional) == (U1,)
    assert choose_upstreams("Host.CORP.example.", (U1,), conditional) == (CORP,)
    assert choose_upstreams("a.lab.corp.example.", (U1,), conditional) == (U2,)
    assert choose_upstreams("notcorp.example.", (U1,), conditional) == (U1,)


def test_definite_failure_holds_an_upstream_down_with_doubling_up_to_a_cap():
    health = UpstreamHealth()
    assert health.usable((U1, U2), 0) == [U1, U2]
    assert health.failed(U1, 0) == 1.0  # port unreachable: at once
    assert health.usable((U1, U2), 0.5) == [U2]
    assert health.usable((U1, U2), 1.0) == [U1, U2]
    assert health.failed(U1, 1.0) == 2.0
    for _ in range(10):
        holddown = health.failed(U1, 10.0)
    assert holddown == HOLDDOWN_MAX
    health.succeeded(U1)
    assert health.usable((U1,), 10.0) == [U1]


def test_one_timeout_is_forgiven_the_second_in_a_row_holds_down():
    health = UpstreamHealth()
    assert health.failed(U1, 0, definite=False) == 0.0
    assert health.usable((U1,), 0) == [U1]
    health.succeeded(U1)
    assert health.failed(U1, 5, definite=False) == 0.0  # the count started again
    assert health.failed(U1, 6, definite=False) == 1.0
    assert health.usable((U1,), 6.5) == []


def test_answer_must_match_id_and_question():
    wire = build_query(0x1234, QUESTION, edns=True)
    reply = DNSRecord.parse(wire).reply()
    good = bytes(reply.pack())
    assert question_matches(good, 0x1234, QUESTION.lower())  # names case-insensitive
    assert not question_matches(good, 0x1235, QUESTION)
    assert not question_matches(wire, 0x1234, QUESTION)  # QR=0: a query, not an answer
    other = DNSRecord.question("evil.example.test").reply()
    other.header.id = 0x1234
    assert not question_matches(bytes(other.pack()), 0x1234, QUESTION)
    aaaa = DNSRecord.question("www.example.test", "AAAA").reply()
    aaaa.header.id = 0x1234
    assert not question_matches(bytes(aaaa.pack()), 0x1234, QUESTION)
    bare_tc = bytes.fromhex("123482000000000000000000")
    assert question_matches(bare_tc, 0x1234, QUESTION)  # truncated, no question: use TCP
    bare_formerr = bytes.fromhex("123480010000000000000000")
    assert question_matches(bare_formerr, 0x1234, QUESTION)  # an old server's FORMERR
    bare_ok = bytes.fromhex("123480000000000000000000")
    assert not question_matches(bare_ok, 0x1234, QUESTION)  # NOERROR needs the question
    assert not question_matches(good[:20], 0x1234, QUESTION)


def test_query_ids_are_random():
    assert len({new_query_id() for _ in range(50)}) > 40


def test_all_upstreams_held_down_fails_at_once_without_sending():
    clock = task.Clock()
    forwarder = Forwarder(clock, (U1, U2), timeout=1.0)  # task.Clock has no sockets: any send
    forwarder.health.failed(U1, 0)  # attempt would raise AttributeError
    forwarder.health.failed(U2, 0)
    failures = []
    forwarder.resolve("www.example.test.", QUESTION).addErrback(failures.append)
    assert failures and failures[0].check(UpstreamFailure)
    assert forwarder.stats["all_down"] == 1


def test_no_upstream_configured_fails_at_once():
    failures = []
    Forwarder(task.Clock(), ()).resolve("x.test.", QUESTION).addErrback(failures.append)
    assert "no upstream configured" in str(failures[0].value)


def test_queries_past_the_inflight_bound_fail_at_once_without_holding_upstreams_down():
    forwarder = Forwarder(task.Clock(), (U1,), max_inflight=0)
    failures = []
    forwarder.resolve("x.test.", QUESTION).addErrback(failures.append)
    assert "in flight" in str(failures[0].value)
    assert forwarder.health.usable((U1,), 0) == [U1]
    assert forwarder.inflight == 0


def test_queries_in_flight_when_an_outage_began_do_not_escalate_the_hold_down():
    health = UpstreamHealth()
    assert health.failed(U1, 10.0, definite=False, sent=8.0) == 0.0
    assert health.failed(U1, 10.0, definite=False, sent=8.0) == 1.0  # second: held down
    for _ in range(100):  # the rest of the burst, sent before the hold-down began
        assert health.failed(U1, 10.1, definite=False, sent=8.5) == 0.0
    assert health.usable((U1,), 11.0) == [U1]  # 1 s, not 30 s
    assert health.failed(U1, 12.0, definite=False, sent=11.0) == 2.0  # a fresh probe failed
