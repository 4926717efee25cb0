"""``ipmi``: a BMC over IPMI 2.0 (RMCP+, "lanplus") through pyghmi.

Parameters follow MAAS: ``power_address`` (host, host:port or [v6]:port; port 623 by
default), ``power_user``, ``power_pass``, optional ``k_g`` (the BMC key) and
``privilege_level`` (USER, OPERATOR, ADMIN). IPMI limits user names to 16 bytes and
passwords to 20 bytes (IPMI 2.0 section 13.31); longer ones are refused on save.

Every action opens a session, sends one chassis command, and logs out: BMCs have few
session slots and an abandoned session holds one until it times out. pyghmi blocks, so
the whole exchange runs on a thread with a deadline (netboot.power.blocking).

pyghmi keys its session cache on (bmc, user, password, port, k_g) but stores the
password encoded, so a ``str`` password leaves a stale entry that hangs the next
session; credentials are therefore always passed as bytes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from netboot.power import params as check
from netboot.power.base import PowerError, PowerParameterSpec, PowerState
from netboot.power.blocking import BlockingDriver, Operation

T = TypeVar("T")

IPMI_PORT = 623
PRIVILEGES = {"USER": 2, "OPERATOR": 3, "ADMIN": 4}

try:
    from pyghmi import exceptions as pyghmi_exceptions
    from pyghmi.ipmi import command as pyghmi_command
except ImportError:  # pragma: no cover - only where pyghmi is absent
    pyghmi_command = None
    pyghmi_exceptions = None


class IPMIDriver(BlockingDriver):
    name = "ipmi"
    library = "pyghmi"
    parameters = (
        PowerParameterSpec("power_address", doc="BMC address: host, host:port or [IPv6]:port"),
        PowerParameterSpec("power_user", doc="BMC user name (at most 16 bytes)"),
        PowerParameterSpec(
            "power_pass", secret=True, doc="BMC password (at most 20 bytes, IPMI 2.0)"
        ),
        PowerParameterSpec("k_g", required=False, secret=True, doc="BMC key (K_g), if set"),
        PowerParameterSpec(
            "privilege_level", required=False, doc="USER, OPERATOR or ADMIN (default ADMIN)"
        ),
    )
    # "boot" for cycle: power on if off, hard reset if on (pyghmi's chassis control).
    operations = {
        "on": lambda cmd: _set(cmd, "on"),
        "off": lambda cmd: _set(cmd, "off"),
        "cycle": lambda cmd: _set(cmd, "boot"),
        "query": lambda cmd: _get(cmd),
    }

    def validate(self, params: Mapping[str, str]) -> dict[str, str]:
        out = dict(params)
        host, port = check.host_port("power_address", params["power_address"], IPMI_PORT)
        out["power_address"] = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        out["power_user"] = check.text("power_user", params["power_user"], 16, "user name")
        out["power_pass"] = check.text("power_pass", params["power_pass"], 20, "password")
        if "k_g" in params:
            out["k_g"] = check.text("k_g", params["k_g"], 20, "K_g key")
        if "privilege_level" in params:
            out["privilege_level"] = check.choice(
                "privilege_level", params["privilege_level"], tuple(PRIVILEGES)
            )
        return out

    def bmc_key(self, params: Mapping[str, str]) -> str:
        return params.get("power_address", "")

    def _installed(self) -> bool:
        return pyghmi_command is not None

    def _blocking(self, p: Mapping[str, str], op: Operation) -> tuple[str, Any, tuple]:
        host, port = check.host_port("power_address", p["power_address"], IPMI_PORT)
        bmc = f"BMC {p['power_address']}"
        privilege = PRIVILEGES[p.get("privilege_level", "ADMIN")]
        args = (host, port, p["power_user"], p["power_pass"], p.get("k_g"), privilege, op, bmc)
        return f"via {bmc}", _session, args


# -- blocking side (runs on a thread) ---------------------------------------------------


def _session(
    host: str,
    port: int,
    user: str,
    password: str,
    kg: str | None,
    privilege: int,
    op: Callable[[Any], T],
    bmc: str,
) -> T:
    try:
        cmd = pyghmi_command.Command(
            bmc=host,
            userid=user.encode(),
            password=password.encode(),
            port=port,
            kg=kg.encode() if kg else None,
            privlevel=privilege,
            keepalive=False,
        )
    except pyghmi_exceptions.IpmiException as exc:
        raise _login_error(bmc, user, exc) from None
    except Exception as exc:  # pyghmi raises plain errors on malformed answers
        raise PowerError(f"{bmc}: session setup failed: {exc!r}") from None
    try:
        return op(cmd)
    except pyghmi_exceptions.IpmiException as exc:
        raise PowerError(f"{bmc}: {exc or 'no answer'}") from None
    finally:
        with contextlib.suppress(Exception):
            cmd.ipmi_session.logout()


def _set(cmd: Any, state: str) -> None:
    cmd.set_power(state, wait=False)


def _get(cmd: Any) -> PowerState:
    state = cmd.get_power().get("powerstate")
    return {"on": PowerState.ON, "off": PowerState.OFF}.get(state, PowerState.UNKNOWN)


def _login_error(bmc: str, user: str, exc: Exception) -> PowerError:
    message = str(exc) if str(exc) not in ("", "None") else ""
    lowered = message.lower()
    if "password" in lowered or "unauthorized name" in lowered or "k_g" in lowered:
        return PowerError(
            f"{bmc} refused the credentials for user {user!r} ({message})", retryable=False
        )
    if "privilege" in lowered:
        return PowerError(f"{bmc}: {message}", retryable=False)
    if not message or "timeout" in lowered or "no longer connected" in lowered:
        return PowerError(f"{bmc} did not answer (no IPMI response; address, port, firewall?)")
    return PowerError(f"{bmc}: {message}")
