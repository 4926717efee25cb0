"""Twisted adapter for DHCP: sockets, the lease table, durable commits, replies.

One UDP socket per configured interface, bound to port 67 with SO_BINDTODEVICE, so
netboot only hears and answers DHCP on interfaces the operator named (plus port 4011 in
proxyDHCP mode). Per datagram: decode -> facts -> policy -> table change -> (commit,
then) send. An ACK leaves only after the group committer reports its row fsynced.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from ipaddress import IPv4Address
from typing import Any

from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger

from netboot.bootconfig.methods import BootAnswer, choose_boot
from netboot.bootconfig.settings import BootConfig
from netboot.dhcp.answer import SubnetOptions, build_options, fit_options, frame_options
from netboot.dhcp.codec import (
    FLAG_BROADCAST,
    MalformedPacket,
    MessageType,
    Packet,
    encode_reply,
    make_reply,
    to_bytes_overloaded,
)
from netboot.dhcp.commit import GroupCommitter
from netboot.dhcp.facts import ClientFacts, facts_from_packet
from netboot.dhcp.leases import Binding, LeaseTable, State, client_key, quarantine_key
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
from netboot.dhcp.settings import DHCPConfig
from netboot.dhcp.subnets import Subnet, SubnetMap
from netboot.store.leases import Alarm, DeleteLease, LeaseStore, PutLease, RecordAlarm

SERVER_PORT = 67
CLIENT_PORT = 68
PXE_PORT = 4011
BOOTREQUEST = 1
_BROADCAST = ("255.255.255.255", CLIENT_PORT)
_ZERO = IPv4Address(0)

log = Logger(namespace="netboot.dhcp")

Send = Callable[[bytes, tuple[str, int]], None]


class DHCPServer:
    """The DHCP controller: one per appliance, shared by every interface's socket."""

    def __init__(
        self,
        cfg: DHCPConfig,
        http_base: str,
        leases: LeaseStore,
        reactor: Any,
        clock: Callable[[], float] = time.time,
        hostname_for: Callable[[str], str | None] = lambda mac: None,
        neighbours: Any = None,
        prober: Any = None,
        commit_mode: str = "thread",
        stats: Counter[str] | None = None,
        boot: BootConfig | None = None,
    ) -> None:
        self.cfg = cfg
        self.http_base = http_base
        self.boot = boot  # [boot] loader families (bootconfig/settings.py)
        self.leases = leases
        self.clock = clock
        self.hostname_for = hostname_for
        self.neighbours = neighbours  # .add(interface, ip, mac) -> bool, or None
        self.prober = prober  # .probe(interface, ip, client_mac), or None
        self.stats: Counter[str] = stats if stats is not None else Counter()
        self.table = LeaseTable()
        self.subnets = SubnetMap(cfg.subnets, self.table)
        self._options = {s.name: SubnetOptions.of(s.cfg) for s in self.subnets.subnets}
        self.our_ids = frozenset(int(s.server_id) for s in self.subnets.subnets)
        self._framed: dict[tuple, bytes] = {}  # reply options field by request shape
        self._proxy_id = cfg.subnets[0].server_id if cfg.subnets else None
        self.committer = GroupCommitter(
            leases.apply, reactor, self._commit_failed, mode=commit_mode
        )
        self.load()

    # -- state ---------------------------------------------------------------------

    def load(self) -> None:
        """(Re)build the in-memory table from the durable rows."""
        table = self.table
        table.by_key.clear()
        table.by_ip.clear()
        now = self.clock()
        for binding in self.leases.load():
            table.by_key[binding.key] = binding
            table.by_ip[binding.ip] = binding
        for binding in table.by_key.values():
            if not binding.holds(now):
                table._freed(binding.ip)
        log.info("DHCP lease table loaded: {n} rows", n=len(table))

    def _commit_failed(self, error: BaseException) -> None:
        self.stats["commit_errors"] += 1
        self.load()  # memory may be ahead of the store: take the store's word again

    def reclaim(self) -> int:
        """Expire leases and end quarantines whose time has come (run periodically)."""
        now = self.clock()
        changes: list = []
        for binding in self.table.expired(now):
            if binding.state == State.ACTIVE:
                updated = self.table.set_state(binding.key, State.EXPIRED, binding.expires)
                if updated is not None:
                    changes.append(PutLease(updated, now))
            else:
                self.table.remove(binding.key)
                changes.append(DeleteLease(binding.key))
        self.table.prune_offers(now)
        if changes:
            self.stats["reclaimed"] += len(changes)
            self.committer.submit(changes)
            log.info("reclaimed {n} expired leases/quarantines", n=len(changes))
        return len(changes)

    def conflict(self, interface: str, ip: int, mac: str) -> None:
        """Someone answered the ARP probe for ``ip``: it is in use, do not lease it."""
        now = self.clock()
        holder = self.table.by_ip.get(ip)
        if holder is not None and holder.mac == mac:
            return
        self.stats["conflicts"] += 1
        binding = Binding(
            quarantine_key(ip), mac, ip, State.CONFLICT, now + self.cfg.decline_seconds
        )
        evicted = self.table.put(binding)
        changes: list = [DeleteLease(evicted.key)] if evicted else []
        self.committer.submit([*changes, PutLease(binding, now)])
        log.warn(
            "address {ip} answered an ARP probe on {iface} from {mac}: quarantined",
            ip=IPv4Address(ip),
            iface=interface,
            mac=mac,
        )

    def alarm(self, alarm: Alarm) -> None:
        self.stats["rogue_servers_seen"] += 1
        self.committer.submit([RecordAlarm(alarm)])

    # -- packets -------------------------------------------------------------------

    def handle(
        self, data: bytes, addr: tuple[str, int], interface: str, send: Send, pxe_port=False
    ) -> None:
        try:
            packet = Packet.from_bytes(data)
        except MalformedPacket as exc:
            self.stats["dropped_malformed"] += 1
            log.info(
                "drop malformed DHCP from {peer} on {iface}: {reason}",
                peer=addr[0],
                iface=interface,
                reason=str(exc),
            )
            return
        if packet.op != BOOTREQUEST:
            self.stats["dropped_not_request"] += 1
            return
        try:
            self._handle(packet, addr, interface, send, pxe_port)
        except Exception:
            # A bug must cost one answer, never the server.
            self.stats["errors"] += 1
            log.failure("error handling DHCP from {mac}", mac=packet.mac)

    def _handle(
        self, packet: Packet, addr: tuple[str, int], interface: str, send: Send, pxe_port: bool
    ) -> None:
        facts = facts_from_packet(packet)
        now = self.clock()
        key = client_key(facts.client_id, packet.chaddr, packet.hlen)
        giaddr = int(packet.giaddr)
        subnet = self.subnets.select(facts, giaddr, interface)
        if subnet is None and facts.message_type == MessageType.INFORM and int(facts.ciaddr):
            subnet = self.subnets.containing(int(facts.ciaddr))
        boot = choose_boot(facts, self.http_base, self.boot)
        req = Request(
            facts=facts,
            key=key,
            subnet=subnet,
            table=self.table,
            cfg=self.cfg,
            now=now,
            boot_client=boot is not None,
            our_ids=self.our_ids,
            pxe_port=pxe_port,
        )
        decision = decide(req)
        kind = type(decision)
        self.stats[kind.__name__.lower()] += 1

        if kind is Offer:
            fresh = self.table.get(key) is None or self.table.get(key).ip != decision.ip
            self.table.hold_offer(decision.ip, key, now + self.cfg.offer_hold_seconds)
            self._reply(packet, facts, subnet, MessageType.OFFER, decision, boot, send)
            if fresh and self.prober is not None and not giaddr and self.cfg.conflict_probe:
                self.prober.probe(interface, decision.ip, facts.mac)
        elif kind is Ack:
            self._ack(packet, facts, subnet, key, decision, boot, send, now)
        elif kind is Drop:
            if facts.message_type == MessageType.REQUEST and facts.server_id is not None:
                self.table.drop_offer(key)  # it chose another server: free our offer
            log.info(
                "{mtype} from {mac} dropped: {reason}",
                mtype=_type_name(facts),
                mac=facts.mac,
                reason=decision.reason,
            )
        elif kind is Nak:
            self._nak(packet, facts, subnet, decision.reason, send)
        elif kind is Release:
            updated = self.table.set_state(key, State.RELEASED, now)
            if updated is not None:
                self.committer.submit([PutLease(updated, now)])
            log.info("RELEASE {ip} by {mac}", ip=IPv4Address(decision.ip), mac=facts.mac)
        elif kind is Decline:
            self._decline(facts, key, decision.ip, now)
        elif kind is InformAck:
            self._reply(packet, facts, subnet, MessageType.ACK, None, boot, send)
        elif kind is ProxyOffer or kind is ProxyAck:
            self._proxy_reply(packet, facts, addr, kind is ProxyAck, boot, send)

    def _ack(self, packet, facts, subnet, key, decision, boot, send, now) -> None:
        hostname = self.hostname_for(facts.mac) or facts.hostname or ""
        host = subnet.reservation(facts)
        if host is not None and host.hostname:
            hostname = host.hostname
        binding = Binding(
            key,
            facts.mac,
            decision.ip,
            State.ACTIVE,
            now + decision.lease_seconds,
            hostname,
            subnet.name,
            facts.relay_agent_info or b"",
        )
        evicted = self.table.put(binding)
        changes: list = [DeleteLease(evicted.key)] if evicted is not None else []
        changes.append(PutLease(binding, now))

        def durable() -> None:
            self._reply(packet, facts, subnet, MessageType.ACK, decision, boot, send, hostname)

        # Durable before the ACK leaves: a crash after this loses nothing acknowledged.
        self.committer.submit(changes, durable)

    def _decline(self, facts: ClientFacts, key: bytes, ip: int, now: float) -> None:
        self.table.drop_offer(key)
        changes: list = []
        own = self.table.get(key)
        if own is not None and own.ip == ip:
            self.table.remove(key)
            changes.append(DeleteLease(key))
        quarantine = Binding(
            quarantine_key(ip), facts.mac, ip, State.DECLINED, now + self.cfg.decline_seconds
        )
        evicted = self.table.put(quarantine)
        if evicted is not None:
            changes.append(DeleteLease(evicted.key))
        changes.append(PutLease(quarantine, now))
        self.committer.submit(changes)
        log.warn(
            "DECLINE {ip} by {mac}: address quarantined for {s} s",
            ip=IPv4Address(ip),
            mac=facts.mac,
            s=self.cfg.decline_seconds,
        )

    # -- replies -------------------------------------------------------------------

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


