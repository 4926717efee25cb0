"""Pure parts of the MAAS API and commissioning: body decoding (with python-libmaas's own
payload builder and urlencoded gomaasapi-style bodies), OAuth PLAINTEXT checks, the
inventory validator, the verdict, the operator script directory and the iPXE script."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from maas.client.utils import prepare_payload, sign
from oauthlib import oauth1

from netboot.bootconfig.scripts import BootPurpose, ScriptRenderer, boot_purpose
from netboot.http.maas.forms import BadForm, parse_form
from netboot.http.maas.handlers import describe
from netboot.http.maas.oauth import Unauthorized, authenticate
from netboot.nodes.commissioning import operator_scripts, parse_inventory, verdict
from netboot.nodes.inventory import InvalidReport
from netboot.nodes.lifecycle import NodeStatus
from netboot.store.models import Node
from netboot.store.nodes_ext import ApiKey, ScriptResult

KEY = ApiKey("ck", "tk", "se-cr_et", "admin", "", 0.0)


def lookup(consumer, token):
    return KEY if (consumer, token) == ("ck", "tk") else None


def test_libmaas_multipart_body_decodes_base64_parts_and_lists():
    data = [
        ("distro_series", "bookworm"),
        ("user_data", b"I2Nsb3VkLWNvbmZpZwo=\n"),
        ("dry_run", True),
        ("tags", "a"),
        ("tags", "b"),
    ]
    uri, body, headers = prepare_payload("deploy", "POST", "http://x/MAAS/api/2.0/m/", data)
    form = parse_form(uri.split("?", 1)[1].encode(), dict(headers)["Content-Type"], body)
    assert form.text("op") == "deploy"
    assert form.text("distro_series") == "bookworm"
    assert form.raw("user_data") == [b"I2Nsb3VkLWNvbmZpZwo=\n"]
    assert form.flag("dry_run") is True
    assert form.texts("tags") == ["a", "b"]


def test_libmaas_empty_multipart_body_is_no_parameters():
    _, body, headers = prepare_payload("commission", "POST", "http://x/", [])
    assert (
        parse_form(b"op=commission", dict(headers)["Content-Type"], body).names()
        == {"op": []}.keys()
    )


def test_urlencoded_body_with_repeated_keys():
    form = parse_form(
        b"op=release", "application/x-www-form-urlencoded", b"machines=a&machines=b&comment=x+y"
    )
    assert form.texts("machines") == ["a", "b"] and form.text("comment") == "x y"


@pytest.mark.parametrize(
    ("ctype", "body", "field"),
    [
        ("application/json", b"{}", "(body)"),
        ("multipart/form-data", b"--x\r\n\r\n", "(body)"),
    ],
)
def test_unusable_bodies_are_bad_form(ctype, body, field):
    with pytest.raises(BadForm) as err:
        parse_form(b"", ctype, body)
    assert err.value.field == field


def test_flag_rejects_non_booleans():
    with pytest.raises(BadForm, match="dry_run"):
        parse_form(b"dry_run=perhaps", None, b"").flag("dry_run")


def test_oauth_accepts_libmaas_and_gomaasapi_headers():
    headers: dict = {}
    sign("http://x/MAAS/api/2.0/users/?op=whoami", headers, ("ck", "tk", "se-cr_et"))
    assert 'realm="OAuth"' in headers["Authorization"]
    assert authenticate(headers["Authorization"], lookup) is KEY
    gomaasapi = (
        'OAuth realm="MAAS API", oauth_consumer_key="ck", oauth_token="tk", '
        'oauth_signature_method="PLAINTEXT", oauth_signature="&se-cr_et", '
        f'oauth_timestamp="{int(time.time())}", oauth_nonce="n1", oauth_version="1.0"'
    )
    assert authenticate(gomaasapi, lookup) is KEY
    assert authenticate(None, lookup) is None


@pytest.mark.parametrize(
    "header",
    [
        'OAuth oauth_consumer_key="ck", oauth_token="tk", oauth_signature_method="PLAINTEXT",'
        ' oauth_signature="&wrong", oauth_timestamp="1", oauth_nonce="n"',
        'OAuth oauth_consumer_key="zz", oauth_token="tk", oauth_signature_method="PLAINTEXT",'
        ' oauth_signature="&se-cr_et", oauth_timestamp="1", oauth_nonce="n"',
        'OAuth oauth_consumer_key="ck", oauth_token="tk", oauth_signature="&se-cr_et"',
        "OAuth garbage",
    ],
)
def test_oauth_refuses_bad_credentials(header):
    with pytest.raises(Unauthorized):
        authenticate(header, lookup)


def test_oauth_refuses_hmac_signatures():
    client = oauth1.Client("ck", "", "tk", "se-cr_et", signature_method=oauth1.SIGNATURE_HMAC)
    _, headers, _ = client.sign("http://x/MAAS/api/2.0/machines/")
    with pytest.raises(Unauthorized, match="PLAINTEXT"):
        authenticate(headers["Authorization"], lookup)


def test_describe_lists_the_handlers_libmaas_binds():
    doc = describe("http://10.0.0.1:5248")
    by_name = {r["name"]: r for r in doc["resources"]}
    machine = by_name["MachineHandler"]["auth"]
    assert machine["uri"] == "http://10.0.0.1:5248/MAAS/api/2.0/machines/{system_id}/"
    assert machine["params"] == ["system_id"]
    ops = {(a["name"], a["method"], a["op"]) for a in machine["actions"]}
    assert {
        ("read", "GET", None),
        ("deploy", "POST", "deploy"),
        ("release", "POST", "release"),
    } <= ops
    machines = by_name["MachinesHandler"]
    assert machines["anon"]["name"] == "AnonMachinesHandler"
    assert [a["name"] for a in machines["anon"]["actions"]] == ["create"]
    assert by_name["VersionHandler"]["anon"] is not None


INVENTORY = {
    "cpu": {"count": 2, "model": "x", "flags": ["sse2", "fpu", "sse2"]},
    "memory": {"total_mib": 512},
    "dmi": {"board_vendor": "Acme", "chassis_type": "1"},
    "disks": [{"name": "vda", "size_bytes": 1 << 30, "serial": "S", "rotational": False}],
    "nics": [{"name": "eth0", "mac": "52:54:00:00:00:01", "speed_mbps": None, "link": True}],
    "pci": [{"slot": "0000:00:03.0", "vendor": "1af4", "device": "1000", "class": "020000"}],
}


def test_inventory_is_normalised():
    hw = parse_inventory(json.dumps(INVENTORY).encode())
    assert hw["cpu"]["flags"] == ["fpu", "sse2"]
    assert hw["disks"][0]["block_size"] == 512 and hw["disks"][0]["rotational"] is False
    assert hw["nics"][0]["speed_mbps"] is None
    assert hw["pci"][0]["driver"] == ""


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (("cpu", "count"), "2", "cpu.count"),
        (("cpu", "flags"), "fpu", "cpu.flags"),
        (("nics", 0, "mac"), "nope", "nics[0].mac"),
        (("disks", 0, "size_bytes"), -1, "disks[0].size_bytes"),
        (("disks", 0, "rotational"), "yes", "disks[0].rotational"),
    ],
)
def test_bad_inventory_names_the_field(path, value, field):
    doc = json.loads(json.dumps(INVENTORY))
    target = doc
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    with pytest.raises(InvalidReport) as err:
        parse_inventory(json.dumps(doc).encode())
    assert err.value.field == field


def test_verdict():
    ok = ScriptResult("n", "10-a", 0, b"fine", 1.0)
    bad = ScriptResult("n", "20-b", 2, b"line1\nbroken", 1.0)
    assert verdict([ok], ["10-a"], True, True).ok
    v = verdict([ok, bad], ["10-a", "20-b", "30-c"], True, True)
    assert not v.ok
    assert "20-b exited 2: line1 | broken" in v.message and "30-c did not report" in v.message
    assert not verdict([ok], ["10-a"], False, True).ok
    assert "reported a failure" in verdict([ok], ["10-a"], True, False).message


def test_operator_scripts_in_name_order_skipping_docs_and_bad_names(tmp_path: Path):
    for name in ("20-b", "10-a", "README.md", ".hidden", "bad name", "x~"):
        (tmp_path / name).write_text("#!/bin/sh\n")
    (tmp_path / "30-dir").mkdir()
    assert [s.name for s in operator_scripts(tmp_path)] == ["10-a", "20-b"]
    assert operator_scripts(tmp_path / "missing") == []


def _node(status: NodeStatus) -> Node:
    return Node(
        system_id="abc123", hostname="n1", status=status, boot_mac="52:54:00:00:00:01",
        macs=("52:54:00:00:00:01",), uuid=None, vendor="", product="", serial="",
        cpu_count=1, cpu_model="", memory_mib=512, disks=(), token="TOKEN-42",
        created=0.0, updated=0.0,
    )  # fmt: skip


def test_commissioning_node_boots_the_commissioning_env_with_its_token():
    node = _node(NodeStatus.COMMISSIONING)
    assert boot_purpose(node) is BootPurpose.COMMISSION
    script = ScriptRenderer().ipxe(node, node.boot_mac, "http://10.0.0.1:5248")
    assert "/boot/files/commission.initrd" in script
    assert "netboot.url=http://10.0.0.1:5248 netboot.system_id=abc123" in script
    assert "netboot.token=TOKEN-42" in script
    for other in (NodeStatus.NEW, NodeStatus.READY, NodeStatus.FAILED_COMMISSIONING):
        rendered = ScriptRenderer().ipxe(_node(other), node.boot_mac, "http://10.0.0.1:5248")
        assert "TOKEN-42" not in rendered
