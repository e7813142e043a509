"""Control-flow kinds, as upstream's ``flow.Switch``, ``IFS``, ``Loop``, ``Warp`` and ``Diverter``: they receive
their input whole (a Package is not spread) and re-split it themselves."""

from __future__ import annotations

import concurrent.futures
from itertools import repeat
from typing import Any

from .executor import GraphUnit, Runtime, Unit, invoke
from .spec import GraphSpec, NodeSpec
from .values import Package

PARALLEL = 5          # upstream Parallel's default concurrency (Warp, Diverter)


class IdentityUnit(Unit):
    """An empty branch (upstream ``lazyllm.Identity``)."""

    def __call__(self, rt: Runtime, *args: Any, **kw: Any) -> Any:
        return args[0] if len(args) == 1 else Package(args)


def branch_unit(spec: GraphSpec) -> Unit:
    return GraphUnit(spec) if spec.nodes or spec.edges else IdentityUnit()


def _spread(value: Any) -> tuple:
    return tuple(value) if isinstance(value, Package) else (value,)


class FlowUnit(Unit):
    flow = True

    def __init__(self, node: NodeSpec) -> None:
        self.node = node

    def __call__(self, rt: Runtime, *args: Any, **kw: Any) -> Any:
        return self.run(rt.under(self.node), args[0] if len(args) == 1 else Package(args), **kw)

    def run(self, rt: Runtime, value: Any, **kw: Any) -> Any:
        raise NotImplementedError


class SwitchUnit(FlowUnit):
    def __init__(self, node: NodeSpec) -> None:
        super().__init__(node)
        self.cases = [(label, branch_unit(spec)) for label, spec in node.sub.get("cases", [])]

    def run(self, rt: Runtime, value: Any, **kw: Any) -> Any:
        exp = value
        if not self.node.args.get("judge_on_full_input"):
            if not (isinstance(value, tuple) and len(value) >= 2):
                raise AssertionError("with judge_on_full_input false, a Switch needs at least two inputs (the value "
                                     f"to judge, then the input), got {_describe(value)}")
            exp = value[0]
            value = value[1] if len(value) == 2 else value[1:]
        if self.node.args.get("conversion") is not None:
            exp = rt.code(self.node, "conversion", _spread(exp), {})
        for label, unit in self.cases:
            if exp == label or exp == Package((label,)) or label == "default":
                return invoke(rt, unit, value, **kw)
        return None


class IfsUnit(FlowUnit):
    def __init__(self, node: NodeSpec) -> None:
        super().__init__(node)
        self.true = branch_unit(node.sub["true"])
        self.false = branch_unit(node.sub["false"])

    def run(self, rt: Runtime, value: Any, **kw: Any) -> Any:
        flag = rt.code(self.node, "cond", _spread(value), dict(kw))
        return invoke(rt, self.true if flag else self.false, value, **kw)


class LoopUnit(FlowUnit):
    def __init__(self, node: NodeSpec) -> None:
        super().__init__(node)
        self.body = GraphUnit(node.sub["body"])

    def run(self, rt: Runtime, value: Any, **kw: Any) -> Any:
        count = self.node.args.get("count")
        judge_full = self.node.args.get("judge_on_full_input", True)
        has_stop = self.node.args.get("stop_condition") is not None
        output, done = value, 0
        while done < count:
            rt.check_deadline(self.node)
            done += 1
            output = invoke(rt, self.body, output, **kw)
            kw = {}
            exp = output
            if not judge_full:
                if not (isinstance(output, tuple) and len(output) >= 2):
                    raise AssertionError("with judge_on_full_input false, the Loop body must return a package of "
                                         f"the stop flag and the next input, got {_describe(output)}")
                exp, output = output[0], output[1:]
            if has_stop and rt.code(self.node, "stop_condition", _spread(exp), {}):
                break
        return output


def _parallel(rt: Runtime, pairs: list[tuple[Unit, Any]]) -> Package:
    if not pairs:
        return Package()
    with concurrent.futures.ThreadPoolExecutor(max_workers=PARALLEL) as pool:
        futures = [pool.submit(invoke, rt, unit, inp) for unit, inp in pairs]
        concurrent.futures.wait(futures)
    return Package([f.result() for f in futures])


def _scatter(value: Any) -> list | tuple:
    """upstream ``Parallel._split_input`` with ``_scatter=True`` (a dict input selects no items: nothing runs)."""
    if isinstance(value, dict):
        return []
    if isinstance(value, Package) and len(value) == 1:
        value = value[0]
    if not isinstance(value, (tuple, list)):
        raise AssertionError(f"Only tuple and list input can be split automatically, your input is {value} "
                             f"<{type(value)}>")
    return value


class WarpUnit(FlowUnit):
    def __init__(self, node: NodeSpec) -> None:
        super().__init__(node)
        self.body = GraphUnit(node.sub["body"])
        flags = node.args.get("batch_flags")
        self.flags = flags if flags and len(flags) > 1 else None

    def run(self, rt: Runtime, value: Any, **kw: Any) -> Any:
        if self.flags is not None:
            if kw:
                raise TypeError(f"Warp with batch_flags got unexpected keyword arguments {sorted(kw)}")
            columns = [a if flag else repeat(a) for a, flag in zip(_spread(value), self.flags)]
            value = [Package(t) for t in zip(*columns)]
        items = len(Package(value)) if isinstance(value, (tuple, list)) else 1
        inputs = _scatter(value)
        return _parallel(rt, list(zip([self.body] * items, inputs)))


class DiverterUnit(FlowUnit):
    def __init__(self, node: NodeSpec) -> None:
        super().__init__(node)
        self.branches = [branch_unit(spec) for spec in node.sub.get("branches", [])]

    def run(self, rt: Runtime, value: Any, **kw: Any) -> Any:
        inputs = _scatter(value)
        if len(inputs) != len(self.branches):
            rt.warn(f"{self.node.label} got {len(inputs)} input(s) for {len(self.branches)} branch(es): as upstream, "
                    f"only {min(len(inputs), len(self.branches))} run and the rest are dropped", self.node)
        return _parallel(rt, list(zip(self.branches, inputs)))


def _describe(value: Any) -> str:
    if isinstance(value, Package):
        return f"{len(value)} value(s)"
    return f"one {type(value).__name__}"
