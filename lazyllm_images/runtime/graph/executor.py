"""Running a loaded graph with upstream's semantics (``flow.Graph._run``, ``compute_node``, ``invoke``).

Every node reachable through edges is submitted to a thread pool in topological order and waits for its inputs,
so independent branches run concurrently. One in-edge passes its value as is; several are concatenated in edge
order into upstream's ``arguments`` (a ``Package`` is spliced in, anything else is one argument). A non-flow node
gets a ``Package`` spread into positional arguments; flows (Switch, Ifs, Loop, Warp, Diverter) get it whole. Only
``__end__`` is awaited for the result; a failure on a branch that does not reach ``__end__`` is ignored (upstream)
and reported as a ``warning`` event.

    executor = Executor(graph, sandbox=SandboxClient(path), services=MyServices(), on_event=print)
    result = executor.run(3)            # like upstream's engine.run(gid, 3)
"""

from __future__ import annotations

import concurrent.futures
import os
import threading
import time
import uuid
from dataclasses import dataclass, field, replace
from typing import Any

from . import topology
from .errors import SANDBOX_HINT, EdgeError, GraphRunError, NodeError, from_exception
from .events import EventCallback, EventSink
from .formatters import postprocess_result
from .services import Services
from .spec import GraphSpec, LoadedGraph, NodeSpec
from .values import Arguments, Package, start_value, to_output

START, END = topology.START, topology.END
POOL_SIZE = min(32, (os.cpu_count() or 1) + 4)       # ThreadPoolExecutor's default, as upstream uses it


class Unit:
    """A built node. ``flow`` units get their input whole; the others get a Package spread into arguments."""
    flow = False

    def __call__(self, rt: Runtime, *args: Any, **kw: Any) -> Any:
        raise NotImplementedError


class ModuleUnit(Unit):
    """A node upstream builds as a ``ModuleBase``: ``hyperparameter`` entries become keyword arguments."""

    def __init__(self, node: NodeSpec) -> None:
        self.node = node

    def __call__(self, rt: Runtime, *args: Any, **kw: Any) -> Any:
        if self.node.hyperparameter:
            kw.update(self.node.hyperparameter)
        return self.call(rt, args, kw)

    def call(self, rt: Runtime, args: tuple, kw: dict) -> Any:
        raise NotImplementedError


def invoke(rt: Runtime, unit: Unit, value: Any, **kw: Any) -> Any:
    if not unit.flow and isinstance(value, Package):
        return unit(rt, *value, **kw)
    return unit(rt, value, **kw)


@dataclass
class Runtime:
    """What one run shares: the executor, services, sandbox, event sink; ``parent`` is the enclosing flow node."""
    executor: Executor
    sink: EventSink
    run_id: str
    parent: str | None = None
    warnings: list[str] = field(default_factory=list)
    deadline: float | None = None              # time.monotonic() by which the run must end (None: no limit)

    @property
    def services(self) -> Services:
        return self.executor.services

    def under(self, node: NodeSpec) -> Runtime:
        return replace(self, parent=node.id)

    def unit(self, node: NodeSpec) -> Unit:
        return self.executor.unit_for(node)

    def check_deadline(self, node: NodeSpec) -> None:
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise NodeError(node, "TimeoutError", "the run went over its time limit before this node could start",
                            reason="timeout")

    def code_limits(self) -> dict:
        limits = dict(self.executor.code_limits)
        if self.deadline is not None:
            left = max(0.1, self.deadline - time.monotonic())
            limits["timeout"] = min(limits.get("timeout", left), left)
        return limits

    def warn(self, message: str, node: NodeSpec | None = None) -> None:
        self.warnings.append(message)
        extra = {"node_id": node.id, "path": node.path} if node is not None else {}
        self.sink.emit("warning", message=message, **extra)

    def code(self, node: NodeSpec, key: str, args: tuple, kwargs: dict, *, mode: str = "call") -> Any:
        """Run ``node.args[key]`` (a Code string) in the sandbox; failures become ``NodeError``s."""
        from .sandbox import SandboxCallError, SandboxUnavailable
        sandbox = self.executor.sandbox
        if sandbox is None:
            raise NodeError(node, "SandboxUnavailable", "no sandbox worker for Code nodes in this run",
                            reason="internal")
        variables = node.args.get("vars_for_code") if key in ("code", "code_str") else None
        try:
            result = sandbox.run(node.args[key], args, kwargs, variables=variables, mode=mode,
                                 node={"id": node.id, "name": node.name}, limits=self.code_limits(),
                                 session=self.run_id)
        except SandboxCallError as e:
            if e.stdout:
                self.sink.emit("log", node_id=node.id, name=node.name, text=e.stdout)
            hint = SANDBOX_HINT if e.stopped or e.type == "PermissionError" else ""
            raise NodeError(node, e.type, e.message, reason=e.reason, traceback=e.traceback, hint=hint,
                            stdout=e.stdout) from None
        except SandboxUnavailable as e:
            raise NodeError(node, "SandboxUnavailable", str(e), reason="internal",
                            hint="start the sandbox worker: python -m lazyllm_images.runtime.graph.sandbox") \
                from None
        if result.stdout:
            self.sink.emit("log", node_id=node.id, name=node.name, text=result.stdout)
        return result.value


