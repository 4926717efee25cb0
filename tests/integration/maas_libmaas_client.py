"""Drive netboot's MAAS API with the real python-libmaas 0.6.8 client.

Run inside a lab client namespace by tests/integration/test_maas_api.py:

    python maas_libmaas_client.py URL APIKEY

Two nodes enlist (plain HTTP, as the enlistment image does), get commissioned through
libmaas, report back through the node callbacks with their tokens, then libmaas logs in,
lists, allocates, deploys, sets owner data and releases. Prints one JSON object of
observations on stdout for the test to assert on.
"""

from __future__ import annotations

import json
import sys
import urllib.request

from maas.client import connect
from maas.client.viscera.machines import MachineNotFound


def http(
    method: str, url: str, body: bytes = b"", headers: dict | None = None
) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body or None, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=20) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def enlist(base: str, mac: str, cpus: int, mem: int) -> dict:
    body = {
        "boot_mac": mac,
        "interfaces": [{"name": "eth0", "mac": mac}],
        "dmi": {"sys_vendor": "Acme", "product_name": "Lab"},
        "cpu": {"count": cpus, "model": "lab cpu"},
        "memory": {"total_mib": mem},
        "disks": [{"name": "vda", "size_bytes": 8 << 30}],
    }
    code, answer = http(
        "POST",
        f"{base}/api/enlist",
        json.dumps(body).encode(),
        {"content-type": "application/json"},
    )
    assert code == 201, (code, answer)
    return json.loads(answer)


def report_commissioned(base: str, node: dict, mac: str, cpus: int, mem: int) -> dict:
    auth = {"authorization": f"Bearer {node['token']}"}
    inventory = {
        "cpu": {"count": cpus, "model": "lab cpu", "flags": ["fpu", "sse2", "lm"]},
        "memory": {"total_mib": mem},
        "dmi": {"board_vendor": "Acme", "board_name": "B1", "chassis_type": "1"},
        "disks": [{"name": "vda", "size_bytes": 8 << 30, "model": "", "serial": "D1"}],
        "nics": [{"name": "eth0", "mac": mac, "driver": "virtio_net", "speed_mbps": 1000}],
        "pci": [{"slot": "0000:00:03.0", "vendor": "1af4", "device": "1000", "class": "020000"}],
    }
    sid = node["system_id"]
    code, _ = http(
        "POST",
        f"{base}/metadata/{sid}/commissioning/inventory",
        json.dumps(inventory).encode(),
        auth,
    )
    assert code == 200, code
    # Run (pretend) every operator script the appliance lists and upload its result.
    code, names = http("GET", f"{base}/metadata/{sid}/commissioning/scripts", b"", auth)
    assert code == 200, code
    for name in names.decode().split():
        url = f"{base}/metadata/{sid}/commissioning/results/{name}?exit=0"
        assert http("POST", url, b"ok\n", auth)[0] == 200
    code, answer = http("POST", f"{base}/metadata/{sid}/commissioning/done", b"", auth)
    assert code == 200, (code, answer)
    return json.loads(answer)


def main() -> None:
    base, apikey = sys.argv[1], sys.argv[2]
    out: dict = {}
    small = enlist(base, "52:54:00:aa:00:01", 2, 2048)
    big = enlist(base, "52:54:00:aa:00:02", 8, 16384)

    client = connect(f"{base}/MAAS/", apikey=apikey)
    out["whoami"] = client.users.whoami().username
    mine = {small["system_id"], big["system_id"]}  # other tests' nodes may be there too
    listed = [m for m in client.machines.list() if m.system_id in mine]
    out["listed"] = sorted((m.hostname, m.status.name) for m in listed)

    for node, mac, cpus, mem in (
        (small, "52:54:00:aa:00:01", 2, 2048),
        (big, "52:54:00:aa:00:02", 8, 16384),
    ):
        machine = client.machines.get(node["system_id"])
        machine.commission()
        out.setdefault("commissioning", []).append(machine.status.name)
        out.setdefault("reported", []).append(report_commissioned(base, node, mac, cpus, mem))
    out["after_commissioning"] = sorted(
        m.status.name for m in client.machines.list() if m.system_id in mine
    )

    try:
        client.machines.allocate(cpus=64)
        out["allocate_too_big"] = "allocated?!"
    except MachineNotFound as exc:
        out["allocate_too_big"] = type(exc).__name__

    machine = client.machines.allocate(cpus=6, memory=8192, agent_name="model-uuid-1")
    out["allocated"] = {
        "system_id": machine.system_id,
        "status": machine.status.name,
        "owner": machine._data["owner"],
    }
    out["big_system_id"] = big["system_id"]

    machine.deploy(distro_series="bookworm", user_data=b"#cloud-config\nruncmd: [true]\n")
    out["deploy"] = {"status": machine.status.name, "distro_series": machine.distro_series}

    machine.owner_data = {"juju-model": "m1", "owner": "test"}
    machine.save()
    again = client.machines.get(machine.system_id)
    out["owner_data"] = again.owner_data
    out["read_status"] = again.status.name

    machine.release(comment="done with it")
    out["release"] = machine.status.name
    final = client.machines.get(machine.system_id)
    out["after_release"] = {"status": final.status.name, "owner_data": final.owner_data}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
