"""Neighbour entries for unicast DHCP replies, installed in a lab namespace's kernel."""

from __future__ import annotations

import sys

import pytest

from netboot.lab.netns import LabNetwork

pytestmark = pytest.mark.netns

SCRIPT = """
from netboot.dhcp.arp import Neighbours
n = Neighbours()
assert n.add("nbbr0", "10.66.0.123", "52:54:00:ab:cd:ef")
assert n.add("nbbr0", "10.66.0.123", "52:54:00:ab:cd:01")  # replaced, not duplicated
assert n.add("nbbr0", "10.66.0.124", "52:54:00:ab:cd:02")
assert not n.add("nosuch0", "10.66.0.125", "52:54:00:ab:cd:03")  # no interface: False
n.close()
"""


def test_entries_are_in_the_kernel_when_add_returns(lab: LabNetwork):
    ran = lab.run([sys.executable, "-c", SCRIPT])
    assert ran.returncode == 0, ran.stderr.decode()
    table = lab.run(["ip", "neigh", "show", "dev", "nbbr0"]).stdout.decode()
    entries = {line.split()[0]: line for line in table.splitlines()}
    assert "lladdr 52:54:00:ab:cd:01 REACHABLE" in entries["10.66.0.123"], table
    assert "lladdr 52:54:00:ab:cd:02 REACHABLE" in entries["10.66.0.124"], table
