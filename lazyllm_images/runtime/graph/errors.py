"""Errors of a run. ``str(error)`` is what the CLI prints after ``error: ``.

- ``NodeError``: ``node "1" (name) raised ValueError: boom``, or ``node "1" (name) was stopped: the code ran longer
  than the 30 s time limit`` when the sandbox stopped it. The innermost failing node is named (a Code node inside
  a SubGraph, not the SubGraph).
- ``EdgeError``: an edge formatter failed on the value it got.
"""

from __future__ import annotations

from .problems import show
from .spec import NodeSpec

STOP_REASONS = ("timeout", "cpu", "memory", "killed", "too_large")
SANDBOX_HINT = ("Code nodes run in a sandbox: no network, no new processes, files only in the current (scratch) "
                "folder, limits on time and memory")


class GraphRunError(Exception):
    hint: str = ""

    def as_dict(self) -> dict:
        return {"message": str(self), "hint": self.hint}


class NodeError(GraphRunError):
    def __init__(self, node: NodeSpec, exc_type: str, message: str, *, reason: str = "exception",
                 traceback: str = "", hint: str = "", stdout: str = "") -> None:
        self.node, self.exc_type, self.message, self.reason = node, exc_type, message, reason
        self.traceback, self.hint, self.stdout = traceback, hint, stdout
        super().__init__(self._text())

    @property
    def stopped(self) -> bool:
        return self.reason in STOP_REASONS

    def _text(self) -> str:
        if self.stopped:
            return f"{self.node.label} was stopped: {self.message}"
        return f"{self.node.label} raised {self.exc_type}" + (f": {self.message}" if self.message else "")

    def as_dict(self) -> dict:
        return {"message": str(self), "hint": self.hint, "node_id": self.node.id, "name": self.node.name,
                "kind": self.node.kind, "path": self.node.path, "type": self.exc_type, "reason": self.reason,
                "detail": self.message, "traceback": self.traceback}


class EdgeError(GraphRunError):
    def __init__(self, path: str, formatter: str, exc: BaseException) -> None:
        self.path, self.formatter = path, formatter
        self.exc_type, self.message = type(exc).__name__, str(exc)
        text = f"the formatter {show(formatter)} of {path} raised {self.exc_type}"
        super().__init__(text + (f": {self.message}" if self.message else ""))

    def as_dict(self) -> dict:
        return {"message": str(self), "hint": self.hint, "path": self.path, "type": self.exc_type,
                "detail": self.message}


def from_exception(node: NodeSpec, exc: BaseException) -> GraphRunError:
    """Name the node an exception came out of (errors already naming a node pass through)."""
    if isinstance(exc, GraphRunError):
        return exc
    message = str(exc)
    if isinstance(exc, AssertionError) and not message:
        message = "an internal check of upstream's semantics failed"
    return NodeError(node, type(exc).__name__, message)
