"""Driver parameter checks on save, secret masking, the registry, and the pure parts of
the drivers (magic packet, error wording). Real endpoints: tests/integration/."""

from __future__ import annotations

import socket

import pytest
from twisted.internet import task
from twisted.logger import formatEvent, globalLogPublisher

from netboot.power import registry
from netboot.power.base import InvalidPowerParameters, PowerError, PowerState, bmc_key
from netboot.power.manual import ManualDriver
from netboot.power.wol import WakeOnLanDriver, magic_packet


def result_of(d):
    out = []
    d.addBoth(out.append)
    return out[0]


def invalid_field(power_type, params):
    with pytest.raises(InvalidPowerParameters) as info:
        registry.validate(power_type, params)
    return info.value.field, str(info.value)


IPMI = {"power_address": "10.0.0.5", "power_user": "admin", "power_pass": "secret"}


def test_every_type_named_in_the_issue_is_registered():
    assert {"manual", "wol", "virsh", "ipmi", "redfish", "webhook", "qmp"} <= set(
        registry.power_types()
    )
    for power_type in registry.power_types():
        driver = registry.driver_for(power_type, None)
        assert driver.name == power_type
    with pytest.raises(KeyError):
        registry.driver_for("nosuch", None)


def test_unknown_type_and_unknown_or_missing_names_name_the_field():
    assert invalid_field("nosuch", {})[0] == "power_type"
    assert invalid_field("ipmi", {**IPMI, "power_colour": "red"})[0] == "power_colour"
    field, message = invalid_field("ipmi", {"power_address": "10.0.0.5", "power_user": "admin"})
    assert field == "power_pass" and "required" in message


@pytest.mark.parametrize(
    "field,value",
    [
        ("power_address", "10.0.0.300"),
        ("power_address", "bmc host"),
        ("power_address", "10.0.0.5:99999"),
        ("power_address", "[::1"),
        ("power_user", "a-user-name-longer-than-16"),
        ("power_pass", "a-password-longer-than-20-bytes"),
        ("power_pass", "tab\there"),
    ],
)
def test_ipmi_malformed_address_or_credentials_are_refused_naming_the_field(field, value):
    assert invalid_field("ipmi", {**IPMI, field: value})[0] == field


def test_ipmi_addresses_are_normalised_with_their_port():
    assert registry.validate("ipmi", IPMI)["power_address"] == "10.0.0.5:623"
    assert (
        registry.validate("ipmi", {**IPMI, "power_address": "bmc1.lab:6230"})["power_address"]
        == "bmc1.lab:6230"
    )
    assert (
        registry.validate("ipmi", {**IPMI, "power_address": "[fd00::5]:624"})["power_address"]
        == "[fd00::5]:624"
    )
    assert (
        registry.validate("ipmi", {**IPMI, "privilege_level": "operator"})["privilege_level"]
        == "OPERATOR"
    )


def test_redfish_addresses_and_flags():
    base = {"power_address": "10.0.0.7", "power_user": "root", "power_pass": "calvin"}
    assert registry.validate("redfish", base)["power_address"] == "https://10.0.0.7"
    assert invalid_field("redfish", {**base, "power_address": "ftp://10.0.0.7"})[0] == (
        "power_address"
    )
    assert invalid_field("redfish", {**base, "power_verify_ssl": "maybe"})[0] == "power_verify_ssl"
    assert registry.validate("redfish", {**base, "node_id": "/System.Embedded.1/"})["node_id"] == (
        "System.Embedded.1"
    )


def test_virsh_uri_and_domain():
    ok = {"power_address": "qemu+ssh://root@kvm1/system", "power_id": "node1"}
    assert registry.validate("virsh", ok) == ok
    assert invalid_field("virsh", {**ok, "power_address": "kvm1"})[0] == "power_address"
    assert invalid_field("virsh", {**ok, "power_address": "xen://kvm1/"})[0] == "power_address"


def test_webhook_urls_regexes_and_auth_pairs():
    ok = {"power_on_uri": "http://127.0.0.1:8080/on", "power_off_uri": "http://127.0.0.1:8080/off"}
    assert registry.validate("webhook", ok) == ok
    assert invalid_field("webhook", {**ok, "power_on_regex": "(unclosed"})[0] == "power_on_regex"
    assert invalid_field("webhook", {**ok, "power_user": "u"})[0] == "power_pass"
    assert invalid_field("webhook", {**ok, "power_query_uri": "mailto:x"})[0] == "power_query_uri"


def test_wol_mac_spellings_are_normalised_and_bad_ones_refused():
    for spelling in ("52:54:00:AB:CD:EF", "52-54-00-ab-cd-ef", "525400abcdef"):
        assert registry.validate("wol", {"mac_address": spelling})["mac_address"] == (
            "52:54:00:ab:cd:ef"
        )
    assert invalid_field("wol", {"mac_address": "52:54:00:ab:cd"})[0] == "mac_address"
    assert invalid_field("wol", {"mac_address": "52:54:00:ab:cd:ef", "interface": "a b"})[0] == (
        "interface"
    )
    assert invalid_field("wol", {"mac_address": "52:54:00:ab:cd:ef", "broadcast_ip": "x"})[0] == (
        "broadcast_ip"
    )


