"""Twisted adapter for DHCP: sockets, the lease table, durable commits, replies.

Per datagram: decode -> facts -> policy -> table change -> (commit, then) reply. An
ACK leaves only after the group committer reports its row fsynced. Replies are built
in replies.py (ReplyMixin); sockets live in sockets.py.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from ipaddress import IPv4Address
from typing import Any

from twisted.logger import Logger

from netboot.bootconfig.methods import choose_boot
from netboot.bootconfig.settings import BootConfig
from netboot.dhcp.answer import SubnetOptions
from netboot.dhcp.codec import (
    MalformedPacket,
    MessageType,
    Packet,
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
from netboot.dhcp.replies import ReplyMixin, Send
from netboot.dhcp.settings import DHCPConfig
from netboot.dhcp.subnets import SubnetMap
from netboot.store.leases import Alarm, DeleteLease, LeaseStore, PutLease, RecordAlarm

__all__ = ["PXE_PORT", "DHCPServer"]

PXE_PORT = 4011  # PXE 2.1 boot server (proxyDHCP mode)
BOOTREQUEST = 1

log = Logger(namespace="netboot.dhcp")


class DHCPServer(ReplyMixin):
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
        self.stats[_STAT[kind]] += 1

        if kind is Offer:
            own = self.table.get(key)
            fresh = own is None or own.ip != decision.ip
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


_STAT = {
    kind: kind.__name__.lower()
    for kind in (Ack, Decline, Drop, InformAck, Nak, Offer, ProxyAck, ProxyOffer, Release)
}


def _type_name(facts: ClientFacts) -> str:
    try:
        return MessageType(facts.message_type).name
    except ValueError:
        return f"type-{facts.message_type}"
