"""DHCP decisions (RFC 2131 4.3): which address, when to NAK, when to stay silent."""

from ipaddress import IPv4Address, IPv4Network

from netboot.config import DHCPConfig
from netboot.dhcp.facts import facts_from_packet
from netboot.dhcp.policy import (
    Ack,
    Drop,
    InformAck,
    LeaseState,
    Nak,
    Offer,
    Release,
    decide,
    reply_options,
)
from netboot.store.models import Lease
from tests.unit.fixtures_dhcp import packet

SERVER = IPv4Address("10.0.0.1")
CFG = DHCPConfig(
    interfaces=("br0",),
    subnet=IPv4Network("10.0.0.0/24"),
    range_start=IPv4Address("10.0.0.10"),
    range_end=IPv4Address("10.0.0.12"),
    lease_seconds=600,
    router=None,
    dns_servers=(SERVER,),
    domain="maas.lan",
)
MAC = "52:54:00:12:34:56"
EMPTY = LeaseState(own=None, held=frozenset())


def ip(text: str) -> IPv4Address:
    return IPv4Address(text)


def facts(mtype: int, *opts: tuple[int, bytes], **fields):
    return facts_from_packet(packet(((53, bytes([mtype])), *opts), mac=MAC, **fields))


def lease(addr: str, expires: float = 1000.0) -> Lease:
    return Lease(mac=MAC, ip=ip(addr), expires=expires, hostname="")


def test_discover_offers_first_free_address():
    held = LeaseState(own=None, held={ip("10.0.0.10")})
    assert decide(facts(1), CFG, SERVER, held, 0) == Offer(ip("10.0.0.11"), 600)


def test_offer_reuses_previous_address_for_same_mac_even_if_expired():
    state = LeaseState(own=lease("10.0.0.12", expires=1.0), held=frozenset())
    assert decide(facts(1), CFG, SERVER, state, 500) == Offer(ip("10.0.0.12"), 600)


def test_discover_honours_requested_address_when_free():
    assert decide(facts(1, (50, bytes([10, 0, 0, 11]))), CFG, SERVER, EMPTY, 0).ip == ip(
        "10.0.0.11"
    )


def test_discover_ignores_requested_address_outside_range():
    assert decide(facts(1, (50, bytes([10, 0, 0, 99]))), CFG, SERVER, EMPTY, 0).ip == ip(
        "10.0.0.10"
    )


def test_full_pool_drops_discover():
    full = LeaseState(own=None, held={ip("10.0.0.10"), ip("10.0.0.11"), ip("10.0.0.12")})
    assert isinstance(decide(facts(1), CFG, SERVER, full, 0), Drop)


def test_request_selecting_us_is_acked():
    f = facts(3, (54, SERVER.packed), (50, bytes([10, 0, 0, 11])))
    assert decide(f, CFG, SERVER, EMPTY, 0) == Ack(ip("10.0.0.11"), 600)


def test_request_selecting_another_server_is_silently_dropped():
    f = facts(3, (54, bytes([10, 0, 0, 2])), (50, bytes([10, 0, 0, 11])))
    assert isinstance(decide(f, CFG, SERVER, EMPTY, 0), Drop)


def test_request_for_address_held_by_another_client_is_naked():
    f = facts(3, (54, SERVER.packed), (50, bytes([10, 0, 0, 11])))
    state = LeaseState(own=None, held={ip("10.0.0.11")})
    assert isinstance(decide(f, CFG, SERVER, state, 0), Nak)


def test_init_reboot_for_foreign_address_is_naked():
    assert isinstance(decide(facts(3, (50, bytes([192, 168, 1, 5]))), CFG, SERVER, EMPTY, 0), Nak)


def test_renewing_uses_ciaddr():
    state = LeaseState(own=lease("10.0.0.12"), held={ip("10.0.0.12")})
    f = facts(3, ciaddr=ip("10.0.0.12"))
    assert decide(f, CFG, SERVER, state, 0) == Ack(ip("10.0.0.12"), 600)


def test_release_of_own_address_and_of_someone_elses():
    state = LeaseState(own=lease("10.0.0.12"), held={ip("10.0.0.12")})
    assert decide(facts(7, ciaddr=ip("10.0.0.12")), CFG, SERVER, state, 0) == Release(
        ip("10.0.0.12")
    )
    assert isinstance(decide(facts(7, ciaddr=ip("10.0.0.11")), CFG, SERVER, state, 0), Drop)


def test_inform_gets_options_only():
    assert decide(facts(8, ciaddr=ip("10.0.0.50")), CFG, SERVER, EMPTY, 0) == InformAck()


def test_server_message_types_are_dropped():
    for mtype in (2, 5, 6):
        assert isinstance(decide(facts(mtype), CFG, SERVER, EMPTY, 0), Drop)


def test_reply_options_carry_server_id_lease_times_dns_and_domain():
    opts = dict(reply_options(facts(1), CFG, SERVER, 600, None))
    assert opts[54] == SERVER and opts[51] == 600 and opts[58] == 300 and opts[59] == 525
    assert opts[6] == [SERVER] and opts[15] == "maas.lan"
    assert 67 not in opts and 3 not in opts
