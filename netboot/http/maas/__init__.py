"""A MAAS 2.0 API subset, so unchanged python-libmaas 0.6.8 and Juju's MAAS provider can
drive netboot. See docs/api.md for what is implemented and how it differs from MAAS."""

from __future__ import annotations

from collections.abc import Callable

from twisted.web import resource

from netboot.http.maas.api import MAASApi
from netboot.http.maas.handlers import Context
from netboot.http.maas.render import SiteFacts
from netboot.nodes.actions import NodeActions


def lease_ips(store, clock: Callable[[], float]) -> Callable[[], dict[str, str]]:
    """MAC -> address of every unexpired lease (the store reads the leases table)."""
    return lambda: store.lease_ips(clock())


def maas_root(actions: NodeActions, domain: str = "maas") -> resource.Resource:
    """The ``/MAAS`` resource: ``/MAAS/api/...``."""
    root = resource.Resource()
    ctx = Context(
        actions=actions, facts=SiteFacts(domain=domain), ips=lease_ips(actions.store, actions.clock)
    )
    root.putChild(b"api", MAASApi(ctx))
    return root
