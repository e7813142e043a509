"""Reading a node's ``args`` as upstream's ``NodeConstructor.build`` does, with every fault reported.

Upstream calls the kind's constructor as ``f(**args)`` when ``args`` is a dict whose keys are all parameter names,
else ``f(args)`` (the whole value is the first argument). So ``"args": "def f(x): ..."`` is a Code node and
``"args": {"other": 5}`` a Constant whose value is that dict, while ``{"code": ..., "bogus": 1}`` is an unknown
argument (upstream fails with a confusing TypeError). ``LLM``/``Embedding`` take the whole dict and dispatch on
``type``. Kind-specific checks are in ``kindcheck``.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from .kinds import KINDS, REQUIRED, Kind
from .problems import jp, show
from .spec import GraphSpec, NodeSpec

if TYPE_CHECKING:
    from .load import Loader


def arg_path(node: NodeSpec, key: str) -> str:
    """The JSON path of one argument: ``$.nodes[0].args.code``, or ``$.nodes[0].args`` when args is that value."""
    apath, raw = jp(node.path, "args"), node.raw.get("args")
    if isinstance(raw, dict) and (key in raw or not node.kind_info.any_value):
        return jp(apath, key)
    return apath if key == node.kind_info.first_param else jp(apath, key)


def build_args(loader: Loader, node: NodeSpec, raw: Any) -> None:
    from . import kindcheck
    kind = node.kind_info
    raw = _control_args(loader, node, raw)
    args = _whole_dict(loader, node, kind, raw) if kind.whole_dict else _normalize(loader, node, kind, raw)
    if args is None:
        return
    node.args = args
    check = kindcheck.CHECKS.get(node.kind)
    if check is not None:
        check(loader, node)


def _control_args(loader: Loader, node: NodeSpec, raw: Any) -> Any:
    if not isinstance(raw, dict):
        return raw
    apath = jp(node.path, "args")
    raw = dict(raw)
    names = raw.pop("_lazyllm_arg_names", None)
    if names is not None:
        if isinstance(names, list) and all(isinstance(n, str) for n in names):
            node.arg_names = names
        else:
            p = jp(apath, "_lazyllm_arg_names")
            loader.report.error(p, f"_lazyllm_arg_names at {p} must be a list of argument names")
    if raw.pop("_lazyllm_enable_report", False):
        p = jp(apath, "_lazyllm_enable_report")
        loader.report.warn(p, f"{p} is ignored: node reports go to the event stream (--trace, SSE)")
    return raw


def _normalize(loader: Loader, node: NodeSpec, kind: Kind, raw: Any) -> dict:
    apath = jp(node.path, "args")
    params = kind.params
    if isinstance(raw, dict) and set(raw) <= set(params):
        given = raw
    elif isinstance(raw, dict) and not kind.any_value:
        for key in raw:
            if key not in params:
                loader.report.error(jp(apath, key), f"unknown argument {show(key)} for kind {kind.name} at "
                                    f"{jp(apath, key)}", hint=f"{kind.name} takes: {', '.join(_public(params))}")
        given = {k: v for k, v in raw.items() if k in params}
    else:
        given = {kind.first_param: raw}
    return _fill(loader, kind, params, given, apath)


def _fill(loader: Loader, kind: Kind, params: dict, given: dict, apath: str, name: str = "") -> dict:
    args: dict[str, Any] = {}
    for key, default in params.items():
        if key in given:
            args[key] = given[key]
        elif default is REQUIRED:
            loader.report.error(apath, f"missing argument {show(key)} for kind {name or kind.name} at {apath}")
        else:
            args[key] = copy.copy(default)
    return args


def _public(params: dict) -> list[str]:
    return [p for p in params if not p.startswith("_")]


def _whole_dict(loader: Loader, node: NodeSpec, kind: Kind, raw: Any) -> dict | None:
    """``LLM`` and ``Embedding``: ``{"type": "local"|"online", ...}`` plus the local or online kind's args."""
    apath = jp(node.path, "args")
    if not isinstance(raw, dict):
        loader.report.error(apath, f"args of kind {kind.name} at {apath} must be an object with \"type\"")
        return None
    if "type" not in raw:
        loader.report.error(apath, f"missing argument \"type\" for kind {kind.name} at {apath}",
                            hint=f"type is one of {', '.join(kind.dispatch)}")
        return None
    t = raw["type"]
    if t not in kind.dispatch:
        p = jp(apath, "type")
        loader.report.error(p, f"type {show(t)} at {p} must be one of {', '.join(kind.dispatch)}")
        return None
    target = KINDS[kind.dispatch[t]]
    extra = {"type": REQUIRED, "keys": None} if kind.name == "LLM" else {"type": REQUIRED}
    params = {**extra, **target.params}
    for key in raw:
        if key not in params:
            loader.report.error(jp(apath, key), f"unknown argument {show(key)} for kind {kind.name} (type {t}) at "
                                f"{jp(apath, key)}", hint=f"{target.name} takes: {', '.join(_public(target.params))}")
    given = {k: v for k, v in raw.items() if k in params}
    return _fill(loader, kind, params, given, apath, name=f"{kind.name} (type {t})")


