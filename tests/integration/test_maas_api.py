"""The MAAS 2.0 API in a lab namespace, driven by real clients from a second namespace:
python-libmaas 0.6.8 (multipart bodies, realm "OAuth") and curl speaking like Juju's
gomaasapi (urlencoded bodies, realm "MAAS API"); plus the node callbacks."""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path

import pytest

from netboot.lab.appliance import LabAppliance
from netboot.lab.netns import LabNetwork
from tests.conftest import require_root
from tests.integration.maas_helpers import MaasCurl

pytestmark = pytest.mark.netns
CLIENT = Path(__file__).with_name("maas_libmaas_client.py")


def db_rows(app, sql: str, *args) -> list[tuple]:
    db = sqlite3.connect(app.state_dir / "netboot.sqlite3")
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()


def curl_json(host, method: str, url: str, body: bytes | None = None, headers=()):
    args = ["curl", "-sS", "--max-time", "20", "-X", method, "-w", "\n%{http_code}"]
    for h in headers:
        args += ["-H", h]
    if body is not None:
        args += ["--data-binary", body.decode()]
    out = host.run([*args, url], timeout=40)
    assert out.returncode == 0, out.stderr
    text, code = out.stdout.decode().rsplit("\n", 1)
    try:
        return int(code), json.loads(text)
    except ValueError:
        return int(code), text


def enlist(host, base: str, mac: str, cpus: int = 2, mem: int = 2048) -> dict:
    body = {
        "boot_mac": mac,
        "interfaces": [{"name": "eth0", "mac": mac}],
        "cpu": {"count": cpus, "model": "lab"},
        "memory": {"total_mib": mem},
        "disks": [{"name": "vda", "size_bytes": 8 << 30}],
    }
    code, answer = curl_json(host, "POST", f"{base}/api/enlist", json.dumps(body).encode())
    assert code == 201, answer
    return answer


def inventory(mac: str, cpus: int = 2, mem: int = 2048) -> bytes:
    return json.dumps(
        {
            "cpu": {"count": cpus, "model": "lab", "flags": ["fpu", "lm"]},
            "memory": {"total_mib": mem},
            "dmi": {"board_vendor": "Acme", "board_name": "B1"},
            "disks": [{"name": "vda", "size_bytes": 8 << 30, "serial": "S1"}],
            "nics": [{"name": "eth0", "mac": mac, "driver": "e1000", "speed_mbps": 1000}],
            "pci": [{"slot": "0000:00:03.0", "vendor": "8086", "device": "100e"}],
        }
    ).encode()


def make_ready(host, api: MaasCurl, base: str, mac: str, cpus=2, mem=2048) -> str:
    node = enlist(host, base, mac, cpus, mem)
    sid = node["system_id"]
    code, body = api.call("POST", f"machines/{sid}/", op="commission", data={})
    assert code == 200, body
    auth = f"Authorization: Bearer {node['token']}"
    meta = f"{base}/metadata/{sid}/commissioning"
    code, _ = curl_json(host, "POST", f"{meta}/inventory", inventory(mac, cpus, mem), [auth])
    assert code == 200
    code, names = curl_json(host, "GET", f"{meta}/scripts", None, [auth])
    for name in names.split():
        assert curl_json(host, "POST", f"{meta}/results/{name}?exit=0", b"ok", [auth])[0] == 200
    code, done = curl_json(host, "POST", f"{meta}/done", b"", [auth])
    assert code == 200 and done["status"] == "Ready", done
    return sid


@pytest.fixture(scope="module")
def lab_appliance(tmp_path_factory):
    """One lab and one appliance for this module (starting one costs seconds); each test
    uses its own MACs and looks only at its own nodes."""
    require_root()
    workdir = tmp_path_factory.mktemp("maas")
    boot = workdir / "boot"
    boot.mkdir()
    for name in ("undionly.kpxe", "snponly.efi", "vmlinuz", "enlist.initrd"):
        (boot / name).write_bytes(b"not a real boot file\n")
    with LabNetwork(prefix="nbmaas") as lab:
        app = LabAppliance(lab, workdir / "appliance", boot).start()
        try:
            app.wait_ready()
            key = app.netboot("apikey", "create", "--user", "admin")
            assert key.returncode == 0, key.stderr
            host = lab.add_host("10.66.0.50/24")
            yield app, host, key.stdout.strip()
        finally:
            app.stop()


