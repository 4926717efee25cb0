"""What the UI pages show, pure: status colour classes, the node filter, event and lease
rows, the action buttons offered per status, the boot-file listing."""

from __future__ import annotations

import hashlib
from ipaddress import IPv4Address
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netboot.dhcp.leases import Binding, State
from netboot.http.ui.images import HashCache, list_boot_files
from netboot.http.ui.views import (
    TONES,
    available_actions,
    deploy_releases,
    event_rows,
    filter_nodes,
    human_bytes,
    image_rows,
    lease_rows,
    paginate,
    parse_status_filter,
    status_classes,
)
from netboot.images.cache import ImageVersion
from netboot.images.manifest import FileEntry, Manifest
from netboot.nodes.lifecycle import NodeStatus
from netboot.store.models import Event, Node

S = NodeStatus


def node(hostname: str, status: NodeStatus = S.NEW, macs=("52:54:00:12:34:56",), **kw) -> Node:
    fields = dict(
        system_id=hostname[:6],
        hostname=hostname,
        status=status,
        boot_mac=macs[0],
        macs=tuple(macs),
        uuid=None,
        vendor="QEMU",
        product="Standard PC",
        serial="",
        cpu_count=2,
        cpu_model="",
        memory_mib=512,
        disks=(),
        token="t",
        created=0.0,
        updated=0.0,
    )
    fields.update(kw)
    return Node(**fields)


@pytest.mark.parametrize(
    ("status", "tone"),
    [
        (S.READY, "ready"),
        (S.ALLOCATED, "owned"),
        (S.DEPLOYED, "owned"),
        (S.DEPLOYING, "owned"),
        (S.FAILED_COMMISSIONING, "failed"),
        (S.FAILED_DEPLOYMENT, "failed"),
        (S.BROKEN, "failed"),
        (S.COMMISSIONING, "busy"),
        (S.NEW, "new"),
    ],
)
def test_status_colour_families_follow_maas(status, tone):
    classes = status_classes(status).split()
    assert f"tone-{tone}" in classes
    assert f"status-{status.name.lower().replace('_', '-')}" in classes


def test_every_status_has_a_colour():
    assert set(TONES) == set(NodeStatus)


@pytest.mark.parametrize(
    ("text", "status"),
    [
        ("", None),
        ("ready", S.READY),
        ("READY", S.READY),
        ("failed-commissioning", S.FAILED_COMMISSIONING),
        ("Failed Deployment", S.FAILED_DEPLOYMENT),
        ("4", S.READY),
    ],
)
def test_status_filter_accepts_names_and_numbers(text, status):
    assert parse_status_filter(text) is status


@pytest.mark.parametrize("text", ["bogus", "3", "99", "<script>"])
def test_status_filter_rejects_unknown_values_naming_them(text):
    with pytest.raises(ValueError, match="unknown status"):
        parse_status_filter(text)


NODES = [
    node("brave-otter", S.READY, macs=("52:54:00:aa:bb:01", "52:54:00:aa:bb:02")),
    node("calm-heron", S.DEPLOYED, macs=("52:54:00:cc:dd:03",), serial="SN-77"),
    node("eager-lynx", S.FAILED_COMMISSIONING, macs=("52:54:00:ee:ff:04",)),
]


@pytest.mark.parametrize(
    ("query", "status", "expected"),
    [
        ("", None, ["brave-otter", "calm-heron", "eager-lynx"]),
        ("otter", None, ["brave-otter"]),
        ("OTTER", None, ["brave-otter"]),
        ("52:54:00:aa:bb:02", None, ["brave-otter"]),  # a second NIC finds the node
        ("52-54-00-CC-DD-03", None, ["calm-heron"]),  # dashes, upper case
        ("ee:ff", None, ["eager-lynx"]),
        ("sn-77", None, ["calm-heron"]),
        ("", S.READY, ["brave-otter"]),
        ("heron", S.READY, []),
        ("zzz", None, []),
    ],
)
def test_filter_by_hostname_mac_serial_and_status(query, status, expected):
    assert [n.hostname for n in filter_nodes(NODES, query, status)] == expected


def test_short_hex_words_do_not_match_every_mac():
    # "be" is hex, but it must match hostnames only, not every MAC containing "be".
    assert [n.hostname for n in filter_nodes(NODES, "ea")] == ["eager-lynx"]


def test_event_rows_newest_first_with_the_change_spelled_out():
    events = [
        Event("abc", 100.0, "node@10.66.0.100", "enlisted", None, S.NEW, "enlisted"),
        Event("abc", 200.0, "admin", "status", S.NEW, S.COMMISSIONING, "commissioning started"),
        Event("abc", 300.0, "admin", "power", None, None, "power on (manual)"),
    ]
    rows = event_rows(events)
    assert [r.kind for r in rows] == ["power", "status", "enlisted"]
    assert rows[1].change == "New \u2192 Commissioning"
    assert rows[2].change == "\u2192 New"
    assert rows[0].change == ""
    assert rows[2].time == "1970-01-01 00:01:40 UTC"


