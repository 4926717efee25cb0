"""``netboot init --interface IFACE``: write a working configuration for one interface.

Reads the interface's IPv4 address and prefix (and a default gateway through it) with
pyroute2, picks a DHCP range in the upper half of the subnet that avoids the
appliance's own address and the gateway, takes upstream DNS servers from resolv.conf
and renders a commented TOML file, validated with the same parser ``netboot serve``
uses before it is written. It refuses an interface without an IPv4 address, a subnet
too small for a range, and -- the important one -- an interface where another DHCP
server already answers (a DISCOVER probe with scapy, bounded wait): two DHCP servers
on one segment hand out conflicting answers and machines boot the wrong thing.
"""

from __future__ import annotations

import argparse
import socket
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from pathlib import Path
from typing import Any

from netboot.config import ConfigError, parse_config

__all__ = [
    "InitError",
    "InterfaceFacts",
    "add_parser",
    "choose_range",
    "inspect_interface",
    "nameservers",
    "render_config",
    "run_init",
]

RESOLV_CONFS = (Path("/etc/resolv.conf"), Path("/run/systemd/resolve/resolv.conf"))
# Long enough for servers that ping-check an address before offering it (dnsmasq
# waits up to 3 s, ISC dhcpd 1 s), short enough for an interactive command.
PROBE_SECONDS = 6.0


class InitError(Exception):
    """Why no configuration was written (printed to the operator as is)."""


@dataclass(frozen=True, slots=True)
class InterfaceFacts:
    name: str
    address: IPv4Interface
    gateway: IPv4Address | None = None


def inspect_interface(name: str) -> InterfaceFacts:
    """The first IPv4 address of ``name`` and the default gateway through it (pyroute2)."""
    from pyroute2 import IPRoute

    with IPRoute() as ip:
        found = ip.link_lookup(ifname=name)
        if not found:
            raise InitError(f"interface {name!r} does not exist")
        index = found[0]
        addrs = [
            IPv4Interface(f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}")
            for a in ip.get_addr(family=socket.AF_INET, index=index)
        ]
        if not addrs:
            raise InitError(
                f"interface {name!r} has no IPv4 address: give it the appliance's static "
                "address on the provisioning network first (e.g. 10.66.0.1/24)"
            )
        gateway = None
        for route in ip.get_routes(family=socket.AF_INET, oif=index):
            if route["dst_len"] == 0 and route.get_attr("RTA_GATEWAY"):
                gateway = IPv4Address(route.get_attr("RTA_GATEWAY"))
                break
    return InterfaceFacts(name, addrs[0], gateway)


def choose_range(
    network: IPv4Network, exclude: Sequence[IPv4Address]
) -> tuple[IPv4Address, IPv4Address]:
    """The longest run of addresses in the upper half of ``network`` (broadcast and
    network address excluded) that contains none of ``exclude``."""
    if network.prefixlen > 29:
        raise InitError(f"subnet {network} is too small for a DHCP range (need /29 or larger)")
    first = int(network.network_address) + network.num_addresses // 2
    last = int(network.broadcast_address) - 1
    cuts = sorted(int(a) for a in exclude if first <= int(a) <= last)
    best: tuple[int, int] | None = None
    start = first
    for cut in [*cuts, last + 1]:
        if cut > start and (best is None or cut - start >= best[1] - best[0] + 1):
            best = (start, cut - 1)
        start = cut + 1
    if best is None:
        raise InitError(f"no free addresses left in the upper half of {network}")
    return IPv4Address(best[0]), IPv4Address(best[1])


def nameservers(resolv_conf_texts: Sequence[str], exclude: Sequence[IPv4Address]) -> list[str]:
    """IPv4 ``nameserver`` entries, minus loopback stubs (systemd-resolved's 127.0.0.53
    would point the appliance's DNS at itself) and our own addresses. The first text
    with a usable entry wins (/etc/resolv.conf, then resolved's upstream file)."""
    for text in resolv_conf_texts:
        found: list[str] = []
        for line in text.splitlines():
            parts = line.split()
            if len(parts) < 2 or parts[0] != "nameserver":
                continue
            try:
                ip = IPv4Address(parts[1])
            except ValueError:
                continue  # IPv6 upstreams: not supported by the forwarder yet
            if ip.is_loopback or ip.is_unspecified or ip in exclude or str(ip) in found:
                continue
            found.append(str(ip))
        if found:
            return found
    return []


def render_config(
    facts: InterfaceFacts,
    dhcp_range: tuple[IPv4Address, IPv4Address],
    *,
    domain: str,
    upstreams: Sequence[str],
    state_dir: Path,
    boot_dir: Path,
    http_port: int = 5248,
) -> str:
    addr = facts.address
    router = f'router = "{facts.gateway}"' if facts.gateway else '# router = "..."  (none found)'
    if upstreams:
        dns = "[dns]\nupstreams = [" + ", ".join(f'"{u}"' for u in upstreams) + "]\n"
    else:
        dns = "[dns]\n# upstreams = []  (no usable nameserver in resolv.conf)\n"
    return f"""\
# netboot configuration written by `netboot init --interface {facts.name}`.
# Check it, then `systemctl restart netboot` (or `systemctl reload netboot`).
server_address = "{addr.ip}"      # nodes reach the appliance here ({facts.name})
state_dir = "{state_dir}"
boot_dir = "{boot_dir}"

[http]
port = {http_port}

[tftp]
port = 69

[dhcp]
interfaces = ["{facts.name}"]      # DHCP is answered ONLY on these interfaces
subnet = "{addr.network}"
range_start = "{dhcp_range[0]}"
range_end = "{dhcp_range[1]}"
lease_seconds = 600
domain = "{domain}"
{router}

{dns}"""


