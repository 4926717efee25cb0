"""The UI's jinja2 environment: HTML autoescaping always on, StrictUndefined (a missing
variable is an error, never an empty cell)."""

from __future__ import annotations

from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from netboot.http.ui.views import human_bytes, status_classes, when


class PageRenderer:
    def __init__(self) -> None:
        self._env = Environment(
            loader=PackageLoader("netboot", "templates/ui"),
            undefined=StrictUndefined,
            autoescape=True,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self._env.filters["when"] = when
        self._env.filters["human_bytes"] = human_bytes
        self._env.globals["status_classes"] = status_classes

    def render(self, template: str, **context: Any) -> bytes:
        return self._env.get_template(template).render(**context).encode("utf-8")
