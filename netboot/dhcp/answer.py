"""Options of a reply: which ones, in which order, within the client's size limit.

RFC 2131 §4.3.1 / RFC 2132 §9.8: the lease options and the server identifier always go;
requested options (55) follow in the client's order; a few defaults (mask, router, DNS,
domain) go even unasked; boot options go to booting clients; option 82 is echoed last
(RFC 3046 §2.2). RFC 2132 §9.10 (57) and RFC 2131 §2 (576 octets) bound the reply; when
the options do not fit, option 52 overloads the unused file/sname fields (RFC 2131 §4.1),
and beyond that the least important options are left out.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from ipaddress import IPv4Address

from netboot.bootconfig.methods import BootAnswer
from netboot.dhcp import options
from netboot.dhcp.facts import ClientFacts
from netboot.dhcp.settings import SubnetConfig

__all__ = ["SubnetOptions", "build_options", "fit_options", "frame_options"]

_U32 = struct.Struct("!I").pack
# Sent whether or not the client lists them (when configured).
_DEFAULTS = (1, 3, 6, 15)
# PXE vendor options for a proxyDHCP offer (PXE 2.1 §2.4.6 / pixiecore): sub-option 6
# PXE_DISCOVERY_CONTROL = 8: no boot server discovery, boot the file named in the offer.
PXE_VENDOR_PROXY = b"\x06\x01\x08\xff"
# iPXE encapsulated 175.176 "no-pxedhcp" = 1: our offer carries the boot file, so iPXE
# need not wait ~3 s for ProxyDHCP offers (LAB-NOTES "Where the time goes").
IPXE_NO_PXEDHCP = b"\xb0\x01\x01"
UDP_IP_HEADERS = 28
_ALWAYS = (*_DEFAULTS, 60, 66, 67, 43, 97, 175)
_LEASE_CACHE: dict[int, tuple[tuple[int, bytes], ...]] = {}


def _lease_options(seconds: int) -> tuple[tuple[int, bytes], ...]:
    """51, 58 (T1 = 0.5, RFC 2131 §4.4.5) and 59 (T2 = 0.875) for a lease time."""
    cached = _LEASE_CACHE.get(seconds)
    if cached is None:
        cached = ((51, _U32(seconds)), (58, _U32(seconds // 2)), (59, _U32(seconds * 7 // 8)))
        if len(_LEASE_CACHE) < 64:
            _LEASE_CACHE[seconds] = cached
    return cached


MIN_REPLY = 576  # RFC 2131 §2: every client accepts this much


@dataclass(frozen=True, slots=True)
class SubnetOptions:
    """A subnet's option values, encoded once at start."""

    static: dict[int, bytes]

    @classmethod
    def of(cls, cfg: SubnetConfig) -> SubnetOptions:
        static: dict[int, bytes] = {1: cfg.network.netmask.packed}
        if cfg.router is not None:
            static[3] = cfg.router.packed
        if cfg.dns_servers:
            static[6] = options.encode(6, cfg.dns_servers)
        static[15] = cfg.domain.encode()
        static[28] = cfg.network.broadcast_address.packed
        if cfg.ntp_servers:
            static[42] = options.encode(42, cfg.ntp_servers)
        if cfg.domain_search:
            static[119] = options.encode(119, cfg.domain_search)
        if cfg.mtu:
            static[26] = options.encode(26, cfg.mtu)
        return cls(static)