class GraphUnit(Unit):
    """A Graph/SubGraph/App node, a branch or a Loop/Warp body (upstream's ServerGraph: not a flow)."""

    def __init__(self, spec: GraphSpec, owner: NodeSpec | None = None) -> None:
        self.spec, self.owner = spec, owner
        self.order = topology.run_order(spec)
        self.inputs: dict[str, list] = {}
        for e in spec.edges:
            self.inputs.setdefault(e.dst, []).append(e)
        outs, _, _ = topology.degrees(spec)
        back: dict[str, list[str]] = {}
        for src, dsts in outs.items():
            for d in dsts:
                back.setdefault(d, []).append(src)
        self.feeds_end = topology._reach(back, [END])
        self.nodes = {n.id: n for n in spec.nodes}

    def __call__(self, rt: Runtime, *args: Any, **kw: Any) -> Any:
        if self.owner is not None and self.owner.hyperparameter:
            kw.update(self.owner.hyperparameter)
        return self.run(rt, start_value(args, kw))

    def run(self, rt: Runtime, start: Any) -> Any:
        values: dict[str, Any] = {START: start}
        lock = threading.Lock()
        futures: dict[str, concurrent.futures.Future] = {}
        with concurrent.futures.ThreadPoolExecutor(max_workers=POOL_SIZE) as pool:
            for nid in self.order:
                if nid != START:
                    futures[nid] = pool.submit(self.compute, rt, nid, values, futures, lock)
        for nid, fut in futures.items():
            if nid not in self.feeds_end and fut.exception() is not None:
                node = self.nodes[nid]
                rt.warn(f"{node.label} failed on a branch that does not reach __end__; its error is ignored, as "
                        f"upstream does: {fut.exception()}", node)
        return futures[END].result()

    def _get(self, edge: Any, values: dict, futures: dict, lock: threading.Lock) -> Any:
        if edge.is_constant:
            return edge.constant
        if edge.src not in values:
            r = futures[edge.src].result()
            with lock:
                values.setdefault(edge.src, r)
        r = values[edge.src]
        if edge.formatter is not None:
            if isinstance(r, Arguments):
                if not (bool(r.args) ^ bool(r.kw)):
                    raise RuntimeError("Only one of args and kwargs can be given with formatter.")
                r = r.args or r.kw
            try:
                r = edge.formatter.apply(r)
            except Exception as e:
                raise EdgeError(edge.path, edge.formatter.text, e) from None
        return r

    def compute(self, rt: Runtime, nid: str, values: dict, futures: dict, lock: threading.Lock) -> Any:
        edges = self.inputs.get(nid, [])
        if len(edges) == 1:
            value = self._get(edges[0], values, futures, lock)
        else:
            value = Arguments.new()
            for e in edges:
                value.append(self._get(e, values, futures, lock))
        kw: dict = {}
        if isinstance(value, Arguments):
            kw, value = dict(value.kw), value.args
        if nid == END:
            return identity(*value, **kw) if isinstance(value, Package) else identity(value, **kw)
        node = self.nodes[nid]
        if node.arg_names:
            seq = value if isinstance(value, (list, tuple)) else [value]
            kw.update(zip(node.arg_names, seq))
            value = Package()
        return run_node(rt, node, value, kw)


def identity(*inputs: Any, **kw: Any) -> Any:
    """``__end__`` (upstream ``Identity``): one input as is, several as a Package."""
    if kw:
        raise TypeError(f"__end__ got unexpected keyword arguments {sorted(kw)}")
    return inputs[0] if len(inputs) == 1 else Package(inputs)


