"""``wol``: power a node on with a Wake-on-LAN magic packet (power on only).

The packet (6 x 0xff, then the MAC 16 times; AMD "Magic Packet" white paper) goes to
UDP port 9 as a broadcast **on the provisioning interface**: the socket is bound to the
interface with SO_BINDTODEVICE (needs CAP_NET_RAW, which the appliance has as root),
so it leaves on that segment whatever the routing table says. Which interface: the
node's ``interface`` parameter, else every interface the appliance serves DHCP on.
``broadcast_ip`` (a directed broadcast such as 10.66.0.255) sends to that address
instead of 255.255.255.255 -- the route for that subnet picks the interface.

Wake-on-LAN cannot power off or report state: ``off``/``cycle`` fail with a message
telling the operator to do it by hand, ``query`` answers UNKNOWN.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Callable, Mapping
from ipaddress import IPv4Address
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger

from netboot.power import params as check
from netboot.power.base import (
    InvalidPowerParameters,
    PowerError,
    PowerParameterSpec,
    PowerState,
)

log = Logger(namespace="netboot.power.wol")

WOL_PORT = 9
REPEATS = 3  # a NIC in a low-power state may miss one frame; three cost nothing


def magic_packet(mac: str) -> bytes:
    raw = bytes.fromhex(mac.replace(":", ""))
    return b"\xff" * 6 + raw * 16


class WakeOnLanDriver:
    name = "wol"
    parameters = (
        PowerParameterSpec("mac_address", doc="MAC address of the NIC that wakes the machine"),
        PowerParameterSpec(
            "interface",
            required=False,
            doc="interface to send on (default: the provisioning interfaces)",
        ),
        PowerParameterSpec(
            "broadcast_ip",
            required=False,
            doc="directed broadcast address to send to (default 255.255.255.255)",
        ),
    )
    can_query = False

    def __init__(
        self,
        reactor: Any = None,
        interfaces: tuple[str, ...] = (),
        port: int = WOL_PORT,
        socket_factory: Callable[..., socket.socket] = socket.socket,
    ) -> None:
        self.reactor = reactor
        self.interfaces = interfaces
        self.port = port
        self.socket_factory = socket_factory

    def validate(self, params: Mapping[str, str]) -> dict[str, str]:
        out = dict(params)
        out["mac_address"] = check.mac("mac_address", params["mac_address"])
        if "interface" in params:
            name = params["interface"].strip()
            if not name or len(name) > 15 or any(c in name for c in "/ \t:"):
                raise InvalidPowerParameters("interface", f"{name!r} is not an interface name")
            out["interface"] = name
        if "broadcast_ip" in params:
            try:
                out["broadcast_ip"] = str(IPv4Address(params["broadcast_ip"].strip()))
            except ValueError:
                raise InvalidPowerParameters(
                    "broadcast_ip", f"{params['broadcast_ip']!r} is not an IPv4 address"
                ) from None
        return out

    def bmc_key(self, params: Mapping[str, str]) -> str:
        return params.get("mac_address", "").lower()

    def on(self, params: Mapping[str, str]) -> defer.Deferred[None]:
        try:
            p = self.validate(params)
            self._send(p)
        except InvalidPowerParameters as exc:
            return defer.fail(PowerError(f"wake-on-LAN parameters: {exc}", retryable=False))
        except PowerError as exc:
            return defer.fail(exc)
        return defer.succeed(None)

    def off(self, params: Mapping[str, str]) -> defer.Deferred[None]:
        return defer.fail(
            PowerError(
                "Wake-on-LAN can only power a machine on: power it off by hand", retryable=False
            )
        )

    def cycle(self, params: Mapping[str, str]) -> defer.Deferred[None]:
        return defer.fail(
            PowerError(
                "Wake-on-LAN cannot power cycle: power the machine off by hand, then on",
                retryable=False,
            )
        )

    def query(self, params: Mapping[str, str]) -> defer.Deferred[PowerState]:
        return defer.succeed(PowerState.UNKNOWN)

    def _send(self, p: Mapping[str, str]) -> None:
        packet = magic_packet(p["mac_address"])
        destination = p.get("broadcast_ip", "255.255.255.255")
        interfaces: tuple[str | None, ...]
        if "interface" in p:
            interfaces = (p["interface"],)
        elif self.interfaces:
            interfaces = self.interfaces
        elif "broadcast_ip" in p:
            interfaces = (None,)  # the route to the directed broadcast picks the interface
        else:
            raise PowerError(
                "no interface to send the wake-on-LAN packet on: set the node's interface "
                "or broadcast_ip, or serve DHCP on the provisioning interface",
                retryable=False,
            )
        for interface in interfaces:
            self._send_one(packet, destination, interface)
            log.info(
                "wake-on-LAN for {mac} sent to {dest}:{port} on {iface}",
                mac=p["mac_address"],
                dest=destination,
                port=self.port,
                iface=interface or "(routed)",
            )

    def _send_one(self, packet: bytes, destination: str, interface: str | None) -> None:
        where = f"on {interface}" if interface else f"to {destination}"
        try:
            sock = self.socket_factory(socket.AF_INET, socket.SOCK_DGRAM)
        except OSError as exc:
            raise PowerError(f"wake-on-LAN {where}: cannot open a socket: {exc}") from None
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
            if interface:
                sock.setsockopt(
                    socket.SOL_SOCKET, socket.SO_BINDTODEVICE, interface.encode() + b"\0"
                )
            for _ in range(REPEATS):
                sock.sendto(packet, (destination, self.port))
        except OSError as exc:
            raise _send_error(where, exc) from None
        finally:
            sock.close()


def _send_error(where: str, exc: OSError) -> PowerError:
    if exc.errno == errno.ENODEV:
        return PowerError(f"wake-on-LAN {where}: no such interface", retryable=False)
    if exc.errno == errno.EPERM:
        return PowerError(
            f"wake-on-LAN {where}: binding to an interface needs CAP_NET_RAW (run as root)",
            retryable=False,
        )
    if exc.errno == errno.ENETUNREACH:
        return PowerError(f"wake-on-LAN {where}: network unreachable (interface down?)")
    return PowerError(f"wake-on-LAN {where}: {exc.strerror or exc}")