def build_options(
    facts: ClientFacts,
    subnet: SubnetOptions,
    server_id: IPv4Address,
    lease_seconds: int | None,
    boot: BootAnswer | None,
    hostname: str | None = None,
    proxy: bool = False,
    client_machine_id: bytes | None = None,
) -> list[tuple[int, bytes]]:
    """Encoded options for an OFFER/ACK (or an INFORM ACK when lease_seconds is None),
    most important first; the caller fits them to the client's size limit."""
    out: list[tuple[int, bytes]] = [(54, server_id.packed)]
    if lease_seconds is not None:
        out += _lease_options(lease_seconds)
    if not proxy and not hostname and boot is None:
        have = subnet.static  # the common case for OS clients: nothing to add, no copy
    else:
        have = {} if proxy else dict(subnet.static)
    if hostname and not proxy:
        have[12] = hostname.encode()[:255]
    if boot is not None:
        if boot.vendor_class:
            have[60] = boot.vendor_class.encode()
        elif proxy:
            # Only in proxy offers: OVMF treats a full offer that echoes PXEClient without
            # boot-server vendor options as a BINL offer, asks port 4011 and gives up with
            # PXE-E16 "No valid offer" (seen in tests/e2e/test_boot_paths.py).
            have[60] = b"PXEClient"  # PXE 2.1: a PXE server identifies itself so
        have[66] = str(server_id).encode()
        have[67] = boot.filename.encode()
        if proxy:
            have[43] = PXE_VENDOR_PROXY
            if client_machine_id is not None:
                have[97] = client_machine_id  # some UEFI firmware wants its GUID back
        elif facts.is_ipxe:
            have[175] = IPXE_NO_PXEDHCP
    sent = {54, 51, 58, 59}
    get = have.get
    for code in facts.param_request:
        value = get(code)
        if value is not None and code not in sent:
            out.append((code, value))
            sent.add(code)
    for code in _ALWAYS:
        value = get(code)
        if value is not None and code not in sent:
            out.append((code, value))
            sent.add(code)
    if facts.relay_agent_info is not None and not proxy:
        out.append((82, facts.relay_agent_info))
    return out


def frame_options(opts: list[tuple[int, bytes]], max_message_size: int | None) -> bytes | None:
    """The options field (code, length, value ...) when it fits the client's limit
    without overloading, else None (then fit_options decides)."""
    limit = MIN_REPLY if max_message_size is None else max(MIN_REPLY, max_message_size)
    room = limit - UDP_IP_HEADERS - 240 - 3 - 1
    parts = []
    for code, value in opts:
        size = len(value)
        if size > 255:
            return None  # RFC 3396 splitting: the slow path handles it
        parts.append(bytes((code, size)))
        parts.append(value)
    framed = b"".join(parts)
    return framed if len(framed) <= room else None


def fit_options(
    opts: list[tuple[int, bytes]], max_message_size: int | None, fixed_fields_free: bool
) -> tuple[list[tuple[int, bytes]], list[tuple[int, bytes]], list[tuple[int, bytes]]]:
    """Split options into (options field, file field, sname field) so the reply fits.

    Returns everything in the first list when it fits; otherwise fills file then sname
    (RFC 2131 §4.1 order) when they are free, and drops what still does not fit, from
    the end (the least important).
    """
    limit = max(MIN_REPLY, min(max_message_size or MIN_REPLY, 65535))
    # 240 header+cookie, 3 for option 53, 1 END (and 3 for option 52 when overloading).
    room = limit - UDP_IP_HEADERS - 240 - 3 - 1
    total = sum(2 + len(v) + 2 * (len(v) // 256) for _, v in opts)
    if total <= room:
        return opts, [], []
    fields = [room - 3, 128 - 1, 64 - 1] if fixed_fields_free else [room]
    buckets: list[list[tuple[int, bytes]]] = [[], [], []]
    for code, value in opts:
        size = 2 + len(value) + 2 * (len(value) // 256)
        for index, free in enumerate(fields):  # first fit; distinct options may go anywhere
            if size <= free:
                fields[index] -= size
                buckets[index].append((code, value))
                break
        else:
            _split(code, value, fields, buckets)
    return buckets[0], buckets[1], buckets[2]


def _split(
    code: int, value: bytes, fields: list[int], buckets: list[list[tuple[int, bytes]]]
) -> None:
    """RFC 3396 §7: a value too long for any one field goes in pieces, in field order
    (options, file, sname), and is concatenated back by the client. All or nothing."""
    pieces: list[tuple[int, bytes]] = []
    free = list(fields)
    rest = value
    for index in range(len(free)):
        while rest and free[index] > 2:
            take = min(free[index] - 2, 255, len(rest))
            pieces.append((index, rest[:take]))
            free[index] -= take + 2
            rest = rest[take:]
    if rest:
        return  # does not fit even in pieces: leave it out
    fields[:] = free
    for index, piece in pieces:
        buckets[index].append((code, piece))
