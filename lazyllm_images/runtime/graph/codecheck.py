"""Static checks of the Python text of ``Code`` nodes (and of ``cond``, ``conversion``, ``stop_condition``,
``code_str``): it parses, and it defines the function upstream would call. Nothing here executes the code.

Upstream (``compile_func``) takes the entry point from the first match of ``def\\s+(\\w+)\\s*\\(`` in the raw text,
executes the module and pops that name from its namespace. So the first ``def`` wins even when a ``main`` follows
it, and with ``vars_for_code`` the function cannot see top-level imports or helpers (they land in a separate locals
dict). Both are kept, with a warning.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

from .problems import Report

DEF_RE = re.compile(r"def\s+(\w+)\s*\(")


@dataclass(frozen=True)
class CodeInfo:
    entry: str
    params: tuple[str, ...]          # positional parameter names of the entry point, when it is a plain def
    has_varargs: bool
    required: int                    # positional parameters without a default


def entry_name(code: str) -> str | None:
    m = DEF_RE.search(code)
    return m.group(1) if m else None


def _top_level_bindings(body: list[ast.stmt]) -> dict[str, ast.stmt]:
    """Names bound when the module body runs (not inside functions or classes), with the binding statement."""
    out: dict[str, ast.stmt] = {}
    for stmt in body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.setdefault(stmt.name, stmt)
        elif isinstance(stmt, (ast.Import, ast.ImportFrom)):
            for alias in stmt.names:
                out.setdefault((alias.asname or alias.name).split(".")[0], stmt)
        elif isinstance(stmt, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            for t in targets:
                for n in ast.walk(t):
                    if isinstance(n, ast.Name):
                        out.setdefault(n.id, stmt)
        else:
            for name in ("body", "orelse", "finalbody", "handlers"):
                inner = getattr(stmt, name, None)
                if isinstance(inner, list):
                    for k, v in _top_level_bindings([s for s in inner if isinstance(s, ast.stmt)]).items():
                        out.setdefault(k, v)
                    for h in inner:
                        if isinstance(h, ast.ExceptHandler):
                            for k, v in _top_level_bindings(h.body).items():
                                out.setdefault(k, v)
    return out


def check_code(code: object, path: str, report: Report, *, what: str = "Code",
               vars_for_code: object = None) -> CodeInfo | None:
    """Check one code string; problems go to ``report`` with ``path``. Returns what the executor needs to know."""
    if not isinstance(code, str):
        report.error(path, f"{what} at {path} must be a string of Python code, not {type(code).__name__}")
        return None
    try:
        tree = ast.parse(code)
    except SyntaxError as e:
        report.error(path, f"syntax error in {path} (line {e.lineno})", hint=str(e.msg))
        return None
    name = entry_name(code)
    if name is None:
        report.error(path, f"no function defined in {path}",
                     hint="a Code string must define a function with `def`; upstream calls the first one")
        return None
    bindings = _top_level_bindings(tree.body)
    stmt = bindings.get(name)
    if stmt is None:
        report.error(path, f"the first `def` in {path} ({name}) is not a top-level function",
                     hint="upstream calls the first `def` it finds in the text; put the entry point first")
        return None
    _warn_quirks(tree, name, path, report, vars_for_code)
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
        a = stmt.args
        positional = [x.arg for x in a.posonlyargs + a.args]
        return CodeInfo(name, tuple(positional), a.vararg is not None, len(positional) - len(a.defaults))
    return CodeInfo(name, (), True, 0)


def _warn_quirks(tree: ast.Module, name: str, path: str, report: Report, vars_for_code: object) -> None:
    defs = [s.name for s in tree.body if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef))]
    if len(defs) > 1 and defs[0] == name and name != "main" and "main" in defs:
        report.warn(path, f"{path} defines several functions; upstream runs the first one, {name}, not main",
                    hint="kept as upstream does it; move main to the top if it is the entry point")
    if vars_for_code is not None:
        hidden = [s for s in tree.body if isinstance(s, (ast.Import, ast.ImportFrom))
                  or (isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and s.name != name)]
        if hidden:
            report.warn(path, f"with vars_for_code, the top-level imports and helpers of {path} are not visible "
                        f"inside {name} (an upstream bug, kept)",
                        hint="import inside the function, or pass the value in vars_for_code")
