"""Twisted adapter for DHCP: sockets, logging and counters around the pure policy.

One UDP socket per configured interface, each bound to port 67 with SO_BINDTODEVICE, so
netboot only ever hears and answers DHCP on interfaces the operator named. Flow per
datagram: decode -> facts -> policy -> durable lease commit -> encode -> send.
"""

from __future__ import annotations

import socket
from collections import Counter
from collections.abc import Callable
from ipaddress import IPv4Address

from twisted.internet.interfaces import IReactorSocket
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger

from netboot.bootconfig.methods import BootAnswer, choose_boot
from netboot.config import DHCPConfig
from netboot.dhcp import options as dhcp_options
from netboot.dhcp.codec import MalformedPacket, MessageType, Packet, make_reply
from netboot.dhcp.facts import ClientFacts, facts_from_packet
from netboot.dhcp.offers import OfferBook
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
from netboot.store.sqlite import LeaseConflict, SQLiteStore

SERVER_PORT = 67
CLIENT_PORT = 68
BOOTREQUEST = 1

log = Logger(namespace="netboot.dhcp")


class DHCPServerProtocol(DatagramProtocol):
    def __init__(
        self,
        interface: str,
        cfg: DHCPConfig,
        server_address: IPv4Address,
        http_base: str,
        store: SQLiteStore,
        clock: Callable[[], float],
    ) -> None:
        self.interface = interface
        self.cfg = cfg
        self.server_address = server_address
        self.http_base = http_base
        self.store = store
        self.clock = clock
        self.stats: Counter[str] = Counter()
        self.offers = OfferBook()

    def datagramReceived(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            packet = Packet.from_bytes(data)
        except MalformedPacket as exc:
            self.stats["dropped_malformed"] += 1
            log.info(
                "drop malformed DHCP from {peer} on {iface}: {reason}",
                peer=addr[0],
                iface=self.interface,
                reason=str(exc),
            )
            return
        if packet.op != BOOTREQUEST:
            self.stats["dropped_not_request"] += 1
            return
        try:
            self._handle(packet, addr)
        except Exception:
            # A bug must cost one answer, never the server.
            self.stats["errors"] += 1
            log.failure("error handling DHCP from {mac}", mac=packet.mac)

    def _handle(self, packet: Packet, addr: tuple[str, int]) -> None:
        facts = facts_from_packet(packet)
        now = self.clock()
        own = self.store.lease_for_mac(facts.mac)
        held = self.store.held_ips(now) | self.offers.held_for_others(facts.mac, now)
        state = LeaseState(own=own, held=held)
        decision = decide(facts, self.cfg, self.server_address, state, now)
        self.stats[type(decision).__name__.lower()] += 1
        mtype = _type_name(facts)

        if isinstance(decision, Drop):
            log.info(
                "{mtype} from {mac} dropped: {reason}",
                mtype=mtype,
                mac=facts.mac,
                reason=decision.reason,
            )
            return
        if isinstance(decision, Release):
            self.store.commit_lease(facts.mac, decision.ip, now, own.hostname if own else "", now)
            log.info("RELEASE {ip} by {mac}", ip=decision.ip, mac=facts.mac)
            return
        if isinstance(decision, Nak):
            self._nak(packet, facts, decision.reason)
            return

        boot = choose_boot(facts, self.http_base)
        if isinstance(decision, InformAck):
            opts = reply_options(facts, self.cfg, self.server_address, None, boot)
            reply_type, yiaddr = MessageType.ACK, IPv4Address(0)
        else:
            if isinstance(decision, Ack):
                node = self.store.node_by_mac(facts.mac)
                hostname = node.hostname if node else (facts.hostname or "")
                try:
                    # Durable before the ACK leaves: a crash after this loses nothing.
                    self.store.commit_lease(
                        facts.mac, decision.ip, now + decision.lease_seconds, hostname, now
                    )
                except LeaseConflict as exc:
                    self._nak(packet, facts, str(exc))
                    return
                self.offers.forget(decision.ip)
            else:
                self.offers.reserve(decision.ip, facts.mac, now)
            opts = reply_options(facts, self.cfg, self.server_address, decision.lease_seconds, boot)
            reply_type = MessageType.OFFER if isinstance(decision, Offer) else MessageType.ACK
            yiaddr = decision.ip
        reply = make_reply(
            packet,
            message_type=reply_type,
            yiaddr=yiaddr,
            siaddr=self.server_address if boot else IPv4Address(0),
            options=self._encode(opts),
            file=_file_field(boot),
        )
        self._send(packet, reply)
        log.info(
            "{reply} {ip} to {mac} (arch {arch}, {vc}) boot={file}",
            reply=reply_type.name,
            ip=yiaddr,
            mac=facts.mac,
            arch=facts.arch,
            vc=facts.vendor_class or "-",
            file=boot.filename if boot else "-",
        )

    def _nak(self, packet: Packet, facts: ClientFacts, reason: str) -> None:
        nak = make_reply(
            packet,
            message_type=MessageType.NAK,
            yiaddr=IPv4Address(0),
            siaddr=IPv4Address(0),
            options=self._encode([(54, self.server_address)]),
        )
        self._send(packet, nak)
        log.info("NAK to {mac}: {reason}", mac=facts.mac, reason=reason)

    def _encode(self, opts: list[tuple[int, object]]) -> list[tuple[int, bytes]]:
        return [(code, dhcp_options.encode(code, value)) for code, value in opts]

    def _send(self, request: Packet, reply: Packet) -> None:
        # RFC 2131 4.1: relayed -> relay agent port 67; renewing client (ciaddr) ->
        # unicast; otherwise broadcast (unicast to an unconfigured client needs an ARP
        # entry, added later with pyroute2).
        if int(request.giaddr):
            dest = (str(request.giaddr), SERVER_PORT)
        elif int(request.ciaddr):
            dest = (str(request.ciaddr), CLIENT_PORT)
        else:
            dest = ("255.255.255.255", CLIENT_PORT)
        assert self.transport is not None
        self.transport.write(reply.to_bytes(), dest)


def _type_name(facts: ClientFacts) -> str:
    try:
        return MessageType(facts.message_type).name
    except ValueError:
        return f"type-{facts.message_type}"


def _file_field(boot: BootAnswer | None) -> bytes:
    if boot is None or not boot.in_file_field:
        return b""
    return boot.filename.encode()[:127]


def bound_dhcp_socket(interface: str, port: int = SERVER_PORT) -> socket.socket:
    """A UDP socket on 0.0.0.0:port that only sees ``interface`` (SO_BINDTODEVICE)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, interface.encode() + b"\0")
        sock.bind(("0.0.0.0", port))
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise OSError(
            exc.errno, f"cannot serve DHCP on interface {interface!r}: {exc.strerror}"
        ) from None
    return sock


def listen_dhcp(reactor: IReactorSocket, protocol: DHCPServerProtocol, port: int = SERVER_PORT):
    sock = bound_dhcp_socket(protocol.interface, port)
    try:
        return reactor.adoptDatagramPort(sock.fileno(), socket.AF_INET, protocol)
    finally:
        # adoptDatagramPort dup()s the descriptor.
        sock.close()
