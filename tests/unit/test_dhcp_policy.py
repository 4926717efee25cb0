"""DHCP decisions (RFC 2131 §4.3): which address, when to NAK, when to stay silent."""

from ipaddress import IPv4Address

import pytest

from netboot.dhcp.facts import facts_from_packet
from netboot.dhcp.leases import Binding, LeaseTable, State, client_key
from netboot.dhcp.policy import (
    Ack,
    Decline,
    Drop,
    InformAck,
    Nak,
    Offer,
    ProxyAck,
    ProxyOffer,
    Release,
    Request,
    decide,
)
from netboot.dhcp.settings import parse_dhcp
from netboot.dhcp.subnets import SubnetMap
from tests.unit.fixtures_dhcp import packet

SERVER = IPv4Address("10.0.0.1")
MAC = "52:54:00:12:34:56"
KEY = client_key(None, bytes.fromhex("525400123456") + bytes(10), 6)
OTHER = b"\x01" + bytes.fromhex("aabbccddeeff")
RAW = {
    "interfaces": ["br0"],
    "subnet": "10.0.0.0/24",
    "range_start": "10.0.0.10",
    "range_end": "10.0.0.12",
    "lease_seconds": 600,
    "boot_lease_seconds": 30,
}


def ip(text: str) -> int:
    return int(IPv4Address(text))


def setup(**overrides):
    cfg = parse_dhcp({**RAW, **overrides}, SERVER)
    table = LeaseTable()
    subnets = SubnetMap(cfg.subnets, table)
    return cfg, table, subnets


def ask(mtype: int, *opts, state=None, boot=False, pxe_port=False, now=100.0, **fields):
    cfg, table, subnets = state or setup()
    facts = facts_from_packet(packet(((53, bytes([mtype])), *opts), mac=MAC, **fields))
    return decide(
        Request(
            facts=facts,
            key=KEY,
            subnet=subnets.subnets[0],
            table=table,
            cfg=cfg,
            now=now,
            boot_client=boot,
            our_ids=frozenset({int(SERVER)}),
            pxe_port=pxe_port,
        )
    )


def bind(table: LeaseTable, addr: str, key=KEY, state=State.ACTIVE, expires=1000.0) -> None:
    table.put(Binding(key, MAC if key == KEY else "aa:bb:cc:dd:ee:ff", ip(addr), state, expires))


def test_discover_offers_first_free_address_with_os_lease_time():
    st = setup()
    bind(st[1], "10.0.0.10", key=OTHER)
    assert ask(1, state=st) == Offer(ip("10.0.0.11"), 600)


def test_boot_clients_get_the_short_pxe_lease():
    assert ask(1, boot=True) == Offer(ip("10.0.0.10"), 30)


def test_offer_reuses_previous_address_for_same_client_even_if_expired():
    st = setup()
    bind(st[1], "10.0.0.12", state=State.EXPIRED, expires=1.0)
    assert ask(1, state=st) == Offer(ip("10.0.0.12"), 600)


def test_offer_is_stable_while_held():
    st = setup()
    st[1].hold_offer(ip("10.0.0.11"), KEY, 200.0)
    assert ask(1, state=st) == Offer(ip("10.0.0.11"), 600)


def test_addresses_offered_to_others_are_not_offered_again():
    st = setup()
    st[1].hold_offer(ip("10.0.0.10"), OTHER, 200.0)
    assert ask(1, state=st).ip == ip("10.0.0.11")


def test_discover_honours_requested_address_when_free_and_ignores_foreign_one():
    assert ask(1, (50, bytes([10, 0, 0, 11]))).ip == ip("10.0.0.11")
    assert ask(1, (50, bytes([10, 0, 0, 99]))).ip == ip("10.0.0.10")


def test_full_pool_drops_discover():
    st = setup()
    for n, addr in enumerate(("10.0.0.10", "10.0.0.11", "10.0.0.12")):
        bind(st[1], addr, key=bytes([n]))
    assert isinstance(ask(1, state=st), Drop)


def test_expired_addresses_are_reused_when_no_fresh_one_is_left():
    st = setup()
    for n, addr in enumerate(("10.0.0.10", "10.0.0.11", "10.0.0.12")):
        bind(st[1], addr, key=bytes([n]))
    st[1].set_state(bytes([1]), State.EXPIRED, 50.0)
    assert ask(1, state=st) == Offer(ip("10.0.0.11"), 600)


def test_reserved_ranges_and_host_reservations_are_not_in_the_dynamic_pool():
    st = setup(
        reserved=[["10.0.0.10", "10.0.0.10"]],
        hosts=[{"mac": "aa:bb:cc:dd:ee:ff", "ip": "10.0.0.11"}],
    )
    assert ask(1, state=st).ip == ip("10.0.0.12")


def test_host_reservation_by_mac_gets_its_address_even_outside_ranges():
    st = setup(hosts=[{"mac": MAC, "ip": "10.0.0.50"}])
    assert ask(1, state=st) == Offer(ip("10.0.0.50"), 600)
    assert ask(3, (54, SERVER.packed), (50, bytes([10, 0, 0, 50])), state=st) == Ack(
        ip("10.0.0.50"), 600
    )
    assert isinstance(ask(3, (50, bytes([10, 0, 0, 10])), state=st), Nak)


def test_host_reservation_by_relay_circuit_id():
    st = setup(hosts=[{"circuit_id": "swp7", "ip": "10.0.0.60"}])
    relay = (82, b"\x01\x04swp7\x02\x03sw1")
    assert ask(1, relay, state=st).ip == ip("10.0.0.60")


