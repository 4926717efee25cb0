"""Replies of the DHCP controller: options, encoding, and where each datagram goes.

A mixin of DHCPServer (server.py), split out to keep each module about one job: the
controller decides and changes state; these methods turn a decision into bytes on the
wire -- options per RFC 2132 §9.8 / §9.10 (answer.py), the RFC 2131 §4.1 destination
rules (relay, ciaddr, broadcast, or unicast after a neighbour entry), NAKs and the
proxyDHCP / PXE boot server answers.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import replace
from ipaddress import IPv4Address
from typing import Any

from twisted.logger import Logger

from netboot.bootconfig.methods import BootAnswer
from netboot.dhcp.answer import SubnetOptions, build_options, fit_options, frame_options
from netboot.dhcp.codec import (
    FLAG_BROADCAST,
    MessageType,
    Packet,
    encode_reply,
    make_reply,
    to_bytes_overloaded,
)
from netboot.dhcp.facts import ClientFacts
from netboot.dhcp.policy import Ack, Offer
from netboot.dhcp.subnets import Subnet

__all__ = ["CLIENT_PORT", "SERVER_PORT", "ReplyMixin", "Send"]

SERVER_PORT = 67
CLIENT_PORT = 68
_BROADCAST = ("255.255.255.255", CLIENT_PORT)
_ZERO = IPv4Address(0)

log = Logger(namespace="netboot.dhcp")

Send = Any  # callable(data, dest) with an ``interface`` attribute (sockets._Sender)


class ReplyMixin:
    """Needs from its host: cfg, subnets, stats, neighbours, hostname_for, _options,
    _framed, _proxy_id."""

    def _reply(
        self,
        packet: Packet,
        facts: ClientFacts,
        subnet: Subnet,
        reply_type: MessageType,
        decision: Offer | Ack | None,
        boot: BootAnswer | None,
        send: Send,
        hostname: str | None = None,
    ) -> None:
        server_id = subnet.server_id
        lease = decision.lease_seconds if decision is not None else None
        if hostname is None and 12 in facts.param_request:
            hostname = self.hostname_for(facts.mac)
        file = _file_field(boot)
        yiaddr = decision.ip if decision is not None else 0
        siaddr = int(server_id) if boot else 0
        # The options depend on these facts only: most clients of a subnet send the same
        # request list, so the framed options field is built once and reused.
        key = (
            subnet.name,
            lease,
            facts.param_request,
            hostname,
            boot,
            facts.is_ipxe,
            facts.is_pxe,
            facts.relay_agent_info,
            facts.max_message_size,
        )
        framed = self._framed.get(key)
        if framed is not None:
            wire = encode_reply(packet, reply_type, yiaddr, siaddr, packet.flags, file, framed)
        else:
            opts = build_options(
                facts, self._options[subnet.name], server_id, lease, boot, hostname
            )
            framed = frame_options(opts, facts.max_message_size)
            if framed is not None:
                if len(self._framed) >= _FRAMED_CACHE:
                    self._framed.clear()
                self._framed[key] = framed
            wire = self._encode(packet, reply_type, yiaddr, siaddr, file, opts, facts)
        dest = self._destination(packet, reply_type, yiaddr, send)
        send(wire, dest)
        self.stats[_SENT[reply_type]] += 1
        if self.cfg.log_replies:
            log.info(
                "{reply} {ip} to {mac} (arch {arch}, {vc}) boot={file}",
                reply=reply_type.name,
                ip=IPv4Address(yiaddr),
                mac=facts.mac,
                arch=facts.arch,
                vc=facts.vendor_class or "-",
                file=boot.filename if boot else "-",
            )

    def _encode(
        self,
        packet: Packet,
        reply_type: MessageType,
        yiaddr: int,
        siaddr: int,
        file: bytes,
        opts: list[tuple[int, bytes]],
        facts: ClientFacts,
    ) -> bytes:
        framed = frame_options(opts, facts.max_message_size)
        if framed is not None:  # the usual case: everything fits the options field
            return encode_reply(packet, reply_type, yiaddr, siaddr, packet.flags, file, framed)
        main, in_file, in_sname = fit_options(opts, facts.max_message_size, not file)
        reply = make_reply(
            packet,
            message_type=reply_type,
            yiaddr=yiaddr,
            siaddr=siaddr,
            options=main,
            file=file,
        )
        if in_file or in_sname:
            self.stats["overloaded"] += 1
            return to_bytes_overloaded(reply, in_file, in_sname)
        return reply.to_bytes()

    def _nak(self, packet, facts, subnet, reason: str, send: Send) -> None:
        server_id = (
            subnet.server_id if subnet is not None else next(iter(self.subnets.subnets)).server_id
        )
        reply = make_reply(
            packet,
            message_type=MessageType.NAK,
            yiaddr=_ZERO,
            siaddr=_ZERO,
            options=[(54, server_id.packed), (56, reason.encode()[:200])],
        )
        if int(packet.giaddr):
            # RFC 2131 §4.3.2: a NAK through a relay asks it to broadcast to the client.
            reply = _with_flags(reply, reply.flags | FLAG_BROADCAST)
        send(reply.to_bytes(), self._destination(packet, MessageType.NAK, 0, send))
        self.stats["sent_nak"] += 1
        log.info("NAK to {mac}: {reason}", mac=facts.mac, reason=reason)

    def _proxy_reply(self, packet, facts, addr, is_ack: bool, boot, send: Send) -> None:
        server_id = self._proxy_id
        if server_id is None or boot is None:
            return
        opts = build_options(
            facts,
            SubnetOptions({}),
            server_id,
            None,
            boot,
            proxy=True,
            client_machine_id=facts.client_machine_id,
        )
        reply_type = MessageType.ACK if is_ack else MessageType.OFFER
        file = _file_field(boot)
        wire = self._encode(packet, reply_type, 0, int(server_id), file, opts, facts)
        if is_ack:
            dest = addr  # PXE 2.1: the boot server answers the client where it asked from
        elif int(packet.giaddr):
            dest = (str(packet.giaddr), SERVER_PORT)
        else:
            dest = _BROADCAST
        send(wire, dest)
        self.stats[f"sent_proxy_{reply_type.name.lower()}"] += 1
        log.info(
            "proxy {reply} to {mac} (arch {arch}) boot={file}",
            reply=reply_type.name,
            mac=facts.mac,
            arch=facts.arch,
            file=boot.filename,
        )

    def _destination(
        self, packet: Packet, reply_type: MessageType, yiaddr: int, send: Send
    ) -> tuple[str, int]:
        """RFC 2131 §4.1 "the server sends ..." rules."""
        giaddr = int(packet.giaddr)
        if giaddr:
            return (_dotted(giaddr), SERVER_PORT)
        if reply_type == MessageType.NAK:
            return _BROADCAST
        ciaddr = int(packet.ciaddr)
        if ciaddr:
            return (_dotted(ciaddr), CLIENT_PORT)
        if packet.flags & FLAG_BROADCAST or not yiaddr or self.neighbours is None:
            return _BROADCAST
        # The client has no address yet and asked for unicast: teach the kernel its
        # MAC for yiaddr so the datagram can go straight to it.
        interface = getattr(send, "interface", None)
        if interface and self.neighbours.add(interface, _dotted(yiaddr), packet.mac):
            self.stats["unicast_to_new_client"] += 1
            return (_dotted(yiaddr), CLIENT_PORT)
        return _BROADCAST


_SENT = {t: f"sent_{t.name.lower()}" for t in MessageType}
_FRAMED_CACHE = 4096
_pack_ip = struct.Struct("!I").pack


_DOTTED: dict[int, str] = {}


def _dotted(ip: int) -> str:
    # Replies through a relay all go to its giaddr: keep the few strings we need.
    text = _DOTTED.get(ip)
    if text is None:
        if len(_DOTTED) >= 1024:
            _DOTTED.clear()
        text = _DOTTED[ip] = socket.inet_ntoa(_pack_ip(ip))
    return text


def _type_name(facts: ClientFacts) -> str:
    try:
        return MessageType(facts.message_type).name
    except ValueError:
        return f"type-{facts.message_type}"


def _file_field(boot: BootAnswer | None) -> bytes:
    if boot is None or not boot.in_file_field:
        return b""
    return boot.filename.encode()[:127]


def _with_flags(reply: Packet, flags: int) -> Packet:
    return _replace(reply, flags=flags)


def _replace(packet: Packet, **changes: Any) -> Packet:
    return replace(packet, **changes)
