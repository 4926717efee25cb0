"""The node page's power settings form: choose a power type, fill in that driver's
parameters, save -- checked exactly as the MAAS API checks them (``NodeActions.set_power``
-> ``netboot.power.base.validate_parameters``), optionally also asking the BMC first
(``netboot.power.registry.check``, as ``netboot power set`` does).

No JavaScript (the UI's CSP forbids it): a small GET form picks the type whose fields
are shown (``?power_type=``), the POST form saves them. Secrets are never written into
the page: a stored secret shows as an empty password field that keeps the stored value
when left blank (only while the type stays the same), or is removed with its "clear" box
when optional. ``power_form`` is pure; ``PowerForm`` is the resource mixin.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from twisted.internet import defer
from twisted.python.failure import Failure
from twisted.web.server import Request

from netboot.http.ui.auth import Session
from netboot.http.ui.base import arg, log
from netboot.nodes.actions import InvalidAction, NodeNotFound
from netboot.power import registry
from netboot.power.base import PowerParameterSpec

FIELD_PREFIX = "param_"  # form field name of parameter ``x``: ``param_x``
CLEAR_PREFIX = "clear_"  # checkbox removing an optional stored secret


@dataclass(frozen=True, slots=True)
class PowerField:
    name: str
    doc: str
    required: bool
    secret: bool
    value: str  # always "" for secrets
    stored: bool  # a value is stored (for secrets: "leave blank to keep")


@dataclass(frozen=True, slots=True)
class PowerFormView:
    types: tuple[str, ...]
    power_type: str  # the type whose fields are shown
    current_type: str  # the node's stored type
    fields: tuple[PowerField, ...]
    error: str
    can_check: bool  # the driver can ask the BMC (query)


def power_form(
    types: Sequence[str],
    power_type: str,
    current_type: str,
    specs: Sequence[PowerParameterSpec],
    stored: Mapping[str, str],
    entered: Mapping[str, str] | None = None,
    error: str = "",
    can_check: bool = False,
) -> PowerFormView:
    """What the form shows. ``stored`` counts only when ``power_type`` is the node's
    type; ``entered`` (a refused submission) wins over it for non-secret fields."""
    same = power_type == current_type
    fields = []
    for spec in specs:
        has = same and bool(stored.get(spec.name))
        if spec.secret:
            value = ""
        elif entered is not None:
            value = entered.get(spec.name, "")
        else:
            value = stored.get(spec.name, "") if same else ""
        fields.append(PowerField(spec.name, spec.doc, spec.required, spec.secret, value, has))
    return PowerFormView(tuple(types), power_type, current_type, tuple(fields), error, can_check)


def submitted_parameters(
    specs: Sequence[PowerParameterSpec],
    form: Mapping[str, str],
    stored: Mapping[str, str],
    same_type: bool,
) -> dict[str, str]:
    """The parameters a submission means: a blank secret keeps the stored one (same
    type only) unless its clear box is ticked; blank optional values are left out."""
    params: dict[str, str] = {}
    for spec in specs:
        value = form.get(FIELD_PREFIX + spec.name, "")
        if spec.secret and not value and same_type and not form.get(CLEAR_PREFIX + spec.name):
            value = stored.get(spec.name, "")
        if not spec.secret:
            value = value.strip()
        if value:
            params[spec.name] = value
    return params


class PowerForm:
    """Mixin for the UI resource: needs ``store``, ``actions``, ``_page``, ``_error``,
    ``_redirect``, ``_deferred`` and ``_node_context`` (the node page's context)."""

    store: Any
    actions: Any

    def _power_view(
        self,
        request: Request,
        node: Any,
        entered: Mapping[str, str] | None = None,
        error: str = "",
        power_type: str | None = None,
    ) -> PowerFormView | None:
        if self.actions is None:
            return None
        types = registry.power_types()
        chosen = power_type or arg(request, "power_type") or node.power_type
        if chosen not in types:
            chosen = node.power_type if node.power_type in types else types[0]
        try:
            driver = self.actions.power(chosen)
        except KeyError:
            return None
        return power_form(
            types,
            chosen,
            node.power_type,
            driver.parameters,
            self.store.power_parameters(node.system_id),
            entered,
            error,
            bool(driver.can_query),
        )

    def _node_power(self, request: Request, session: Session, system_id: str) -> bytes | int:
        if self.actions is None:
            return self._error(request, session, 503, "Unavailable", "node actions are not enabled")
        node = self.store.node(system_id)
        if node is None:
            return self._error(request, session, 404, "Not Found", f"no node {system_id!r}")
        power_type = arg(request, "power_type")
        try:
            driver = self.actions.power(power_type)
        except KeyError:
            known = ", ".join(registry.power_types())
            return self._power_refused(
                request, session, node, {}, f"power type: unknown {power_type!r} ({known})", None
            )
        same = power_type == node.power_type
        stored = self.store.power_parameters(system_id)
        form = {
            k.decode("utf-8", "replace"): v[0].decode("utf-8", "replace")
            for k, v in (request.args or {}).items()
            if v
        }
        params = submitted_parameters(driver.parameters, form, stored, same)
        entered = dict(params)
        user = session.username or ""
        try:
            cleaned = self.actions.check_power(power_type, params)
        except InvalidAction as exc:
            return self._power_refused(
                request, session, node, entered, _field_error(exc), power_type
            )
        if form.get("check") and driver.can_query:
            raw = getattr(driver, "driver", driver)  # the appliance's queued driver's own
            d = registry.check(raw, cleaned)
        else:
            d = defer.succeed(None)

        def save(result: Any) -> bytes:
            if result is not None and not result.ok:
                return self._power_refused(
                    request, session, node, entered, f"not saved: {result.message}", power_type
                )
            try:
                self.actions.set_power(system_id, user, power_type, cleaned)
            except (InvalidAction, NodeNotFound) as exc:
                return self._power_refused(
                    request, session, node, entered, _field_error(exc), power_type
                )
            log.info(
                "UI {user} set power of {system_id}: {ptype} {params}",
                user=user,
                system_id=system_id,
                ptype=power_type,
                params=registry.public_parameters(power_type, cleaned),
            )
            checked = f"; the BMC answered: power is {result.state.value}" if result else ""
            session.flash.append(f"power settings saved ({power_type}){checked}.")
            return self._redirect(request, "/ui/nodes/" + quote(system_id, safe="") + "#power")

        def crashed(failure: Failure) -> bytes:
            log.failure("UI power check of {system_id} failed", failure, system_id=system_id)
            return self._power_refused(
                request, session, node, entered, "the BMC check failed unexpectedly", power_type
            )

        return self._deferred(request, d.addCallbacks(save, crashed))

    def _power_refused(
        self,
        request: Request,
        session: Session,
        node: Any,
        entered: Mapping[str, str],
        message: str,
        power_type: str | None,
    ) -> bytes:
        log.warn(
            "UI {user} power settings of {system_id} refused: {message}",
            user=session.username or "",
            system_id=node.system_id,
            message=message,
        )
        request.setResponseCode(400)
        view = self._power_view(request, node, entered, message, power_type)
        return self._node_page(request, session, node, view)


def _field_error(exc: Exception) -> str:
    """``power_parameters_power_address: ...`` (the API's name) -> ``power_address: ...``."""
    field = getattr(exc, "field", "")
    message = getattr(exc, "message", str(exc))
    return f"{field.removeprefix('power_parameters_')}: {message}" if field else message