@pytest.fixture
def appliance(lab_appliance):
    return lab_appliance[0]


@pytest.fixture
def client(lab_appliance):
    app, host, key = lab_appliance
    return host, MaasCurl(host, app.http_base, key), key


def test_python_libmaas_logs_in_lists_allocates_deploys_and_releases(appliance, client):
    host, _, key = client
    result = host.run([sys.executable, str(CLIENT), appliance.http_base, key], timeout=120)
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    out = json.loads(result.stdout)
    assert out["whoami"] == "admin"
    assert [status for _, status in out["listed"]] == ["DEFAULT", "DEFAULT"]  # NEW == 0
    assert len(out["listed"]) == 2
    assert out["commissioning"] == ["COMMISSIONING", "COMMISSIONING"]
    assert out["after_commissioning"] == ["READY", "READY"]
    assert out["allocate_too_big"] == "MachineNotFound"  # 409 -> libmaas's exception
    # cpus=6, 8 GiB: only the 8-CPU node qualifies; it is allocated to the key's user.
    assert out["allocated"] == {
        "system_id": out["big_system_id"],
        "status": "ALLOCATED",
        "owner": "admin",
    }
    assert out["deploy"] == {"status": "DEPLOYING", "distro_series": "bookworm"}
    assert out["owner_data"] == {"juju-model": "m1", "owner": "test"}
    assert out["read_status"] == "DEPLOYING"
    assert out["release"] == "READY"
    assert out["after_release"] == {"status": "READY", "owner_data": {}}
    sid = out["big_system_id"]
    # libmaas's base64 user_data arrived decoded, then release cleared it.
    moves = db_rows(
        appliance,
        "SELECT actor, from_status, to_status FROM events WHERE system_id = ? AND "
        "to_status IS NOT NULL ORDER BY id",
        sid,
    )
    assert [m[1:] for m in moves] == [
        (None, 0),
        (0, 1),
        (1, 4),
        (4, 10),
        (10, 9),
        (9, 12),
        (12, 4),
    ]
    assert {m[0] for m in moves[3:]} == {"admin"}
    assert db_rows(appliance, "SELECT user_data FROM nodes WHERE system_id = ?", sid) == [(None,)]


# gomaasapi machine_2_0 (machine.go): every key, with the type it checks.
STR, INT, BOOL, LIST, DICT, NONE = str, int, bool, list, dict, type(None)
MACHINE_FIELDS = {
    "resource_uri": STR,
    "system_id": STR,
    "hostname": STR,
    "fqdn": STR,
    "tag_names": LIST,
    "owner_data": DICT,
    "osystem": STR,
    "distro_series": STR,
    "architecture": (STR, NONE),
    "memory": INT,
    "cpu_count": INT,
    "hardware_info": (DICT, NONE),
    "ip_addresses": LIST,
    "power_state": STR,
    "status_name": STR,
    "status_message": (STR, NONE),
    "boot_interface": (DICT, NONE),
    "interface_set": LIST,
    "zone": DICT,
    "pool": (DICT, NONE),
    "physicalblockdevice_set": LIST,
    "blockdevice_set": LIST,
}
INTERFACE_FIELDS = {
    "resource_uri": STR,
    "id": INT,
    "name": STR,
    "type": STR,
    "enabled": BOOL,
    "tags": LIST,
    "vlan": (DICT, NONE),
    "links": LIST,
    "mac_address": STR,
    "effective_mtu": INT,
    "parents": LIST,
    "children": LIST,
}
VLAN_FIELDS = {
    "id": INT,
    "resource_uri": STR,
    "name": (STR, NONE),
    "fabric": STR,
    "vid": INT,
    "mtu": INT,
    "dhcp_on": BOOL,
    "primary_rack": (STR, NONE),
    "secondary_rack": (STR, NONE),
}
BLOCKDEVICE_FIELDS = {
    "resource_uri": STR,
    "id": INT,
    "uuid": (STR, NONE),
    "name": STR,
    "model": (STR, NONE),
    "id_path": (STR, NONE),
    "path": STR,
    "used_for": STR,
    "tags": LIST,
    "block_size": INT,
    "used_size": INT,
    "size": INT,
    "filesystem": (DICT, NONE),
    "partitions": LIST,
}
NAMED_FIELDS = {"name": STR, "description": STR, "resource_uri": STR}  # zone, pool


