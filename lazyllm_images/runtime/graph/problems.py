"""Validation problems: each has the JSON path of what is wrong, a message that names that path, and a hint."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

ERROR, WARNING = "error", "warning"
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def jp(base: str, key: Any) -> str:
    """Extend a JSON path: ``jp("$", "nodes")`` -> ``$.nodes``; ``jp("$.nodes", 0)`` -> ``$.nodes[0]``."""
    if isinstance(key, int):
        return f"{base}[{key}]"
    if isinstance(key, str) and _IDENT.match(key):
        return f"{base}.{key}"
    return f"{base}[{json.dumps(key, ensure_ascii=False)}]"


def show(value: Any) -> str:
    """A value inside a message: ids and names in double quotes, as JSON spells them."""
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(value)


@dataclass(frozen=True)
class Problem:
    path: str
    message: str
    hint: str = ""
    level: str = ERROR

    def as_dict(self) -> dict:
        out = {"level": self.level, "path": self.path, "message": self.message}
        if self.hint:
            out["hint"] = self.hint
        return out

    def __str__(self) -> str:
        return self.message


@dataclass
class Report:
    """Everything validation found: ``errors`` stop the graph from running, ``warnings`` do not."""
    problems: list[Problem] = field(default_factory=list)

    def error(self, path: str, message: str, hint: str = "") -> None:
        self.problems.append(Problem(path, message, hint, ERROR))

    def warn(self, path: str, message: str, hint: str = "") -> None:
        self.problems.append(Problem(path, message, hint, WARNING))

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.level == ERROR]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.level == WARNING]

    @property
    def ok(self) -> bool:
        return not self.errors

    def as_dict(self) -> dict:
        return {"ok": self.ok, "errors": [p.as_dict() for p in self.errors],
                "warnings": [p.as_dict() for p in self.warnings]}


class GraphValidationError(ValueError):
    """Raised by ``load_graph(..., strict=True)``: the graph has errors; ``report`` lists all of them."""

    def __init__(self, report: Report) -> None:
        self.report = report
        first = report.errors[0].message if report.errors else "invalid graph"
        more = len(report.errors) - 1
        super().__init__(first + (f" (and {more} more problem{'s' if more > 1 else ''})" if more > 0 else ""))