def run_node(rt: Runtime, node: NodeSpec, value: Any, kw: dict) -> Any:
    """Invoke one node with start/finish events; errors name the node."""
    rt.check_deadline(node)
    unit = rt.unit(node)
    base = {"node_id": node.id, "name": node.name, "kind": node.kind, "path": node.path, "parent": rt.parent}
    rt.sink.emit("node_started", **base)
    t0 = time.monotonic()
    try:
        result = invoke(rt, unit, value, **kw)
    except BaseException as e:
        err = from_exception(node, e) if isinstance(e, Exception) else e
        if isinstance(err, GraphRunError):
            rt.sink.emit("node_failed", **base, elapsed_ms=_ms(t0), error=err.as_dict())
            raise err from None
        raise
    rt.sink.emit("node_finished", **base, elapsed_ms=_ms(t0))
    return result


def _ms(t0: float) -> float:
    return round((time.monotonic() - t0) * 1000, 3)


@dataclass
class RunResult:
    ok: bool
    value: Any = None
    error: GraphRunError | None = None
    warnings: list[str] = field(default_factory=list)
    elapsed_ms: float = 0.0


class Executor:
    """Runs one loaded graph, any number of times, from any number of threads.

    ``sandbox``: a ``SandboxClient`` for Code nodes (and Switch conversions, Ifs conditions, Loop stop conditions,
    HttpTool code); ``services``: a ``Services`` for model, retrieval and tool nodes; ``on_event``: called with each
    event dict (see ``events``); ``code_limits``: per-call sandbox limits (``timeout``, ``memory_mb``, ...)."""

    def __init__(self, graph: LoadedGraph, *, sandbox: Any = None, services: Services | None = None,
                 on_event: EventCallback | None = None, code_limits: dict | None = None) -> None:
        from .nodes import build_unit
        self.graph, self.sandbox = graph, sandbox
        self.services = services or Services()
        self.on_event, self.code_limits = on_event, code_limits or {}
        self._build = build_unit
        self._units: dict[str, Unit] = {}
        self._lock = threading.Lock()
        self.root = GraphUnit(graph.root)

    def unit_for(self, node: NodeSpec) -> Unit:
        unit = self._units.get(node.id)
        if unit is None:
            with self._lock:
                unit = self._units.get(node.id)
                if unit is None:
                    unit = self._units[node.id] = self._build(node)
        return unit

    def run(self, *args: Any, run_id: str | None = None, on_event: EventCallback | None = None,
            timeout: float | None = None) -> Any:
        """Run the graph on ``args`` (upstream ``engine.run(gid, *args)``); raises ``GraphRunError``."""
        result = self.run_result(*args, run_id=run_id, on_event=on_event, timeout=timeout)
        if not result.ok:
            raise result.error
        return result.value

    def run_result(self, *args: Any, run_id: str | None = None, on_event: EventCallback | None = None,
                   timeout: float | None = None) -> RunResult:
        """Like ``run``, never raising: ``RunResult(ok, value, error, warnings, elapsed_ms)``. ``timeout``: seconds
        for the whole run (nodes not started by then fail; Code calls get at most the time left)."""
        run_id = run_id or uuid.uuid4().hex
        rt = Runtime(self, EventSink(on_event or self.on_event, run_id), run_id,
                     deadline=time.monotonic() + timeout if timeout else None)
        rt.sink.emit("run_started", inputs=to_output(list(args)))
        t0 = time.monotonic()
        try:
            value = postprocess_result(self.root(rt, *args))
        except GraphRunError as e:
            rt.sink.emit("run_finished", ok=False, elapsed_ms=_ms(t0), error=e.as_dict())
            return RunResult(False, error=e, warnings=rt.warnings, elapsed_ms=_ms(t0))
        except Exception as e:
            err = GraphRunError(f"the graph failed: {type(e).__name__}: {e}")
            rt.sink.emit("run_finished", ok=False, elapsed_ms=_ms(t0), error=err.as_dict())
            return RunResult(False, error=err, warnings=rt.warnings, elapsed_ms=_ms(t0))
        finally:
            self._release(run_id)
        rt.sink.emit("run_finished", ok=True, elapsed_ms=_ms(t0), result=to_output(value))
        return RunResult(True, value, warnings=rt.warnings, elapsed_ms=_ms(t0))

    def _release(self, run_id: str) -> None:
        release = getattr(self.sandbox, "release", None)
        if release is not None:
            try:
                release(run_id)
            except Exception:
                pass


__all__ = ["Executor", "GraphUnit", "NodeError", "RunResult", "Runtime", "Unit", "invoke", "run_node"]