def test_selecting_us_is_acked_and_selecting_another_server_is_silent():
    assert ask(3, (54, SERVER.packed), (50, bytes([10, 0, 0, 11]))) == Ack(ip("10.0.0.11"), 600)
    assert isinstance(ask(3, (54, bytes([10, 0, 0, 2])), (50, bytes([10, 0, 0, 11]))), Drop)


def test_request_for_address_held_by_another_client_is_naked():
    st = setup()
    bind(st[1], "10.0.0.11", key=OTHER)
    assert isinstance(ask(3, (54, SERVER.packed), (50, bytes([10, 0, 0, 11])), state=st), Nak)


def test_init_reboot_on_a_foreign_network_is_naked_when_authoritative_else_silent():
    assert isinstance(ask(3, (50, bytes([192, 168, 1, 5]))), Nak)
    st = setup(authoritative=False)
    assert isinstance(ask(3, (50, bytes([192, 168, 1, 5])), state=st), Drop)


def test_init_reboot_for_another_address_than_the_clients_lease_is_naked():
    st = setup()
    bind(st[1], "10.0.0.12")
    assert isinstance(ask(3, (50, bytes([10, 0, 0, 11])), state=st), Nak)
    assert ask(3, (50, bytes([10, 0, 0, 12])), state=st) == Ack(ip("10.0.0.12"), 600)


def test_init_reboot_of_an_unknown_client_is_silent_when_not_authoritative():
    st = setup(authoritative=False)
    assert isinstance(ask(3, (50, bytes([10, 0, 0, 11])), state=st), Drop)


def test_renewing_and_rebinding_use_ciaddr():
    st = setup()
    bind(st[1], "10.0.0.12")
    assert ask(3, state=st, ciaddr=IPv4Address("10.0.0.12")) == Ack(ip("10.0.0.12"), 600)
    bind(st[1], "10.0.0.11", key=OTHER)
    assert isinstance(ask(3, state=st, ciaddr=IPv4Address("10.0.0.11")), Nak)


def test_release_of_own_address_and_of_someone_elses():
    st = setup()
    bind(st[1], "10.0.0.12")
    assert ask(7, state=st, ciaddr=IPv4Address("10.0.0.12")) == Release(ip("10.0.0.12"))
    assert isinstance(ask(7, state=st, ciaddr=IPv4Address("10.0.0.11")), Drop)


def test_decline_of_the_offered_or_leased_address_only():
    st = setup()
    st[1].hold_offer(ip("10.0.0.11"), KEY, 200.0)
    assert ask(4, (54, SERVER.packed), (50, bytes([10, 0, 0, 11])), state=st) == Decline(
        ip("10.0.0.11")
    )
    assert isinstance(ask(4, (54, SERVER.packed), (50, bytes([10, 0, 0, 12])), state=st), Drop)


def test_declined_address_is_not_offered():
    st = setup()
    st[1].put(Binding(b"q", "x", ip("10.0.0.10"), State.DECLINED, 1000.0))
    assert ask(1, state=st).ip == ip("10.0.0.11")


def test_inform_gets_options_only():
    assert ask(8, ciaddr=IPv4Address("10.0.0.50")) == InformAck()


@pytest.mark.parametrize("mtype", [2, 5, 6])
def test_server_message_types_are_dropped(mtype):
    assert isinstance(ask(mtype), Drop)


def test_proxy_mode_offers_boot_options_to_pxe_clients_only():
    st = setup(mode="proxy")
    assert ask(1, state=st, boot=True) == ProxyOffer()
    assert isinstance(ask(1, state=st, boot=False), Drop)
    assert ask(3, state=st, boot=True, pxe_port=True) == ProxyAck()
    assert isinstance(ask(3, state=st, boot=True), Drop)  # the address server ACKs


def test_an_offered_address_found_in_use_is_not_offered_again():
    st = setup()
    st[1].hold_offer(ip("10.0.0.10"), KEY, 200.0)
    st[1].put(Binding(b"quarantine", "aa:bb:cc:dd:ee:ff", ip("10.0.0.10"), State.CONFLICT, 900.0))
    assert st[1].offer_of(KEY, 100.0) is None
    assert ask(1, state=st).ip == ip("10.0.0.11")


def test_a_store_pin_reserves_the_address_for_its_mac_and_out_of_the_pool():
    from netboot.dhcp.settings import HostReservation

    st = setup()
    st[2].set_pins([HostReservation(ip=IPv4Address("10.0.0.10"), mac="aa:bb:cc:dd:ee:ff")])
    assert ask(1, state=st).ip == ip("10.0.0.11")  # not for us: out of the dynamic pool
    st[2].set_pins([HostReservation(ip=IPv4Address("10.0.0.12"), mac=MAC, hostname="pinned")])
    assert ask(1, state=st) == Offer(ip("10.0.0.12"), 600)
    assert st[2].subnets[0].pool.contains(ip("10.0.0.10"))  # the old pin is gone again
    assert not st[2].subnets[0].pool.contains(ip("10.0.0.12"))


def test_domain_search_defaults_to_the_node_domain_and_can_be_turned_off():
    from netboot.dhcp.answer import SubnetOptions
    from netboot.dhcp.options import decode

    default = SubnetOptions.of(parse_dhcp({**RAW, "domain": "rack.lan"}, SERVER).subnets[0])
    assert decode(119, default.static[119]) == ("rack.lan",)
    off = SubnetOptions.of(parse_dhcp({**RAW, "domain_search": []}, SERVER).subnets[0])
    assert 119 not in off.static
