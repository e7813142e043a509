"""Load and validate a graph: every problem at once, each with its JSON path, before anything runs.

``load_graph(data)`` returns ``(LoadedGraph | None, Report)``; the graph is None when the report has errors.
``read_graph_file(path)`` adds the file-level faults (missing, not JSON). Kind-specific argument checks live in
``argcheck``; the graph-level ones (ids, names, edges, topology) here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from . import argcheck, kindcheck, topology
from .kinds import (
    RESERVED_IDS,
    RESOURCE,
    UNREGISTERED_HINTS,
    UNSUPPORTED,
    lookup,
)
from .problems import GraphValidationError, Report, jp, show
from .slicer import FormatterSyntaxError, parse_edge
from .spec import EdgeSpec, GraphSpec, LoadedGraph, NodeSpec

START, END = "__start__", "__end__"


class Loader:
    def __init__(self) -> None:
        self.report = Report()
        self.by_id: dict[str, NodeSpec] = {}
        self._level_of: dict[str, int] = {}
        self._raw_of: dict[str, Any] = {}
        self._levels = 0
        self._building: list[str] = []           # ids of the nodes whose arguments are being built (ancestors)
        self.broken: set = set()                  # ids of nodes already reported as unusable (no edge errors)
        self.pending_refs: list[tuple[NodeSpec, str, Any, str, tuple[str, ...], str]] = []

    # ------------------------------------------------------------------------------------------------ graphs
    def top(self, data: Any) -> GraphSpec | None:
        if not isinstance(data, dict):
            self.report.error("$", f"the file is JSON but not a graph: expected an object with \"nodes\", \"edges\" "
                              f"and \"resources\", got {_type(data)}")
            return None
        parts = {}
        if not any(k in data for k in ("nodes", "edges")):
            self.report.error("$", "the file is JSON but not a graph: it has neither \"nodes\" nor \"edges\"")
            return None
        for key in ("nodes", "edges", "resources"):
            value = data.get(key, [])
            if value is None:
                value = []
            if not isinstance(value, list):
                self.report.error(jp("$", key), f"{jp('$', key)} must be a list, not {_type(value)}")
            parts[key] = value
        if not self.report.ok:
            return None
        g = self.graph("$", parts["nodes"], parts["edges"], parts["resources"], implicit=False)
        argcheck.resolve_refs(self)
        kindcheck.after_refs(self)
        return g

    def graph(self, path: str, nodes: list, edges: list | None, resources: list | None, *, implicit: bool,
              paths: tuple[str, str, str] | None = None) -> GraphSpec:
        """One graph level. ``paths``: the JSON paths of its nodes, edges and resources lists."""
        npath, epath, rpath = paths or (jp(path, "nodes"), jp(path, "edges"), jp(path, "resources"))
        self._levels += 1
        level = self._levels
        g = GraphSpec(path, [], [], implicit=implicit)
        for i, raw in enumerate(resources or []):
            self._resource(g, raw, jp(rpath, i), level)
        for i, raw in enumerate(nodes):
            node = self.node(raw, jp(npath, i), level)
            if node is not None:
                g.nodes.append(node)
        self._names(g, npath)
        if edges:
            g.edges = self._edges(g, edges, epath)
        elif not nodes:
            self.report.error(path, f"the graph at {path} has no nodes and no edges",
                              hint="a graph needs at least one node, or an edge from __start__ to __end__")
            return g
        else:
            g.edges = chain_edges(g.nodes, epath)
        if g.nodes or g.edges:
            topology.check(g, epath, self.report, chained=not edges)
        return g

    def branch(self, value: Any, path: str) -> GraphSpec:
        """A Switch/Ifs/Diverter/Intention branch: a node or a list of nodes, always chained (empty: identity)."""
        if not isinstance(value, list):
            return self._single_branch(value, path)
        if not value:
            return GraphSpec(path, [], [], implicit=True)
        return self.graph(path, value, [], [], implicit=True, paths=(path, path, path))

    def _single_branch(self, value: Any, path: str) -> GraphSpec:
        self._levels += 1
        node = self.node(value, path, self._levels)
        g = GraphSpec(path, [node] if node else [], [], implicit=True)
        if node is not None:
            g.edges = [EdgeSpec(path, node.id, START), EdgeSpec(path, END, node.id)]
        return g

    # ------------------------------------------------------------------------------------------------- nodes
    def node(self, raw: Any, path: str, level: int) -> NodeSpec | None:
        if not isinstance(raw, dict):
            self.report.error(path, f"{path} must be a node object (id, kind, name, args), not {_type(raw)}")
            return None
        node_id, kind_name, name = raw.get("id"), raw.get("kind"), raw.get("name")
        ok = self._fields(raw, path)
        if not ok:
            if isinstance(node_id, str):
                self.broken.add(node_id)
            return None
        if node_id in self.by_id:
            return self._again(raw, node_id, path, level)
        kind = lookup(kind_name)
        if kind is None or kind.category in (UNSUPPORTED, RESOURCE):
            self.broken.add(node_id)
        if kind is None:
            hint = UNREGISTERED_HINTS.get(kind_name, "see the supported kinds in README (upstream's kind names)")
            self.report.error(jp(path, "kind"), f"unknown kind {show(kind_name)} at {jp(path, 'kind')}", hint=hint)
            return None
        if kind.category == UNSUPPORTED:
            self.report.error(jp(path, "kind"), f"kind {kind_name} at {path} is not supported", hint=kind.reason)
            return None
        if kind.category == RESOURCE:
            self.report.error(jp(path, "kind"), f"kind {kind_name} at {path} is only allowed in \"resources\"")
            return None
        hyper = raw.get("hyperparameter")
        if hyper is not None and not isinstance(hyper, dict):
            self.report.error(jp(path, "hyperparameter"), f"hyperparameter at {jp(path, 'hyperparameter')} "
                              f"must be an object of keyword arguments, not {_type(hyper)}")
            hyper = None
        node = NodeSpec(node_id, name, kind_name, path, {}, raw, hyperparameter=hyper)
        self.by_id[node_id] = node
        self._level_of[node_id], self._raw_of[node_id] = level, raw
        self._building.append(node_id)
        try:
            argcheck.build_args(self, node, raw["args"])
        finally:
            self._building.pop()
        return node

    def _fields(self, raw: dict, path: str) -> bool:
        ok = True
        for key in ("id", "kind", "name"):
            value = raw.get(key)
            if key not in raw:
                self.report.error(path, f"{path} has no \"{key}\"")
                ok = False
            elif not isinstance(value, str):
                self.report.error(jp(path, key), f"{key} at {jp(path, key)} must be a string, not {_type(value)}")
                ok = False
        if ok and raw["id"] in RESERVED_IDS:
            self.report.error(jp(path, "id"), f"id {show(raw['id'])} at {jp(path, 'id')} is reserved")
            ok = False
        if ok and (not raw["name"] or raw["name"].startswith("_")):
            self.report.error(jp(path, "name"), f"name {show(raw['name'])} at {jp(path, 'name')} must not be empty "
                              "or start with \"_\"", hint="upstream cannot wire such a node (KeyError at start)")
            ok = False
        if "args" not in raw:
            self.report.error(path, f"{path} has no \"args\"", hint='use "args": {} for a kind without arguments')
            ok = False
        return ok

    def _again(self, raw: dict, node_id: str, path: str, level: int) -> NodeSpec | None:
        first = self.by_id[node_id]
        if node_id in self._building:
            self.report.error(jp(path, "id"), f"id {show(node_id)} at {jp(path, 'id')} is already the id of an "
                              f"enclosing node ({first.path})")
            return None
        if self._level_of.get(node_id) == level:
            self.report.error(jp(path, "id"), f"duplicate id {show(node_id)} at {jp(path, 'id')} (first at "
                              f"{first.path})", hint="ids must be unique within a graph")
            return None
        if _strip(raw) != _strip(self._raw_of[node_id]):
            self.report.warn(jp(path, "id"), f"id {show(node_id)} at {jp(path, 'id')} is already defined at "
                             f"{first.path}; upstream reuses that definition and ignores this one")
        return first

    def _resource(self, g: GraphSpec, raw: Any, path: str, level: int) -> None:
        kind = raw.get("kind") if isinstance(raw, dict) else None
        if kind in ("server", "web"):
            argcheck.server_resource(self, g, raw, path)
            return
        self.node(raw, path, level)

    def _names(self, g: GraphSpec, npath: str) -> None:
        seen: dict[str, NodeSpec] = {}
        for node in g.nodes:
            other = seen.get(node.name)
            if other is not None and other is not node:
                self.report.error(jp(node.path, "name"), f"duplicate name {show(node.name)} at "
                                  f"{jp(node.path, 'name')} (also {other.path})",
                                  hint="names must be unique within a graph")
            elif other is node:
                self.report.error(node.path, f"node id {show(node.id)} appears twice in {npath}")
            seen.setdefault(node.name, node)

    # ------------------------------------------------------------------------------------------------- edges
    def _edges(self, g: GraphSpec, edges: list, epath: str) -> list[EdgeSpec]:
        out: list[EdgeSpec] = []
        seen: dict[tuple, str] = {}
        for i, raw in enumerate(edges):
            p = jp(epath, i)
            edge = self._edge(g, raw, p)
            if edge is None:
                continue
            if not edge.is_constant:
                key = (edge.src, edge.dst)
                if key in seen:
                    self.report.error(p, f"{p} repeats the edge from {show(edge.src)} to {show(edge.dst)} "
                                      f"({seen[key]})", hint="upstream refuses duplicate edges")
                    continue
                seen[key] = p
            out.append(edge)
        return out

    def _edge(self, g: GraphSpec, raw: Any, p: str) -> EdgeSpec | None:
        if isinstance(raw, list):
            if len(raw) < 2:
                self.report.error(p, f"{p} must be [from_id, to_id], got {len(raw)} element(s)")
                return None
            if len(raw) > 2:
                self.report.warn(p, f"{p} has {len(raw)} elements; only the first two (from, to) are used")
            src, dst, spath, dpath, formatter = raw[0], raw[1], jp(p, 0), jp(p, 1), None
        elif isinstance(raw, dict):
            if "constant" in raw:
                return self._constant_edge(g, raw, p)
            for key in ("iid", "oid"):
                if key not in raw:
                    self.report.error(p, f"{p} has no \"{key}\"", hint='an edge is {"iid": FROM, "oid": TO}')
            if "iid" not in raw or "oid" not in raw:
                return None
            src, dst, spath, dpath = raw["iid"], raw["oid"], jp(p, "iid"), jp(p, "oid")
            formatter = raw.get("formatter")
        else:
            self.report.error(p, f"{p} must be an edge object or a [from, to] list, not {_type(raw)}")
            return None
        ok = self._endpoint(g, src, spath, "from") & self._endpoint(g, dst, dpath, "to")
        slicer = None
        if formatter:
            fpath = jp(p, "formatter")
            try:
                slicer = parse_edge(formatter)
            except FormatterSyntaxError as e:
                self.report.error(fpath, f"bad formatter {show(formatter)} at {fpath}: {e}")
        return EdgeSpec(p, dst, src, formatter=slicer) if ok else None

    def _constant_edge(self, g: GraphSpec, raw: dict, p: str) -> EdgeSpec | None:
        if raw.get("formatter"):
            self.report.warn(jp(p, "formatter"), f"{jp(p, 'formatter')} is ignored on a constant edge")
        if "oid" not in raw:
            self.report.error(p, f"{p} has no \"oid\"", hint='a constant edge is {"constant": VALUE, "oid": TO}')
            return None
        if not self._endpoint(g, raw["oid"], jp(p, "oid"), "to"):
            return None
        return EdgeSpec(p, raw["oid"], None, constant=raw["constant"])

    def _endpoint(self, g: GraphSpec, node_id: Any, path: str, end: str) -> bool:
        if node_id == START and end == "from" or node_id == END and end == "to":
            return True
        if node_id in (START, END):
            what = "into __start__" if node_id == START else "out of __end__"
            self.report.error(path, f"{path}: an edge cannot go {what}")
            return False
        if isinstance(node_id, str) and g.node(node_id) is not None:
            return True
        if isinstance(node_id, str) and node_id in self.broken:
            return False
        other = self.by_id.get(node_id) if isinstance(node_id, str) else None
        if other is None:
            self.report.error(path, f"{path} refers to id {show(node_id)}, which is not a node")
        else:
            self.report.error(path, f"{path} refers to id {show(node_id)}, which is not a node of this graph",
                              hint=f"it is defined at {other.path}; edges connect nodes of the same graph")
        return False


def chain_edges(nodes: list[NodeSpec], path: str) -> list[EdgeSpec]:
    """Upstream's rule for a graph without edges: __start__ -> nodes[0] -> ... -> nodes[-1] -> __end__."""
    if not nodes:
        return []
    ids = [START] + [n.id for n in nodes] + [END]
    return [EdgeSpec(path, b, a) for a, b in zip(ids, ids[1:])]