def _probe(interface: str, timeout: float) -> list[Any]:
    # The DHCP package's rogue-DHCP probe: one DISCOVER, every OFFER collected.
    from netboot.dhcp.rogue import probe_interface

    return probe_interface(interface, timeout=timeout)


def run_init(
    interface: str,
    output: Path,
    *,
    domain: str = "maas.lan",
    state_dir: Path = Path("/var/lib/netboot"),
    boot_dir: Path = Path("/srv/netboot/boot"),
    address: str | None = None,
    probe: bool = True,
    force: bool = False,
    inspect: Callable[[str], InterfaceFacts] = inspect_interface,
    probe_dhcp: Callable[[str, float], list[Any]] = _probe,
    resolv_confs: Sequence[Path] = RESOLV_CONFS,
) -> str:
    """Write the configuration; return a one-line summary. Raises InitError."""
    if output.exists() and not force:
        raise InitError(f"{output} exists: move it away or pass --force to overwrite it")
    if address is not None:
        try:
            facts = InterfaceFacts(interface, IPv4Interface(address))
        except ValueError:
            raise InitError(f"--address {address!r} is not an IPv4 address/prefix") from None
    else:
        facts = inspect(interface)
    if probe:
        offers = probe_dhcp(interface, PROBE_SECONDS)
        if offers:
            who = ", ".join(f"{o.server_id} ({o.server_mac}) offered {o.yiaddr}" for o in offers)
            raise InitError(
                f"another DHCP server already answers on {interface}: {who}. Two DHCP "
                "servers on one segment give machines conflicting answers; turn that one "
                "off (or use a separate provisioning network) and run netboot init again"
            )
    exclude = [facts.address.ip] + ([facts.gateway] if facts.gateway else [])
    dhcp_range = choose_range(facts.address.network, exclude)
    texts = []
    for path in resolv_confs:
        try:
            texts.append(path.read_text())
        except OSError:
            continue
    upstreams = nameservers(texts, exclude)
    text = render_config(
        facts,
        dhcp_range,
        domain=domain,
        upstreams=upstreams,
        state_dir=state_dir,
        boot_dir=boot_dir,
    )
    try:  # the same validation `netboot serve` does: never write a config it refuses
        import tomllib

        parse_config(tomllib.loads(text), base_dir=output.parent)
    except ConfigError as exc:
        raise InitError(f"the generated configuration is invalid ({exc}); please report") from None
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(output.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(output)
    return (
        f"wrote {output}: {facts.name} {facts.address}, DHCP {dhcp_range[0]}-{dhcp_range[1]}, "
        f"domain {domain}, upstream DNS {', '.join(upstreams) or '(none)'}"
    )


def add_parser(sub: Any) -> None:
    p = sub.add_parser("init", help="write a configuration for a provisioning interface")
    p.add_argument("--interface", "-i", required=True, help="the provisioning interface")
    p.add_argument("--output", "-o", type=Path, help="file to write (default: --config path)")
    p.add_argument("--domain", default="maas.lan", help="DNS domain of the nodes")
    p.add_argument("--state-dir", type=Path, default=Path("/var/lib/netboot"))
    p.add_argument("--boot-dir", type=Path, default=Path("/srv/netboot/boot"))
    p.add_argument(
        "--address",
        help="use this address/prefix instead of reading the interface (image builds)",
    )
    p.add_argument(
        "--no-dhcp-probe",
        action="store_true",
        help="skip the foreign-DHCP check (only where the interface is not up yet)",
    )
    p.add_argument("--force", action="store_true", help="overwrite an existing file")
    p.add_argument(
        "--resolv-conf",
        type=Path,
        action="append",
        help="where to read upstream DNS servers (default: /etc/resolv.conf, then "
        "systemd-resolved's upstream list); repeatable",
    )


def main(args: argparse.Namespace, default_output: Path) -> int:
    try:
        summary = run_init(
            args.interface,
            args.output or default_output,
            domain=args.domain,
            state_dir=args.state_dir,
            boot_dir=args.boot_dir,
            address=args.address,
            probe=not args.no_dhcp_probe,
            force=args.force,
            resolv_confs=args.resolv_conf or RESOLV_CONFS,
        )
    except InitError as exc:
        print(f"netboot init: refused: {exc}", file=sys.stderr)
        return 1
    except PermissionError as exc:
        print(f"netboot init: {exc} (the DHCP probe needs root / CAP_NET_RAW)", file=sys.stderr)
        return 1
    print(f"netboot init: {summary}")
    return 0
