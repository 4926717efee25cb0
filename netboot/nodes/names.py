"""Generated hostnames for new nodes: short, pronounceable, DNS-safe (like MAAS's)."""

from __future__ import annotations

import random
from collections.abc import Callable

_ADJECTIVES = (
    "able amber brave bright calm clever cosmic crisp daring eager fair fancy fast "
    "gentle glad golden grand happy humble jolly keen kind lively lucky mellow merry "
    "nimble noble polite proud quick quiet rapid ready robust shiny smart solid steady "
    "sunny swift tidy tough vivid warm wise witty young zesty"
).split()
_NOUNS = (
    "badger beaver bison camel cheetah condor coyote crane dingo dolphin eagle falcon "
    "ferret gazelle gecko heron ibex jackal koala lemur lynx marmot mole moose newt "
    "ocelot otter owl panda pelican puffin quail rabbit raven seal shrew sloth stork "
    "tapir tiger toucan turtle walrus weasel wombat yak zebra"
).split()


def generate_hostname(taken: Callable[[str], bool], rng: random.Random | None = None) -> str:
    """Return ``adjective-noun`` not yet taken, adding a number after a few collisions."""
    rng = rng or random.SystemRandom()
    for attempt in range(1000):
        name = f"{rng.choice(_ADJECTIVES)}-{rng.choice(_NOUNS)}"
        if attempt >= 10:
            name = f"{name}-{rng.randrange(10, 10_000)}"
        if not taken(name):
            return name
    raise RuntimeError("could not find a free hostname after 1000 attempts")