def _strip(raw: dict) -> dict:
    return {k: v for k, v in raw.items() if k in ("id", "kind", "name", "args", "hyperparameter")}


def _type(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number" if isinstance(value, (int, float)) else type(value).__name__)


def load_graph(data: Any) -> tuple[LoadedGraph | None, Report]:
    """Validate parsed JSON; the graph is returned only when there are no errors (warnings are fine)."""
    loader = Loader()
    root = loader.top(data)
    if root is None or not loader.report.ok:
        return None, loader.report
    return LoadedGraph(root, loader.by_id), loader.report


def load_graph_strict(data: Any) -> LoadedGraph:
    graph, report = load_graph(data)
    if graph is None:
        raise GraphValidationError(report)
    return graph


class GraphFileError(ValueError):
    """The file is missing, unreadable or not JSON; ``hint`` says what to do."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


def read_graph_file(path: str | Path) -> Any:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise GraphFileError(f"{p}: no such file", "give the path of a workflow JSON file") from None
    except IsADirectoryError:
        raise GraphFileError(f"{p} is a directory, not a workflow JSON file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise GraphFileError(f"cannot read {p}: {e}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise GraphFileError(f"{p} is not JSON: {e.msg} at line {e.lineno} column {e.colno}",
                             "a workflow file is upstream LazyLLM's JSON: {\"nodes\": [...], \"edges\": [...]}") \
            from None


__all__ = ["GraphFileError", "Loader", "load_graph", "load_graph_strict", "read_graph_file"]