def test_lease_rows_held_first_sorted_by_address_and_linked_to_nodes():
    def binding(mac, ip, state, expires, hostname=""):
        return Binding(
            b"\x01" + bytes.fromhex(mac.replace(":", "")),
            mac,
            int(IPv4Address(ip)),
            state,
            expires,
            hostname,
            "10.66.0.0/24",
        )

    leases = [
        binding("52:54:00:00:00:09", "10.66.0.9", State.EXPIRED, 50.0, "old"),
        binding("52:54:00:aa:bb:02", "10.66.0.110", State.ACTIVE, 500.0, "brave-otter"),
        binding("52:54:00:00:00:01", "10.66.0.101", State.ACTIVE, 500.0),
        binding("52:54:00:00:00:07", "10.66.0.7", State.ACTIVE, 50.0),  # lapsed
    ]
    rows = lease_rows(leases, NODES, now=100.0)
    assert [r.ip for r in rows] == ["10.66.0.101", "10.66.0.110", "10.66.0.7", "10.66.0.9"]
    assert [r.holding for r in rows] == [True, True, False, False]
    assert [r.state for r in rows] == ["active", "active", "active", "expired"]
    assert rows[1].system_id == "brave-"
    assert rows[0].system_id is None


RESCUE = "rescue_mode"


@pytest.mark.parametrize(
    ("status", "offered"),
    [
        (S.NEW, {"commission", "power_on", "power_off", "mark_broken", RESCUE}),
        (S.READY, {"commission", "deploy", "power_on", "power_off", "mark_broken", RESCUE}),
        (S.ALLOCATED, {"deploy", "release", "power_on", "power_off", "mark_broken", RESCUE}),
        (S.DEPLOYED, {"release", "power_on", "power_off", "mark_broken", RESCUE}),
        (S.FAILED_COMMISSIONING, {"commission", "power_on", "power_off", "mark_broken", RESCUE}),
        (S.BROKEN, {"commission", "power_on", "power_off", "mark_fixed", RESCUE}),
        (S.COMMISSIONING, {"power_on", "power_off", "mark_broken"}),
        (S.RESCUE_MODE, {"exit_rescue_mode", "power_on", "power_off", "mark_broken"}),
    ],
)
def test_node_page_offers_only_actions_legal_from_its_status(status, offered):
    assert {a.name for a in available_actions(status)} == offered


def test_human_bytes():
    assert human_bytes(512) == "512 B"
    assert human_bytes(512 * 2**20) == "512.0 MiB"
    assert human_bytes(3 * 2**40) == "3.0 TiB"


def test_boot_file_listing_has_sizes_and_sha256_and_caches_hashes(tmp_path):
    (tmp_path / "grub").mkdir()
    (tmp_path / "undionly.kpxe").write_bytes(b"a" * 1000)
    (tmp_path / "grub" / "grub.cfg").write_text("set timeout=1\n")
    cache = HashCache()
    listing = list_boot_files(tmp_path, cache)
    assert [f.name for f in listing.files] == ["grub/grub.cfg", "undionly.kpxe"]
    kpxe = listing.files[1]
    assert kpxe.size == 1000
    assert kpxe.sha256 == hashlib.sha256(b"a" * 1000).hexdigest()
    assert listing.error is None and not listing.truncated
    # Same size and mtime: the cached digest is reused (not re-read).
    assert list_boot_files(tmp_path, cache).files == listing.files
    assert len(cache._by_key) == 2


def test_boot_file_listing_is_bounded_and_reports_a_missing_dir(tmp_path):
    for i in range(5):
        (tmp_path / f"f{i}").write_bytes(b"x")
    listing = list_boot_files(tmp_path, HashCache(), max_files=3)
    assert len(listing.files) == 3 and listing.truncated
    missing = list_boot_files(tmp_path / "nope", HashCache())
    assert missing.files == () and "not a directory" in (missing.error or "")


def cached(kind: str, name: str, version: str, current: bool, **extra) -> ImageVersion:
    files = (FileEntry("vmlinuz", "ab" * 32, 1000), FileEntry("root.tar.xz", "cd" * 32, 5000))
    manifest = Manifest(kind, name, version, "amd64", files, extra)
    return ImageVersion(manifest, Path("/nowhere"), current)


def test_image_rows_current_first_with_sizes_and_hashes():
    rows = image_rows(
        [
            cached("deploy", "bookworm", "20260101", False),
            cached("deploy", "bookworm", "20260201", True),
            cached("boot", "enlist", "1", True),
        ]
    )
    assert [r["ref"] for r in rows] == [
        "boot/enlist/1",
        "deploy/bookworm/20260201",
        "deploy/bookworm/20260101",
    ]
    assert rows[0]["size"] == 6000
    assert rows[0]["files"][0] == ("vmlinuz", 1000, "ab" * 32)


def test_deploy_offers_current_deploy_images_by_name_and_release():
    images = [
        cached("deploy", "debian-12", "1", True, release="bookworm"),
        cached("deploy", "trixie", "1", False),  # not current: not offered
        cached("boot", "enlist", "1", True),
    ]
    assert deploy_releases(images) == ["bookworm", "debian-12"]


@given(st.text(max_size=40))
def test_filters_take_any_text_without_crashing(text):
    filter_nodes(NODES, text)  # any query: a (possibly empty) list
    try:
        parse_status_filter(text)
    except ValueError as exc:
        assert "unknown status" in str(exc)


@pytest.mark.parametrize(
    ("count", "requested", "number", "pages", "first"),
    [
        (0, "", 1, 1, None),
        (250, "", 1, 3, 0),
        (250, "2", 2, 3, 100),
        (250, "3", 3, 3, 200),
        (250, "99", 3, 3, 200),  # past the end: the last page
        (250, "-4", 1, 3, 0),
        (250, "two", 1, 3, 0),
    ],
)
def test_paginate_clamps_the_requested_page(count, requested, number, pages, first):
    page = paginate(list(range(count)), requested)
    assert (page.number, page.pages, page.total) == (number, pages, count)
    assert (page.items[0] if page.items else None) == first
    assert len(page.items) == min(100, max(0, count - (number - 1) * 100))
