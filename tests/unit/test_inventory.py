"""Enlistment bodies: the documented shape parses; bad input names the field."""

import json

import pytest

from netboot.nodes.inventory import InvalidReport, parse_enlist_body

BODY = {
    "boot_mac": "52-54-00-AA-BB-01",
    "interfaces": [
        {"name": "eth0", "mac": "52:54:00:aa:bb:01", "ipv4": "10.66.0.100", "driver": "virtio_net"},
        {"name": "eth1", "mac": "52:54:00:aa:bb:02", "ipv4": None, "driver": None},
    ],
    "dmi": {
        "product_uuid": "00112233-4455-6677-8899-AABBCCDDEEFF",
        "sys_vendor": "Acme",
        "product_name": 'Rack "1"',
        "product_serial": "S1",
    },
    "cpu": {"count": 2, "model": "QEMU Virtual CPU"},
    "memory": {"total_mib": 512, "memtotal_kib": 480000},
    "disks": [{"name": "vda", "size_bytes": 2147483648, "model": "", "serial": ""}],
    "kernel_cmdline": "console=ttyS0",
}


def parse(body) -> object:
    return parse_enlist_body(json.dumps(body).encode())


def test_full_body_parses_and_normalises():
    r = parse(BODY)
    assert r.boot_mac == "52:54:00:aa:bb:01"
    assert r.macs == ("52:54:00:aa:bb:01", "52:54:00:aa:bb:02")
    assert r.uuid == "00112233-4455-6677-8899-aabbccddeeff"
    assert (r.vendor, r.product, r.serial) == ("Acme", 'Rack "1"', "S1")
    assert (r.cpu_count, r.memory_mib) == (2, 512)
    assert r.disks[0].size_bytes == 2147483648


def test_boot_mac_defaults_to_first_interface():
    body = dict(BODY, boot_mac=None)
    assert parse(body).boot_mac == "52:54:00:aa:bb:01"


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda b: b.update(boot_mac="zz:zz"), "boot_mac"),
        (lambda b: b.update(cpu={"count": "2"}), "cpu.count"),
        (lambda b: b.update(cpu={"count": 0}), "cpu.count"),
        (lambda b: b.update(memory={}), "memory.total_mib"),
        (lambda b: b.update(disks=[{"name": "vda", "size_bytes": -1}]), "disks[0].size_bytes"),
        (lambda b: b.update(disks="vda"), "disks"),
        (lambda b: b.update(interfaces=[{"mac": 5}]), "interfaces[0].mac"),
        (lambda b: b.update(dmi={"product_uuid": "nope"}), "dmi.product_uuid"),
        (lambda b: b.update(dmi={"sys_vendor": 7}), "dmi.sys_vendor"),
        (lambda b: b.update(boot_mac=None, interfaces=[]), "boot_mac"),
    ],
)
def test_bad_field_is_named(mutate, field):
    body = json.loads(json.dumps(BODY))
    mutate(body)
    with pytest.raises(InvalidReport) as err:
        parse(body)
    assert err.value.field == field


@pytest.mark.parametrize("raw", [b"", b"{", b"[]", b"null", b"\xff\xfe", b"1" * (2 << 20)])
def test_garbage_body_is_rejected(raw):
    with pytest.raises(InvalidReport):
        parse_enlist_body(raw)
