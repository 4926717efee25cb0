"""The errors node actions raise, apart from the lifecycle's own (IllegalTransition)
and the store's (NodeNotFound). Each maps to one HTTP status at the API boundary."""

from __future__ import annotations

from netboot.store.models import Node


class InvalidAction(ValueError):
    """Bad input for an action; ``field`` names it (API: 400). Nothing was changed."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class NoMatchingNode(LookupError):
    """No READY node satisfies the allocation constraints (API: 409)."""


class PowerActionFailed(RuntimeError):
    """The power driver failed; the node has been moved to ``node.status`` already."""

    def __init__(self, node: Node, action: str, message: str) -> None:
        super().__init__(f"power {action} of {node.hostname} failed: {message}")
        self.node = node
        self.action = action
        self.message = message
