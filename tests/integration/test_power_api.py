"""Power through the running appliance's MAAS API: parameters checked on save with the
field named, secrets never shown, and a BMC that cannot be reached gives a clear,
bounded power error that marks the node (the appliance's power queue records it)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from netboot.lab.appliance import LabAppliance
from netboot.lab.netns import LabNetwork
from tests.conftest import require_root
from tests.integration.maas_helpers import MaasCurl

SECRET = "sup3r-secret-pw"


@pytest.fixture(scope="module")
def appliance(tmp_path_factory) -> Iterator[LabAppliance]:
    """One lab appliance for this module, with short power deadlines (5 s per BMC call,
    2 attempts) so an unreachable BMC fails within the API client's patience."""
    require_root()
    workdir = tmp_path_factory.mktemp("power-api")
    boot = workdir / "boot"
    boot.mkdir()
    for name in ("undionly.kpxe", "snponly.efi", "vmlinuz", "enlist.initrd"):
        (boot / name).write_bytes(b"\0" * 4096)
    with LabNetwork(prefix="nbpow") as lab:
        app = LabAppliance(lab, workdir / "appliance", boot)
        with open(app.config_path, "a") as config:
            config.write("\n[power]\ntimeout = 5\nattempts = 2\nretry_delay = 1\n")
        app.start()
        try:
            app.wait_ready(timeout=90)  # generous: CI boxes can be heavily loaded
            yield app
        finally:
            app.stop()


@pytest.fixture(scope="module")
def api(appliance: LabAppliance) -> MaasCurl:
    key = appliance.netboot("apikey", "create", "--user", "admin")
    assert key.returncode == 0, key.stderr
    host = appliance.lab.add_host("10.66.0.51/24")
    return MaasCurl(host, appliance.http_base, key.stdout.strip())


def new_machine(api: MaasCurl, mac: str) -> str:
    code, made = api.call(
        "POST", "machines/", data={"mac_addresses": [mac], "power_type": "manual"}, auth=False
    )
    assert code == 200, made
    return made["system_id"]


def closed_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_bad_power_parameters_are_refused_naming_the_field(api):
    sid = new_machine(api, "52:54:00:dd:08:01")
    good = {
        "power_type": "ipmi",
        "power_parameters_power_address": "10.66.0.200",
        "power_parameters_power_user": "admin",
        "power_parameters_power_pass": SECRET,
    }
    for field, value in (
        ("power_parameters_power_address", "10.66.0.300"),
        ("power_parameters_power_user", "x" * 17),
        ("power_parameters_power_pass", "y" * 21),
    ):
        code, body = api.call("PUT", f"machines/{sid}/", data={**good, field: value})
        assert code == 400 and list(body) == [field], body
    code, body = api.call(
        "PUT", f"machines/{sid}/", data={k: v for k, v in good.items() if "pass" not in k}
    )
    assert code == 400 and list(body) == ["power_parameters_power_pass"]
    code, body = api.call("PUT", f"machines/{sid}/", data=good)
    assert code == 200 and body["power_type"] == "ipmi"
    for path in (f"machines/{sid}/", "machines/"):
        code, text = api.call("GET", path)
        assert code == 200 and SECRET not in str(text)


def test_an_unreachable_bmc_is_a_bounded_clear_error_that_marks_the_node(api):
    sid = new_machine(api, "52:54:00:dd:08:02")
    # Inside the appliance's namespace nothing listens on this loopback UDP port.
    code, body = api.call(
        "PUT",
        f"machines/{sid}/",
        data={
            "power_type": "ipmi",
            "power_parameters_power_address": f"127.0.0.1:{closed_udp_port()}",
            "power_parameters_power_user": "admin",
            "power_parameters_power_pass": SECRET,
        },
    )
    assert code == 200, body
    start = time.monotonic()
    code, text = api.call("POST", f"machines/{sid}/", op="power_on")
    seconds = time.monotonic() - start
    assert code == 503, text
    assert "did not answer" in str(text) or "no answer" in str(text)
    code, machine = api.call("GET", f"machines/{sid}/")
    assert machine["power_state"] == "error"
    print(f"\nunreachable BMC: 503 after {seconds:.1f} s")
