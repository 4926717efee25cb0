"""The transition table: MAAS numbers, legal and illegal moves."""

import pytest

from netboot.nodes.lifecycle import TRANSITIONS, IllegalTransition, NodeStatus, check_transition


def test_status_numbers_follow_maas():
    assert [(s.name, int(s)) for s in NodeStatus][:5] == [
        ("NEW", 0),
        ("COMMISSIONING", 1),
        ("FAILED_COMMISSIONING", 2),
        ("READY", 4),
        ("DEPLOYED", 6),
    ]
    assert NodeStatus.ALLOCATED == 10 and NodeStatus.DEPLOYING == 9


def test_every_status_has_a_row():
    assert set(TRANSITIONS) == set(NodeStatus)


def test_happy_path_is_legal():
    path = [
        NodeStatus.NEW,
        NodeStatus.COMMISSIONING,
        NodeStatus.READY,
        NodeStatus.ALLOCATED,
        NodeStatus.DEPLOYING,
        NodeStatus.DEPLOYED,
        NodeStatus.RELEASING,
        NodeStatus.READY,
    ]
    for a, b in zip(path, path[1:], strict=False):
        check_transition(a, b)


def test_illegal_transition_names_current_state():
    with pytest.raises(IllegalTransition, match="NEW to DEPLOYED") as err:
        check_transition(NodeStatus.NEW, NodeStatus.DEPLOYED)
    assert err.value.current is NodeStatus.NEW
