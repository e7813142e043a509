"""Tool descriptions for agents (``FunctionCall``): name, description and a JSON schema of the parameters, read
statically from a Code tool's function (signature, annotations, Google-style ``Args:`` docstring), as upstream's
ToolManager derives them."""

from __future__ import annotations

import ast
import re

from .codecheck import entry_name
from .spec import NodeSpec

_JSON_TYPES = {"int": "integer", "float": "number", "str": "string", "bool": "boolean", "list": "array",
               "dict": "object", "List": "array", "Dict": "object"}
_ARG_LINE = re.compile(r"^\s*(\w+)\s*(?:\(([^)]*)\))?\s*:\s*(.*)$")


def _doc_args(doc: str) -> tuple[str, dict[str, str]]:
    lines, summary, args, in_args = doc.splitlines(), [], {}, False
    for line in lines:
        if line.strip() in ("Args:", "Arguments:", "Parameters:"):
            in_args = True
            continue
        if in_args:
            m = _ARG_LINE.match(line)
            if m:
                args[m.group(1)] = m.group(3).strip()
            elif line.strip() and not line.startswith((" ", "\t")):
                in_args = False
        elif not in_args and line.strip() and not args:
            summary.append(line.strip())
    return " ".join(summary), args


def describe(tool: NodeSpec) -> tuple[str, dict]:
    if tool.kind == "Code":
        return _describe_code(tool.args.get("code") or "")
    if tool.kind == "HttpTool":
        names = sorted(set(re.findall(r"\{\{([^}]+)\}\}", repr(tool.args))))
        return (tool.args.get("doc") or "", {"type": "object", "required": names,
                                            "properties": {n: {"type": "string"} for n in names}})
    return "", {"type": "object", "properties": {}}


def _describe_code(code: str) -> tuple[str, dict]:
    name = entry_name(code)
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return "", {"type": "object", "properties": {}}
    func = next((s for s in tree.body if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef)) and s.name == name),
                None)
    if func is None:
        return "", {"type": "object", "properties": {}}
    summary, docs = _doc_args(ast.get_docstring(func) or "")
    a = func.args
    params = a.posonlyargs + a.args
    first_default = len(params) - len(a.defaults)
    props, required = {}, []
    for i, p in enumerate(params + a.kwonlyargs):
        kind = _JSON_TYPES.get(ast.unparse(p.annotation).split("[")[0], "string") if p.annotation else "string"
        props[p.arg] = {"type": kind, **({"description": docs[p.arg]} if p.arg in docs else {})}
        kw_default = a.kw_defaults[i - len(params)] if i >= len(params) else None
        if (i < len(params) and i < first_default) or (i >= len(params) and kw_default is None):
            required.append(p.arg)
    return summary, {"type": "object", "properties": props, "required": required}