def check(obj: dict, fields: dict, where: str) -> None:
    for key, kind in fields.items():
        assert key in obj, f"{where} lacks {key}"
        assert isinstance(obj[key], kind), f"{where}.{key} is {type(obj[key]).__name__}"
        if kind is INT:
            assert not isinstance(obj[key], bool), f"{where}.{key} is a bool"


def test_machine_json_has_every_field_gomaasapi_requires(appliance, client):
    host, api, _ = client
    base = appliance.http_base
    sid = make_ready(host, api, base, "52:54:00:bb:00:01")
    code, machines = api.call("GET", f"machines/?id={sid}")
    assert code == 200 and len(machines) == 1
    code, allocated = api.call(
        "POST", "machines/", op="allocate", data={"agent_name": "m", "system_id": sid}
    )
    assert code == 200
    for machine in (machines[0], allocated):
        check(machine, MACHINE_FIELDS, "machine")
        assert machine["resource_uri"] == f"/MAAS/api/2.0/machines/{sid}/"
        assert all(isinstance(v, str) for v in machine["hardware_info"].values())
        assert all(isinstance(v, str) for v in machine["owner_data"].values())
        check(machine["zone"], NAMED_FIELDS, "zone")
        check(machine["pool"], NAMED_FIELDS, "pool")
        for iface in machine["interface_set"] + [machine["boot_interface"]]:
            check(iface, INTERFACE_FIELDS, "interface")
            check(iface["vlan"], VLAN_FIELDS, "vlan")
            for link in iface["links"]:
                assert isinstance(link["id"], int) and isinstance(link["mode"], str)
        for dev in machine["physicalblockdevice_set"] + machine["blockdevice_set"]:
            check(dev, BLOCKDEVICE_FIELDS, "blockdevice")
        # libmaas: status is the int, power_state one of its enum values
        assert isinstance(machine["status"], int) and machine["power_state"] in (
            "on",
            "off",
            "unknown",
            "error",
        )
    assert allocated["constraints_by_type"] == {}
    assert allocated["status_name"] == "Allocated"


