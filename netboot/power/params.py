"""Form checks shared by the drivers: addresses, ports, URLs, MACs, credential lengths.

Each check takes the parameter's name so its InvalidPowerParameters names the field the
operator has to fix. Pure functions: no sockets, no name resolution (a host name that
does not resolve is reported by ``check``, which talks to the BMC).
"""

from __future__ import annotations

import re
from ipaddress import ip_address
from urllib.parse import urlsplit

from netboot.power.base import InvalidPowerParameters

_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$"
)
_MAC = re.compile(r"^[0-9a-f]{2}([:-]?)[0-9a-f]{2}(\1[0-9a-f]{2}){4}$")


def host(field: str, value: str) -> str:
    """An IP address or a DNS host name."""
    value = value.strip()
    try:
        return str(ip_address(value))
    except ValueError:
        pass
    if not _HOSTNAME.match(value) or value.replace(".", "").isdigit():
        raise InvalidPowerParameters(field, f"{value!r} is not an IP address or host name")
    return value


def port(field: str, value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise InvalidPowerParameters(field, f"port {value!r} is not a number") from None
    if not 1 <= number <= 65535:
        raise InvalidPowerParameters(field, f"port {number} is outside 1..65535")
    return number


def host_port(field: str, value: str, default_port: int) -> tuple[str, int]:
    """``host``, ``host:port``, ``[v6]`` or ``[v6]:port``."""
    value = value.strip()
    if value.startswith("["):
        addr, sep, rest = value[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise InvalidPowerParameters(field, f"{value!r}: expected [IPv6] or [IPv6]:port")
        return host(field, addr), port(field, rest[1:]) if rest else default_port
    if value.count(":") == 1:
        addr, _, number = value.partition(":")
        return host(field, addr), port(field, number)
    return host(field, value), default_port


def http_url(field: str, value: str, default_scheme: str = "https") -> str:
    """An http(s) URL; a bare ``host[:port]`` gets ``default_scheme``."""
    value = value.strip()
    if "://" not in value:
        value = f"{default_scheme}://{value}"
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https"):
        raise InvalidPowerParameters(field, f"scheme {parts.scheme!r} is not http or https")
    if not parts.hostname:
        raise InvalidPowerParameters(field, f"{value!r} has no host")
    host(field, parts.hostname)
    try:
        parts.port  # noqa: B018 (urlsplit validates the port lazily)
    except ValueError as exc:
        raise InvalidPowerParameters(field, f"{value!r}: {exc}") from None
    return value.rstrip("/") if parts.path in ("", "/") else value


def mac(field: str, value: str) -> str:
    """A MAC address in any common spelling, returned as lower-case aa:bb:cc:dd:ee:ff."""
    text = value.strip().lower()
    if not _MAC.match(text):
        raise InvalidPowerParameters(field, f"{value!r} is not a MAC address")
    digits = re.sub(r"[^0-9a-f]", "", text)
    return ":".join(digits[i : i + 2] for i in range(0, 12, 2))


def text(field: str, value: str, max_bytes: int, what: str = "value") -> str:
    """Non-empty, printable, at most ``max_bytes`` UTF-8 bytes (IPMI: user 16, password 20)."""
    if not value:
        raise InvalidPowerParameters(field, f"{what} is empty")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise InvalidPowerParameters(field, f"{what} contains control characters")
    if len(value.encode()) > max_bytes:
        raise InvalidPowerParameters(field, f"{what} is longer than {max_bytes} bytes")
    return value


def choice(field: str, value: str, allowed: tuple[str, ...]) -> str:
    folded = value.strip().lower()
    for option in allowed:
        if folded == option.lower():
            return option
    raise InvalidPowerParameters(field, f"{value!r} is not one of {', '.join(allowed)}")


def yes_no(field: str, value: str) -> bool:
    folded = value.strip().lower()
    if folded in ("y", "yes", "true", "1", "on"):
        return True
    if folded in ("n", "no", "false", "0", "off"):
        return False
    raise InvalidPowerParameters(field, f"{value!r} is not yes or no")
