"""Building a runnable ``Unit`` for each node kind. Pure kinds are here; flows in ``flows``; HTTP, tools, models
and retrieval in ``servicenodes`` (they go through ``Services``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import flows, servicenodes
from .executor import GraphUnit, ModuleUnit, Runtime, Unit
from .formatters import FormatterNode, make_join
from .spec import NodeSpec


class CodeUnit(ModuleUnit):
    def call(self, rt: Runtime, args: tuple, kw: dict) -> Any:
        return rt.code(self.node, "code", args, kw)


class FunctionUnit(Unit):
    """A plain callable (Constant, Formatter, JoinFormatter): no hyperparameter, arguments passed through."""

    def __init__(self, func: Callable[..., Any]) -> None:
        self.func = func

    def __call__(self, rt: Runtime, *args: Any, **kw: Any) -> Any:
        return self.func(*args, **kw)


def _constant(node: NodeSpec) -> Unit:
    value = node.args.get("value")
    return FunctionUnit(lambda *args, **kw: value)


def _graph(node: NodeSpec) -> Unit:
    return SubGraphUnit(node.sub["graph"], node)


class SubGraphUnit(GraphUnit):
    def __call__(self, rt: Runtime, *args: Any, **kw: Any) -> Any:
        return super().__call__(rt.under(self.owner), *args, **kw)


BUILDERS: dict[str, Callable[[NodeSpec], Unit]] = {
    "Code": CodeUnit,
    "Constant": _constant,
    "Formatter": lambda n: FunctionUnit(FormatterNode(n.args["ftype"], n.args.get("rule"))),
    "JoinFormatter": lambda n: FunctionUnit(make_join(n.args.get("type", "sum"), n.args.get("names"),
                                                      n.args.get("symbol"))),
    "Graph": _graph, "SubGraph": _graph, "App": _graph,
    "Switch": flows.SwitchUnit, "Ifs": flows.IfsUnit, "Loop": flows.LoopUnit, "Warp": flows.WarpUnit,
    "Diverter": flows.DiverterUnit,
}


def build_unit(node: NodeSpec) -> Unit:
    builder = BUILDERS.get(node.kind) or servicenodes.BUILDERS.get(node.kind)
    if builder is None:
        raise NotImplementedError(f"kind {node.kind} cannot run here")
    return builder(node)