def test_juju_style_requests_and_error_codes(appliance, client):
    host, api, key = client
    base = appliance.http_base
    a = make_ready(host, api, base, "52:54:00:cc:00:01", cpus=2)
    b = make_ready(host, api, base, "52:54:00:cc:00:02", cpus=4)

    code, version = api.call("GET", "version/", auth=False)
    assert code == 200 and version["version"].startswith("2.")
    assert isinstance(version["capabilities"], list) and isinstance(version["subversion"], str)
    plain = host.run(["curl", "-sS", f"{base}/MAAS/api/version/"]).stdout
    assert plain == b"2.0"
    code, me = api.call("GET", "users/", op="whoami")
    assert (code, me["username"]) == (200, "admin")

    # 401: no credentials, unknown key, wrong secret; nothing is revealed.
    assert api.call("GET", "machines/", auth=False)[0] == 401
    consumer, token, _ = key.split(":")
    assert MaasCurl(host, base, f"{consumer}:{token}:wrong").call("GET", "machines/")[0] == 401
    assert MaasCurl(host, base, "a:b:c").call("GET", "machines/")[0] == 401
    # 400: unknown op, named in MAAS's words
    code, text = api.call("POST", "machines/", op="frobnicate", data={})
    assert code == 400 and "Unrecognised signature: method=POST op=frobnicate" in text

    events_before = db_rows(appliance, "SELECT count(*) FROM events")
    # 400 naming the field, nothing changed
    for data, field in [
        ({"cpu_count": "lots"}, "cpu_count"),
        ({"mem": "-5"}, "mem"),
        ({"storage": "root:8"}, "storage"),
        ({"dry_run": "maybe"}, "dry_run"),
    ]:
        code, body = api.call("POST", "machines/", op="allocate", data=data)
        assert (code, list(body)) == (400, [field]), body
    code, body = api.call("GET", "machines/", data=None, op=None)
    assert code == 200
    code, body = api.call("POST", f"machines/{a}/", op="deploy", data={"user_data": "!!!"})
    assert (code, list(body)) == (400, ["user_data"])
    assert db_rows(appliance, "SELECT count(*) FROM events") == events_before
    statuses = db_rows(appliance, "SELECT status FROM nodes WHERE system_id IN (?, ?)", a, b)
    assert statuses == [(4,), (4,)]

    # Tags (allocate matches them), then Juju's allocate with agent_name (urlencoded) and
    # the list filtered by agent_name.
    code, tagged = api.call("POST", "tags/juju-gpu/", op="update_nodes", data={"add": b})
    assert (code, tagged) == (200, {"added": 1, "removed": 0})
    code, got = api.call(
        "POST",
        "machines/",
        op="allocate",
        data={"cpu_count": "3", "tags": "juju-gpu", "agent_name": "model-7"},
    )
    assert code == 200 and got["system_id"] == b and got["tag_names"] == ["juju-gpu"]
    code, mine = api.call("GET", "machines/?agent_name=model-7")
    assert [m["system_id"] for m in mine] == [b]
    code, mine = api.call("GET", f"machines/?id={a}&id={b}")
    assert sorted(m["system_id"] for m in mine) == sorted([a, b])
    # 409: nothing left that matches; dry_run changes nothing
    assert api.call("POST", "machines/", op="allocate", data={"system_id": b})[0] == 409
    code, dry = api.call(
        "POST", "machines/", op="allocate", data={"dry_run": "true", "system_id": a}
    )
    assert code == 200 and dry["system_id"] == a and dry["status_name"] == "Ready"

    # deploy (user_data base64), owner data, power query
    code, deployed = api.call(
        "POST",
        f"machines/{b}/",
        op="deploy",
        data={"distro_series": "bookworm", "user_data": "I2Nsb3VkLWNvbmZpZwo="},
    )
    assert code == 200 and deployed["status_name"] == "Deploying"
    assert db_rows(appliance, "SELECT user_data FROM nodes WHERE system_id=?", b) == [
        (b"#cloud-config\n",)
    ]
    code, body = api.call("POST", f"machines/{b}/", op="set_owner_data", data={"juju": "x"})
    assert code == 200 and body["owner_data"] == {"juju": "x"}
    code, state = api.call("GET", f"machines/{b}/", op="query_power_state")
    assert (code, state) == (200, {"state": "unknown"})
    # 409 naming the current state: a DEPLOYING machine cannot be commissioned
    code, text = api.call("POST", f"machines/{b}/", op="commission", data={})
    assert code == 409 and "Deploying" in text

    # bulk release: an unknown id is 400 and releases nothing
    code, body = api.call("POST", "machines/", op="release", data={"machines": [b, "nosuch"]})
    assert code == 400 and "nosuch" in body["machines"][0]
    assert db_rows(appliance, "SELECT status FROM nodes WHERE system_id=?", b) == [(9,)]
    code, released = api.call(
        "POST",
        "machines/",
        op="release",
        data={"machines": [a, b], "comment": "Released by Juju MAAS provider"},
    )
    assert code == 200 and sorted(released) == sorted([a, b])
    code, machine = api.call("GET", f"machines/{b}/")
    assert machine["status_name"] == "Ready" and machine["owner_data"] == {}
    assert api.call("GET", "machines/nosuch/")[0] == 404


