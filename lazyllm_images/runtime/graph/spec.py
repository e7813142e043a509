"""The loaded graph: what validation built from the JSON, and what the executor runs.

A ``NodeSpec`` is one node definition. Ids are global as upstream has them (a node reused by id in several places
is one ``NodeSpec`` object). Flow kinds carry their sub-graphs in ``sub``: ``graph`` (SubGraph/Graph/App), ``body``
(Loop/Warp), ``cases`` (Switch/Intention: list of (label, GraphSpec)), ``true``/``false`` (Ifs), ``branches``
(Diverter). Implicit sub-graphs (branches, bodies) are ``GraphSpec`` objects with ``implicit=True``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .codecheck import CodeInfo
from .kinds import HTTP, KINDS, RESOURCE, SERVICE_CATEGORIES, Kind
from .slicer import Slicer


@dataclass(eq=False)
class NodeSpec:
    id: str
    name: str
    kind: str
    path: str
    args: dict[str, Any]                       # upstream's constructor arguments, defaults filled in
    raw: dict[str, Any]                        # the JSON object as written
    hyperparameter: dict | None = None
    arg_names: list[str] | None = None         # _lazyllm_arg_names: inputs become these keywords
    code: dict[str, CodeInfo] = field(default_factory=dict)   # arg name -> what its code defines
    sub: dict[str, Any] = field(default_factory=dict)
    refs: dict[str, NodeSpec] = field(default_factory=dict)  # resolved id references, "tools[0]" -> node

    @property
    def kind_info(self) -> Kind:
        return KINDS[self.kind]

    @property
    def category(self) -> str:
        if self.kind == "HttpTool":
            return HTTP if self.args.get("url") else "pure"
        return self.kind_info.category

    @property
    def label(self) -> str:
        return f'node "{self.id}" ({self.name})'

    def __repr__(self) -> str:
        return f"<{self.kind} {self.id!r} {self.name!r} at {self.path}>"


@dataclass(eq=False)
class EdgeSpec:
    path: str
    dst: str
    src: str | None = None                     # None for a constant edge
    constant: Any = None
    formatter: Slicer | None = None

    @property
    def is_constant(self) -> bool:
        return self.src is None


@dataclass(eq=False)
class GraphSpec:
    path: str
    nodes: list[NodeSpec]
    edges: list[EdgeSpec]
    resources: list[NodeSpec] = field(default_factory=list)
    implicit: bool = False                     # a branch or loop/warp body: chained, no server/web
    server: NodeSpec | None = None
    web: NodeSpec | None = None

    def node(self, node_id: str) -> NodeSpec | None:
        return next((n for n in self.nodes if n.id == node_id), None)


@dataclass
class ServiceNeed:
    """One node or resource that a ``Services`` implementation must provide, for ``--dry-run`` and start-up."""
    id: str
    name: str
    kind: str
    category: str
    path: str
    args: dict[str, Any]
    used_by: list[str] = field(default_factory=list)

    def as_dict(self, redact: bool = True) -> dict:
        """For printing (``--dry-run``): secrets in the args (API keys, tokens, passwords) are masked."""
        return {"id": self.id, "name": self.name, "kind": self.kind, "category": self.category, "path": self.path,
                "args": redacted(self.args) if redact else self.args, "used_by": self.used_by}


SECRET_KEYS = ("api_key", "secret_key", "token", "password", "authorization")


def redacted(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: "***" if isinstance(k, str) and k.lower() in SECRET_KEYS and v else redacted(v)
                for k, v in value.items()}
    if isinstance(value, list):
        return [redacted(v) for v in value]
    return value


@dataclass
class LoadedGraph:
    """The top-level graph plus every node definition by id (first definition wins, as upstream caches)."""
    root: GraphSpec
    nodes_by_id: dict[str, NodeSpec]

    def services(self) -> list[ServiceNeed]:
        """Models, embeddings, retrieval, HTTP, MCP and agent nodes (resources too: upstream builds every resource
        at start, used or not), and the ``server``/``web`` resources; ``used_by`` lists referring node ids."""
        needs: dict[str, ServiceNeed] = {}
        for node in self.nodes_by_id.values():
            if node.category in SERVICE_CATEGORIES or node.category == RESOURCE:
                needs[node.id] = ServiceNeed(node.id, node.name, node.kind, node.category, node.path,
                                             dict(node.args))
        for node in self.nodes_by_id.values():
            for ref in node.refs.values():
                need = needs.get(ref.id)
                if need is not None and node.id not in need.used_by:
                    need.used_by.append(node.id)
        return list(needs.values())

    def services_summary(self) -> dict:
        needs = self.services()
        return {"services": [n.as_dict() for n in needs],
                "counts": {c: sum(1 for n in needs if n.category == c) for c in sorted({n.category for n in needs})}}
