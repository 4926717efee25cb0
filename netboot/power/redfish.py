"""``redfish``: a BMC speaking DMTF Redfish, through sushy.

Parameters follow MAAS: ``power_address`` (a URL, or host[:port] meaning https),
``power_user``, ``power_pass``, optional ``node_id`` (the ComputerSystem's id; may be
left out when the BMC lists exactly one system) and ``power_verify_ssl`` (default no:
BMCs ship self-signed certificates; say yes once the BMC has a trusted one).

on = ResetType On, off = ForceOff, cycle = ForceRestart if on else On, query =
PowerState (On/PoweringOn -> on, Off/PoweringOff -> off). sushy blocks, so each action
runs on a thread with a deadline; sushy's own connect/read timeouts are set just
under it and its server-side retries are off (the power queue retries instead).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from netboot.power import params as check
from netboot.power.base import (
    InvalidPowerParameters,
    PowerError,
    PowerParameterSpec,
    PowerState,
)
from netboot.power.blocking import BlockingDriver, Operation

T = TypeVar("T")

try:
    import sushy
    from sushy import exceptions as sushy_exceptions
except ImportError:  # pragma: no cover - only where sushy is absent
    sushy = None
    sushy_exceptions = None


class RedfishDriver(BlockingDriver):
    name = "redfish"
    library = "sushy"
    parameters = (
        PowerParameterSpec("power_address", doc="BMC URL, e.g. https://10.0.0.5 (host = https)"),
        PowerParameterSpec("power_user", doc="BMC user name"),
        PowerParameterSpec("power_pass", secret=True, doc="BMC password"),
        PowerParameterSpec(
            "node_id", required=False, doc="ComputerSystem id (default: the only system)"
        ),
        PowerParameterSpec(
            "power_verify_ssl", required=False, doc="verify the BMC's TLS certificate (y/n)"
        ),
    )
    operations = {
        "on": lambda system: system.reset_system(sushy.ResetType.ON),
        "off": lambda system: system.reset_system(sushy.ResetType.FORCE_OFF),
        "cycle": lambda system: _cycle(system),
        "query": lambda system: _state(system),
    }

    def validate(self, params: Mapping[str, str]) -> dict[str, str]:
        out = dict(params)
        out["power_address"] = check.http_url("power_address", params["power_address"])
        out["power_user"] = check.text("power_user", params["power_user"], 255, "user name")
        out["power_pass"] = check.text("power_pass", params["power_pass"], 255, "password")
        if "node_id" in params:
            node_id = params["node_id"].strip().strip("/")
            if not node_id or any(c in node_id for c in "?#\n "):
                raise InvalidPowerParameters("node_id", f"{params['node_id']!r} is not a system id")
            out["node_id"] = node_id
        if "power_verify_ssl" in params:
            verify = check.yes_no("power_verify_ssl", params["power_verify_ssl"])
            out["power_verify_ssl"] = "y" if verify else "n"
        return out

    def bmc_key(self, params: Mapping[str, str]) -> str:
        return f"{params.get('power_address', '')}#{params.get('node_id', '')}"

    def _installed(self) -> bool:
        return sushy is not None

    def _blocking(self, p: Mapping[str, str], op: Operation) -> tuple[str, Any, tuple]:
        # sushy's own connect/read timeouts end just before the driver's deadline.
        bmc = f"Redfish BMC {p['power_address']}"
        return f"via {bmc}", _with_system, (p, max(1.0, self.timeout - 1.0), op, bmc)


# -- blocking side (runs on a thread) ---------------------------------------------------


def _with_system(p: Mapping[str, str], timeout: float, op: Callable[[Any], T], bmc: str) -> T:
    try:
        root = sushy.Sushy(
            p["power_address"],
            username=p["power_user"],
            password=p["power_pass"],
            verify=p.get("power_verify_ssl", "n") == "y",
            read_timeout=timeout,
            connect_timeout=timeout,
            server_side_retries=0,
        )
        collection = root.get_system_collection()
        node_id = p.get("node_id")
        if node_id:
            system = root.get_system(f"{collection.path.rstrip('/')}/{node_id}")
        else:
            members = collection.members_identities
            if len(members) != 1:
                listed = ", ".join(m.rstrip("/").rsplit("/", 1)[-1] for m in members) or "none"
                raise PowerError(
                    f"{bmc} has {len(members)} systems ({listed}): set node_id", retryable=False
                )
            system = root.get_system(members[0])
        return op(system)
    except PowerError:
        raise
    except sushy_exceptions.AccessError as exc:
        raise PowerError(
            f"{bmc} refused the credentials for user {p['power_user']!r} (HTTP {exc.status_code})",
            retryable=False,
        ) from None
    except sushy_exceptions.ResourceNotFoundError:
        raise PowerError(
            f"{bmc} has no system {p.get('node_id', '')!r} (HTTP 404)", retryable=False
        ) from None
    except sushy_exceptions.ConnectionError as exc:
        raise PowerError(f"cannot reach {bmc}: {_connection_reason(exc)}") from None
    except sushy_exceptions.HTTPError as exc:
        retry = exc.status_code is None or exc.status_code >= 500
        raise PowerError(f"{bmc}: {_first_line(exc)}", retryable=retry) from None
    except sushy_exceptions.SushyError as exc:
        raise PowerError(f"{bmc}: {_first_line(exc)}", retryable=False) from None


def _cycle(system: Any) -> None:
    if system.power_state in (sushy.PowerState.ON, sushy.PowerState.POWERING_ON):
        system.reset_system(sushy.ResetType.FORCE_RESTART)
    else:
        system.reset_system(sushy.ResetType.ON)


def _state(system: Any) -> PowerState:
    state = system.power_state
    if state in (sushy.PowerState.ON, sushy.PowerState.POWERING_ON):
        return PowerState.ON
    if state in (sushy.PowerState.OFF, sushy.PowerState.POWERING_OFF):
        return PowerState.OFF
    return PowerState.UNKNOWN


def _connection_reason(exc: Exception) -> str:
    """The OS's reason at the bottom of sushy's/urllib3's nested connection error
    ("[Errno 111] Connection refused"), else its first line."""
    reasons = re.findall(r"\[Errno -?\d+\] [^'\")\]]+", str(exc))
    return reasons[-1].strip() if reasons else _first_line(exc)


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__