def test_anonymous_create_and_update_power(appliance, client):
    host, api, _ = client
    code, made = api.call(
        "POST",
        "machines/",
        data={
            "architecture": "amd64/generic",
            "mac_addresses": ["52:54:00:dd:00:01"],
            "hostname": "rack1-n1",
            "power_type": "manual",
        },
        auth=False,
    )
    assert code == 200, made
    assert (made["hostname"], made["status_name"], made["power_type"]) == (
        "rack1-n1",
        "New",
        "manual",
    )
    # the same MAC again: 400 naming the field, no second node
    code, body = api.call(
        "POST", "machines/", data={"mac_addresses": "52:54:00:dd:00:01"}, auth=False
    )
    assert code == 400 and list(body) == ["mac_addresses"]
    code, body = api.call(
        "POST", "machines/", data={"mac_addresses": "nope", "hostname": "x"}, auth=False
    )
    assert code == 400 and list(body) == ["mac_addresses"]
    code, same = api.call("GET", "machines/?mac_address=52:54:00:dd:00:01")
    assert code == 200 and [m["system_id"] for m in same] == [made["system_id"]]
    assert db_rows(appliance, "SELECT count(*) FROM nodes WHERE hostname = 'x'") == [(0,)]
    sid = made["system_id"]
    code, body = api.call("PUT", f"machines/{sid}/", data={"power_type": "nosuch"})
    assert code == 400 and list(body) == ["power_type"]
    code, body = api.call("PUT", f"machines/{sid}/", data={"hostname": "rack1-n2"})
    assert code == 200 and body["hostname"] == "rack1-n2"


def test_node_callbacks_need_the_token_and_failures_fail_commissioning(appliance, client):
    host, api, _ = client
    base = appliance.http_base
    node = enlist(host, base, "52:54:00:ee:00:01")
    sid = node["system_id"]
    meta = f"{base}/metadata/{sid}/commissioning"
    good = f"Authorization: Bearer {node['token']}"
    # not commissioning yet: 409, even with the right token
    assert curl_json(host, "POST", f"{meta}/done", b"", [good])[0] == 409
    assert api.call("POST", f"machines/{sid}/", op="commission", data={})[0] == 200
    # wrong or missing token: 401, and the same for an unknown node
    assert curl_json(host, "POST", f"{meta}/done", b"", ["Authorization: Bearer x"])[0] == 401
    assert curl_json(host, "POST", f"{meta}/done", b"")[0] == 401
    assert curl_json(host, "GET", f"{base}/metadata/nosuch/commissioning/scripts")[0] == 401
    # a bad inventory is 400 naming the field, and stores nothing
    bad = json.loads(inventory("52:54:00:ee:00:01"))
    bad["nics"][0]["speed_mbps"] = "fast"
    code, body = curl_json(host, "POST", f"{meta}/inventory", json.dumps(bad).encode(), [good])
    assert code == 400 and body["field"] == "nics[0].speed_mbps"
    code, names = curl_json(host, "GET", f"{meta}/scripts", None, [good])
    assert code == 200 and "10-block-devices" in names.split()
    code, _ = curl_json(host, "POST", f"{meta}/inventory", inventory("52:54:00:ee:00:01"), [good])
    assert code == 200
    code, _ = curl_json(
        host, "POST", f"{meta}/results/10-block-devices?exit=3", b"smartctl: disk on fire", [good]
    )
    assert code == 200
    code, done = curl_json(host, "POST", f"{meta}/done", b"", [good])
    assert code == 200 and done["status"] == "Failed commissioning"
    assert "10-block-devices exited 3: smartctl: disk on fire" in done["message"]
    assert "20-network-links did not report" in done["message"]
    code, machine = api.call("GET", f"machines/{sid}/")
    assert machine["status_name"] == "Failed commissioning"
    assert "disk on fire" in machine["status_message"]
