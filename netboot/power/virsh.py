"""``virsh``: a libvirt domain (a VM) powered through libvirt-python.

``power_address`` is a libvirt URI: local (``qemu:///system``, or a private daemon's
``qemu+unix:///session?socket=/path``) or remote (``qemu+ssh://user@host/system``,
``qemu+libssh://...``); ``power_id`` the domain's name or UUID; ``power_pass`` an
optional password handed to libvirt's credential callback (SASL, libssh transports;
plain ``qemu+ssh`` uses ssh keys or ssh's own askpass).

Actions are hard power, as on a BMC: on = start the domain, off = destroy (pull the
plug), cycle = off then on, query = shut off/crashed -> off, running/paused/... -> on.
libvirt calls block, so each runs on a thread with a deadline (netboot.power.blocking);
a connection is opened per action and closed after it.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from netboot.power.base import (
    InvalidPowerParameters,
    PowerError,
    PowerParameterSpec,
    PowerState,
)
from netboot.power.blocking import BlockingDriver, Operation

T = TypeVar("T")

try:  # the appliance runs without libvirt installed; only this driver needs it
    import libvirt
except ImportError:  # pragma: no cover - exercised only where libvirt-python is absent
    libvirt = None

_SCHEMES = ("qemu", "qemu+unix", "qemu+ssh", "qemu+libssh", "qemu+libssh2", "qemu+tcp", "qemu+tls")


class VirshDriver(BlockingDriver):
    name = "virsh"
    library = "libvirt-python"
    parameters = (
        PowerParameterSpec(
            "power_address", doc="libvirt URI, e.g. qemu+ssh://root@kvm1/system or qemu:///system"
        ),
        PowerParameterSpec("power_id", doc="domain name or UUID"),
        PowerParameterSpec(
            "power_pass", required=False, secret=True, doc="password for libvirt's auth prompt"
        ),
    )
    # Looked up when called: the functions are defined below.
    operations = {
        "on": lambda dom: _start(dom),
        "off": lambda dom: _destroy(dom),
        "cycle": lambda dom: _cycle(dom),
        "query": lambda dom: _state(dom),
    }

    def validate(self, params: Mapping[str, str]) -> dict[str, str]:
        out = dict(params)
        uri = params["power_address"].strip()
        scheme, sep, _ = uri.partition("://")
        if not sep or scheme not in _SCHEMES:
            raise InvalidPowerParameters(
                "power_address",
                f"{uri!r} is not a libvirt QEMU URI (schemes: {', '.join(_SCHEMES)})",
            )
        out["power_address"] = uri
        domain = params["power_id"].strip()
        if not domain or any(c in domain for c in "/\n\0"):
            raise InvalidPowerParameters("power_id", f"{domain!r} is not a domain name or UUID")
        out["power_id"] = domain
        return out

    def bmc_key(self, params: Mapping[str, str]) -> str:
        return f"{params.get('power_address', '')}#{params.get('power_id', '')}"

    def _installed(self) -> bool:
        return libvirt is not None

    def _blocking(self, p: Mapping[str, str], op: Operation) -> tuple[str, Any, tuple]:
        target = f"domain {p['power_id']} at {p['power_address']}"
        args = (p["power_address"], p["power_id"], p.get("power_pass"), op, target)
        return f"of {target}", _with_domain, args


# -- blocking side (runs on a thread) ---------------------------------------------------


def _quiet(_ctx: object, _err: object) -> None:
    """libvirt prints every error to stderr unless a handler is set; ours go in PowerError."""


def _with_domain(
    uri: str, domain: str, password: str | None, op: Callable[[Any], T], target: str
) -> T:
    libvirt.registerErrorHandler(_quiet, None)
    try:
        conn = _open(uri, password)
    except libvirt.libvirtError as exc:
        raise _error(f"cannot connect to libvirt at {uri}", exc) from None
    try:
        try:
            dom = _lookup(conn, domain)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                raise PowerError(f"no domain {domain!r} at {uri}", retryable=False) from None
            raise _error(f"looking up {target}", exc) from None
        try:
            return op(dom)
        except libvirt.libvirtError as exc:
            raise _error(target, exc) from None
    finally:
        with contextlib.suppress(libvirt.libvirtError):
            conn.close()


def _open(uri: str, password: str | None) -> Any:
    if not password:
        return libvirt.open(uri)

    def answer(credentials: list, _data: object) -> int:
        for cred in credentials:
            if cred[0] == libvirt.VIR_CRED_PASSPHRASE:
                cred[4] = password
            else:
                cred[4] = cred[3]  # user name etc.: libvirt's default (from the URI)
        return 0

    auth = [[libvirt.VIR_CRED_AUTHNAME, libvirt.VIR_CRED_PASSPHRASE], answer, None]
    return libvirt.openAuth(uri, auth, 0)


def _lookup(conn: Any, domain: str) -> Any:
    try:
        uuid.UUID(domain)
    except ValueError:
        return conn.lookupByName(domain)
    return conn.lookupByUUIDString(domain)


def _start(dom: Any) -> None:
    if not dom.isActive():
        dom.create()


def _destroy(dom: Any) -> None:
    if dom.isActive():
        dom.destroy()


def _cycle(dom: Any) -> None:
    _destroy(dom)
    dom.create()


def _state(dom: Any) -> PowerState:
    state = dom.state()[0]
    if state in (libvirt.VIR_DOMAIN_SHUTOFF, libvirt.VIR_DOMAIN_CRASHED):
        return PowerState.OFF
    if state == libvirt.VIR_DOMAIN_NOSTATE:
        return PowerState.UNKNOWN
    return PowerState.ON


def _error(context: str, exc: Any) -> PowerError:
    code = exc.get_error_code()
    message = exc.get_error_message() or str(exc)
    if code in (libvirt.VIR_ERR_AUTH_FAILED, libvirt.VIR_ERR_AUTH_CANCELLED):
        return PowerError(
            f"{context}: libvirt refused the credentials ({message})", retryable=False
        )
    if code in (
        libvirt.VIR_ERR_NO_SUPPORT,
        libvirt.VIR_ERR_INVALID_ARG,
        libvirt.VIR_ERR_OPERATION_DENIED,
    ):
        return PowerError(f"{context}: {message}", retryable=False)
    return PowerError(f"{context}: {message}")