# ----------------------------------------------------------------------------------------------- references
def add_ref(loader: Loader, node: NodeSpec, key: str, value: Any, path: str, kinds: tuple[str, ...],
            what: str, optional: bool = False) -> None:
    """Record an id reference (string, or list of strings) to resolve once every node is known."""
    if value is None:
        return
    items = value if isinstance(value, list) else [value]
    for i, item in enumerate(items):
        p = jp(path, i) if isinstance(value, list) else path
        k = f"{key}[{i}]" if isinstance(value, list) else key
        if not isinstance(item, str):
            if not optional:
                loader.report.error(p, f"{p} must be the id (a string) of {what}, not {type(item).__name__}")
            continue
        loader.pending_refs.append((node, k, item, p, kinds, what if not optional else "?" + what))


def resolve_refs(loader: Loader) -> None:
    for node, key, ref_id, path, kinds, what in loader.pending_refs:
        optional = what.startswith("?")
        target = loader.by_id.get(ref_id)
        if target is None:
            if not optional:
                loader.report.error(path, f"{path} refers to id {show(ref_id)}, which is not a node or resource",
                                    hint=f"define {what.lstrip('?')} with that id in \"resources\"")
            continue
        if kinds and target.kind not in kinds:
            loader.report.error(path, f"{path} refers to {show(ref_id)} ({target.kind} at {target.path}), which is "
                                f"not {what.lstrip('?')} ({', '.join(kinds)})")
            continue
        node.refs[key] = target


# ----------------------------------------------------------------------------------------- server and web
def server_resource(loader: Loader, g: GraphSpec, raw: dict, path: str) -> None:
    kind = raw["kind"]
    if not loader._fields(raw, path):
        return
    if g.implicit:
        loader.report.error(jp(path, "kind"), f"a {kind} resource at {path} is only allowed in a Graph, SubGraph or "
                            "App, not in a branch or a Loop/Warp body")
        return
    if getattr(g, kind) is not None:
        loader.report.error(path, f"duplicated {kind} resource at {path} (first at {getattr(g, kind).path})")
        return
    args = raw["args"] if raw["args"] is not None else {}
    apath = jp(path, "args")
    if not isinstance(args, dict):
        loader.report.error(apath, f"args of the {kind} resource at {apath} must be an object")
        return
    spec = KINDS[kind]
    for key in args:
        if key not in spec.params:
            loader.report.warn(jp(apath, key), f"{jp(apath, key)} is not an argument of a {kind} resource")
    node = NodeSpec(raw["id"], raw["name"], kind, path, _fill(loader, spec, spec.params, args, apath), raw)
    _check_port(loader, node.args.get("port"), jp(apath, "port"))
    if kind == "web":
        add_ref(loader, node, "history", node.args.get("history") or None, jp(apath, "history"),
                ("LocalLLM", "OnlineLLM", "LLM", "SharedModel"), "a model")
    setattr(g, kind, node)
    if raw["id"] in loader.by_id:
        loader.report.error(jp(path, "id"), f"duplicate id {show(raw['id'])} at {jp(path, 'id')} (first at "
                            f"{loader.by_id[raw['id']].path})")
        return
    loader.by_id[raw["id"]] = node


def _check_port(loader: Loader, port: Any, path: str) -> None:
    if port is None or port == "" or (isinstance(port, int) and not isinstance(port, bool) and 0 < port < 65536):
        return
    text = str(port) if isinstance(port, (str, int)) else None
    try:
        parts = [int(p.strip()) for p in text.replace("-", ",").split(",")] if text else []
    except ValueError:
        parts = []
    if not parts or not all(0 < p < 65536 for p in parts):
        loader.report.error(path, f"port {show(port)} at {path} must be a port, \"8000,8001\" or \"20000-20100\"")


__all__ = ["add_ref", "arg_path", "build_args", "resolve_refs", "server_resource"]
