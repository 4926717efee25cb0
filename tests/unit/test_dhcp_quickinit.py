"""quick_init keeps a frozen slots dataclass's behaviour while replacing its __init__."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pytest

from netboot.dhcp.facts import ClientFacts
from netboot.dhcp.leases import Binding, State
from netboot.dhcp.quickinit import quick_init


@quick_init
@dataclass(frozen=True, slots=True)
class Point:
    x: int
    y: int = 7
    label: str = "p"


def test_same_construction_semantics_as_dataclass() -> None:
    assert Point(1) == Point(x=1, y=7, label="p")
    assert Point(1, 2, "q") == Point(label="q", y=2, x=1)
    assert repr(Point(1)) == "Point(x=1, y=7, label='p')"
    assert hash(Point(1, 2)) == hash(Point(1, 2))
    assert dataclasses.replace(Point(1), y=3) == Point(1, 3)
    with pytest.raises(TypeError):
        Point()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Point(1, z=2)  # type: ignore[call-arg]


def test_still_frozen() -> None:
    p = Point(1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.x = 2  # type: ignore[misc]
    b = Binding(b"\x01k", "aa:bb:cc:dd:ee:ff", 1, State.ACTIVE, 1.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        b.ip = 2  # type: ignore[misc]
    assert b.hostname == "" and b.relay == b""


def test_hot_path_classes_use_it() -> None:
    for cls in (ClientFacts, Binding):
        assert cls.__init__.__code__.co_filename == "<string>"
        assert cls.__init__.__qualname__ == f"{cls.__qualname__}.__init__"


def test_refuses_what_it_cannot_honour() -> None:
    @dataclass(slots=True)
    class Mutable:
        x: int

    with pytest.raises(TypeError, match="frozen slots"):
        quick_init(Mutable)

    @dataclass(frozen=True, slots=True)
    class Post:
        x: int

        def __post_init__(self) -> None:
            pass

    with pytest.raises(TypeError, match="__post_init__"):
        quick_init(Post)

    @dataclass(frozen=True, slots=True)
    class Factory:
        x: list = dataclasses.field(default_factory=list)

    with pytest.raises(TypeError, match="default_factory"):
        quick_init(Factory)
