"""The /ui/ content pages: node list, node page and its actions, leases, images, alarms.
Each handler gets an authenticated session; the gate in ``pages.py`` has run."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from twisted.internet import defer
from twisted.python.failure import Failure
from twisted.web.server import Request

from netboot.http.ui.auth import Session
from netboot.http.ui.base import ALARMS_TABLE, UIBase, arg, log
from netboot.http.ui.images import list_boot_files
from netboot.http.ui.power import PowerForm, PowerFormView
from netboot.http.ui.views import (
    ACTION_NAMES,
    available_actions,
    deploy_releases,
    disk_rows,
    event_rows,
    filter_nodes,
    image_rows,
    lease_rows,
    paginate,
    parse_status_filter,
)
from netboot.nodes.actions import (
    IllegalTransition,
    InvalidAction,
    NodeNotFound,
    PowerActionFailed,
)
from netboot.nodes.lifecycle import NodeStatus
from netboot.store.leases import LeaseStore

ACTION_WAIT = 10.0  # seconds an action's POST waits for the power driver


class ContentPages(PowerForm, UIBase):
    # -- pages --------------------------------------------------------------------------

    def _nodes(self, request: Request, session: Session) -> bytes:
        nodes = self.store.nodes()
        query = arg(request, "q")
        filter_error = ""
        try:
            status = parse_status_filter(arg(request, "status"))
        except ValueError as exc:
            status, filter_error = None, str(exc)
        counts = Counter(n.status for n in nodes)
        page = paginate(filter_nodes(nodes, query, status), arg(request, "page"))
        link = {"q": query, "status": status.name.lower() if status is not None else ""}
        return self._page(
            request,
            session,
            "nodes.html.j2",
            section="/ui/",
            nodes=page.items,
            page=page,
            matched=page.total,
            page_link=lambda number: "/ui/?" + urlencode({**link, "page": number}),
            total=len(nodes),
            query=query,
            selected_status=status,
            statuses=list(NodeStatus),
            counts=counts,
            filter_error=filter_error,
        )

    def _node(self, request: Request, session: Session, system_id: str) -> bytes:
        node = self.store.node(system_id)
        if node is None:
            return self._error(request, session, 404, "Not Found", f"no node {system_id!r}")
        return self._node_page(request, session, node, self._power_view(request, node))

    def _node_page(
        self, request: Request, session: Session, node: Any, power: PowerFormView | None
    ) -> bytes:
        system_id = node.system_id
        results = [
            {
                "name": r.name,
                "exit_status": r.exit_status,
                "time": r.time,
                "output": r.output.decode("utf-8", "replace"),
            }
            for r in self.store.script_results(system_id)
        ]
        hardware = [
            (k, v if isinstance(v, str) else json.dumps(v, indent=1, sort_keys=True))
            for k, v in sorted(node.hardware.items())
        ]
        return self._page(
            request,
            session,
            "node.html.j2",
            section="/ui/",
            node=node,
            power=power,
            disks=disk_rows(node),
            hardware=hardware,
            events=event_rows(self.store.events(system_id)),
            results=results,
            actions=available_actions(node.status) if self.actions is not None else [],
            distros=deploy_releases(self._cached_images()),
            erase_default=bool(getattr(self.actions, "erase_on_release", False)),
        )

    def _node_action(self, request: Request, session: Session, system_id: str) -> bytes | int:
        action = arg(request, "action")
        back = "/ui/nodes/" + quote(system_id, safe="")
        if self.actions is None:
            return self._error(request, session, 503, "Unavailable", "node actions are not enabled")
        if action not in ACTION_NAMES:
            return self._error(request, session, 400, "Bad Request", f"action: unknown {action!r}")
        if self.store.node(system_id) is None:
            return self._error(request, session, 404, "Not Found", f"no node {system_id!r}")
        user = session.username or ""
        kwargs: dict[str, Any] = {}
        if action == "deploy" and arg(request, "distro_series"):
            kwargs["distro_series"] = arg(request, "distro_series")
        if action == "release":  # the form's checkbox (ticked by [deploy] erase_on_release)
            kwargs["erase"] = arg(request, "erase") == "1"
        d = defer.maybeDeferred(getattr(self.actions, action), system_id, user, **kwargs)
        label = action.replace("_", " ")

        def done(_: object) -> str:
            node = self.store.node(system_id)
            log.info(
                "UI {user} {action} {system_id}", user=user, action=action, system_id=system_id
            )
            return f"{label}: done, now {node.status.label}."

        def failed(failure: Failure) -> str:
            failure.trap(IllegalTransition, InvalidAction, NodeNotFound, PowerActionFailed)
            if isinstance(failure.value, IllegalTransition):
                message = f"{label} refused: the node is {failure.value.current.label}"
            else:
                message = f"{label} failed: {failure.getErrorMessage()}"
            log.warn(
                "UI {user} {action} {system_id}: {message}",
                user=user,
                action=action,
                system_id=system_id,
                message=message,
            )
            return message

        # Answer when the action finished, or after ACTION_WAIT s if a power driver is
        # slow: its outcome then appears as a flash on the operator's next page.
        answered: defer.Deferred = defer.Deferred()

        def finished(message: str) -> None:
            session.flash.append(message)
            if not answered.called:
                answered.callback(None)

        d.addCallbacks(done, failed).addCallback(finished)
        if not answered.called and self.reactor is not None:

            def still_running() -> None:
                if not answered.called:
                    session.flash.append(
                        f"{label}: requested; the power driver has not answered yet "
                        "(its result will show here)."
                    )
                    answered.callback(None)

            timer = self.reactor.callLater(ACTION_WAIT, still_running)
            answered.addBoth(lambda r: (timer.active() and timer.cancel(), r)[-1])
        answered.addCallback(lambda _: self._redirect(request, back))
        return self._deferred(request, answered)

    def _lease_store(self) -> LeaseStore:
        # Its own read connection to the store file, as the DHCP service has.
        if self._lease_reader is None:
            self._lease_reader = LeaseStore(Path(self.store.path))
        return self._lease_reader

    def _leases(self, request: Request, session: Session) -> bytes:
        rows = lease_rows(self._lease_store().query(), self.store.nodes(), self.clock())
        return self._page(
            request,
            session,
            "leases.html.j2",
            section="/ui/leases",
            rows=rows,
            holding=sum(r.holding for r in rows),
        )

    def _cached_images(self) -> list[Any]:
        if self.images is None:
            return []
        try:
            return self.images.images()
        except OSError as exc:
            log.warn("UI: cannot read the image cache: {error}", error=str(exc))
            return []

    def _images(self, request: Request, session: Session) -> int:
        def read() -> tuple[Any, list[Any]]:  # in a thread: stats and hashes files
            return list_boot_files(self.boot_dir, self.hashes), self._cached_images()

        def show(found: tuple[Any, list[Any]]) -> bytes:
            listing, cached = found
            return self._page(
                request,
                session,
                "images.html.j2",
                section="/ui/images",
                files=listing.files,
                truncated=listing.truncated,
                error=listing.error or "",
                boot_dir=str(self.boot_dir),
                cache=image_rows(cached),
                has_cache=self.images is not None,
            )

        return self._deferred(request, self.run_blocking(read).addCallback(show))

    def _alarms(self, request: Request, session: Session) -> bytes:
        available = self.store.table_exists(ALARMS_TABLE)
        return self._page(
            request,
            session,
            "alarms.html.j2",
            section="/ui/alarms",
            available=available,
            alarms=self._lease_store().alarms(limit=500) if available else [],
        )