def test_qmp_needs_an_absolute_socket_path():
    assert invalid_field("qmp", {"power_address": "vm.sock"})[0] == "power_address"


def test_secrets_are_masked_in_listings():
    shown = registry.public_parameters("ipmi", {**IPMI, "k_g": "key"})
    assert shown["power_pass"] == "********" and shown["k_g"] == "********"
    assert shown["power_address"] == "10.0.0.5" and shown["power_user"] == "admin"
    assert registry.public_parameters("nosuch", {"a": "b"}) == {"a": "********"}


def test_bmc_key_identifies_the_endpoint_without_secrets():
    ipmi = registry.driver_for("ipmi", None)
    assert bmc_key(ipmi, IPMI) == "ipmi:10.0.0.5"
    virsh = registry.driver_for("virsh", None)
    assert bmc_key(virsh, {"power_address": "qemu:///system", "power_id": "n1"}) == (
        "virsh:qemu:///system#n1"
    )


def test_magic_packet_layout():
    packet = magic_packet("52:54:00:ab:cd:ef")
    assert len(packet) == 102
    assert packet[:6] == b"\xff" * 6
    assert packet[6:] == bytes.fromhex("525400abcdef") * 16


class RecordingSocket:
    sent: list = []

    def __init__(self, family, kind):
        self.options = {}

    def setsockopt(self, level, name, value):
        self.options[name] = value

    def sendto(self, data, address):
        RecordingSocket.sent.append((self.options.get(socket.SO_BINDTODEVICE), address, data))

    def close(self):
        pass


def test_wol_sends_on_each_provisioning_interface_unless_the_node_names_one():
    RecordingSocket.sent = []
    driver = WakeOnLanDriver(None, ("br-prov", "br-lab"), socket_factory=RecordingSocket)
    assert result_of(driver.on({"mac_address": "52:54:00:ab:cd:ef"})) is None
    devices = {d for d, _, _ in RecordingSocket.sent}
    assert devices == {b"br-prov\0", b"br-lab\0"}
    assert all(addr == ("255.255.255.255", 9) for _, addr, _ in RecordingSocket.sent)
    RecordingSocket.sent = []
    driver.on({"mac_address": "52:54:00:ab:cd:ef", "interface": "eth7"})
    assert {d for d, _, _ in RecordingSocket.sent} == {b"eth7\0"}


def test_wol_without_any_interface_or_broadcast_says_what_to_configure():
    failure = result_of(WakeOnLanDriver(None).on({"mac_address": "52:54:00:ab:cd:ef"}))
    assert failure.check(PowerError) and not failure.value.retryable
    assert "interface" in failure.getErrorMessage()


def test_wol_cannot_power_off_and_says_so():
    failure = result_of(WakeOnLanDriver(None, ("br0",)).off({"mac_address": "52:54:00:ab:cd:ef"}))
    assert failure.check(PowerError) and "by hand" in failure.getErrorMessage()
    assert result_of(WakeOnLanDriver(None).query({})) is PowerState.UNKNOWN


def test_manual_tells_the_operator_and_cannot_query():
    seen = []
    globalLogPublisher.addObserver(seen.append)
    try:
        driver = ManualDriver()
        assert result_of(driver.on({})) is None
    finally:
        globalLogPublisher.removeObserver(seen.append)
    said = [formatEvent(e) for e in seen if e.get("log_namespace") == "netboot.power.manual"]
    assert said == [
        "manual power: operator action needed: power the machine on by hand "
        "(front panel or its own BMC)"
    ]
    assert result_of(driver.query({})) is PowerState.UNKNOWN
    assert not driver.can_query


def test_check_reports_bad_parameters_without_touching_the_network():
    driver = registry.driver_for("ipmi", task.Clock())
    result = result_of(registry.check(driver, {**IPMI, "power_address": "300.1.1.1"}))
    assert not result.ok and result.state is PowerState.ERROR
    assert "power_address" in result.message


def test_check_on_a_driver_that_cannot_query_is_ok_but_unknown():
    result = result_of(registry.check(ManualDriver(), {}))
    assert result.ok and result.state is PowerState.UNKNOWN


def test_redfish_connection_errors_say_the_os_reason_not_the_whole_chain():
    from netboot.power.redfish import _connection_reason

    nested = (
        "Unable to connect to http://10.66.0.1:1/redfish/v1/. Error: HTTPConnectionPool("
        "host='10.66.0.1', port=1): Max retries exceeded with url: /redfish/v1/ (Caused by "
        "NewConnectionError('<urllib3.connection.HTTPConnection object at 0x7f>: Failed to "
        "establish a new connection: [Errno 111] Connection refused'))"
    )
    assert _connection_reason(RuntimeError(nested)) == "[Errno 111] Connection refused"
    dns = "Failed to resolve 'bmc.example' ([Errno -2] Name or service not known)"
    assert _connection_reason(RuntimeError(dns)) == "[Errno -2] Name or service not known"
    assert _connection_reason(RuntimeError("Read timed out.\nmore")) == "Read timed out."