def _dotted(ip: int) -> str:
    return socket.inet_ntoa(_pack_ip(ip))


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


class DHCPProtocol(DatagramProtocol):
    """One listening socket (interface, port) feeding the shared controller."""

    def __init__(self, server: DHCPServer, interface: str, pxe_port: bool = False) -> None:
        self.server = server
        self.interface = interface
        self.pxe_port = pxe_port
        self._send = _Sender(self)

    def datagramReceived(self, data: bytes, addr: tuple[str, int]) -> None:  # noqa: N802
        self.server.handle(data, addr, self.interface, self._send, self.pxe_port)


class _Sender:
    """send(data, dest) bound to one protocol's transport; knows its interface."""

    __slots__ = ("interface", "proto")

    def __init__(self, proto: DHCPProtocol) -> None:
        self.proto = proto
        self.interface = proto.interface

    def __call__(self, data: bytes, dest: tuple[str, int]) -> None:
        transport = self.proto.transport
        if transport is None:
            return
        try:
            # Straight to the port's socket: udp.Port.write re-validates the dotted
            # address on every call, which shows in profiles at thousands of packets/s;
            # ours come from inet_ntoa or constants.
            transport.socket.sendto(data, dest)
        except BlockingIOError:
            self.proto.server.stats["send_dropped_full"] += 1
        except OSError as exc:
            self.proto.server.stats["send_errors"] += 1
            log.info("send to {dest} failed: {error}", dest=dest, error=str(exc))


def bound_dhcp_socket(interface: str, port: int = SERVER_PORT) -> socket.socket:
    """A UDP socket on 0.0.0.0:port that only sees ``interface`` (SO_BINDTODEVICE)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, interface.encode() + b"\0")
        for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, opt, 4 << 20)  # ride out commit pauses
        sock.bind(("0.0.0.0", port))
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise OSError(
            exc.errno, f"cannot serve DHCP on interface {interface!r}: {exc.strerror}"
        ) from None
    return sock


def listen_dhcp(reactor: Any, protocol: DHCPProtocol, port: int = SERVER_PORT):
    sock = bound_dhcp_socket(protocol.interface, port)
    try:
        return reactor.adoptDatagramPort(sock.fileno(), socket.AF_INET, protocol)
    finally:
        # adoptDatagramPort dup()s the descriptor.
        sock.close()
