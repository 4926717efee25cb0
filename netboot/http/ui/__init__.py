"""The operator web UI at ``/ui/``: server-rendered jinja2 pages, no JavaScript.

``auth`` (passwords, sessions, CSRF) and ``views`` (what pages show) are pure;
``pages`` is the twisted.web resource; ``accounts`` is the ``netboot user`` CLI.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from twisted.internet import defer, threads

if TYPE_CHECKING:
    from netboot.http.ui.pages import UIResource


def build_ui(
    store: Any,
    boot_dir: Path,
    clock: Callable[[], float],
    reactor: Any,
    actions: Any = None,
    images: Any = None,
) -> UIResource:
    """The /ui/ resource. Password checks and file hashing run in ``reactor``'s thread
    pool; ``actions`` (a NodeActions) enables the node page's buttons; ``images`` (an
    ImageCache) lists cached images and offers their releases to Deploy."""

    def run_blocking(fn: Callable[..., Any], *args: Any) -> Any:
        if reactor is None:  # no reactor given (unit tests): run inline
            return defer.maybeDeferred(fn, *args)
        return threads.deferToThreadPool(reactor, reactor.getThreadPool(), fn, *args)

    from netboot.http.ui.pages import UIResource  # the web stack: only when serving

    return UIResource(
        store, boot_dir, clock, run_blocking, actions=actions, images=images, reactor=reactor
    )


__all__ = ["build_ui"]
