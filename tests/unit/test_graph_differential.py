"""Differential tests: generated pure graphs run through this engine and through upstream LazyLLM's own engine
must agree value for value (a ``package`` must stay a package, a tuple a tuple, a list a list), or both fail.

Upstream is the oracle only where it can be imported: ``import lazyllm`` in this environment, or a Python named
by ``LAZYLLM_ORACLE_PYTHON`` (e.g. a throwaway venv with ``pip install lazyllm==1.4.0 sqlalchemy``). The project
does not depend on it, so without it these tests skip.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures"))

from graph_support import Oracle, oracle_python

from lazyllm_images.runtime.graph.executor import Executor
from lazyllm_images.runtime.graph.load import load_graph
from lazyllm_images.runtime.graph.sandbox import LocalWorker
from lazyllm_images.runtime.graph.values import encode

PYTHON = oracle_python()
pytestmark = pytest.mark.skipif(
    PYTHON is None, reason="upstream lazyllm is not importable here (set LAZYLLM_ORACLE_PYTHON to a Python that has "
                           "lazyllm==1.4.0 to run the differential tests)")

CODES = [
    "def f(x):\n    return x\n",
    "def f(x):\n    return [x, x]\n",
    "def f(x):\n    return (x, 1)\n",
    "def f(x):\n    return package(x, 2)\n",
    "def f(*a):\n    return list(a)\n",
    "def f(a, b):\n    return [b, a]\n",
    "def f(x=5):\n    return x\n",
    'def f(x):\n    return {"a": x, "b": [x, "y"]}\n',
    "def f(x):\n    return len(str(x))\n",
    "def f(*a, **k):\n    return [len(a), sorted(k)]\n",
    "def f():\n    return 7\n",
    "def f(x):\n    return str(x) * 2\n",
    'def f(x):\n    raise ValueError("boom")\n',
    "def helper(x):\n    return [x]\ndef main(x):\n    return x\n",
]
RULES = ["[0]", "[-1]", "[1:]", "[::-1]", "[0, 1]", "*[0, 1]", "[:][0]", "[a]", "{a}", "[a, b]", "*[a, b]", "[:]",
         "{:}", "[0][a]", "[:]{a}", "[b][0]", "[0:2]", "*[0]"]
VALUES = st.recursive(
    st.one_of(st.integers(-3, 9), st.sampled_from(["", "a", "hello", "1"]), st.none()),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.sampled_from(["a", "b", "c"]), inner, max_size=3)),
    max_leaves=6)


@st.composite
def leaf_node(draw, nid: str) -> dict:
    kind = draw(st.sampled_from(["Code"] * 6 + ["Constant", "JoinFormatter", "Formatter"]))
    if kind == "Code":
        return dict(id=nid, kind="Code", name=f"n{nid}", args=dict(code=draw(st.sampled_from(CODES))))
    if kind == "Constant":
        value = draw(VALUES)
        return dict(id=nid, kind="Constant", name=f"n{nid}", args=draw(st.sampled_from([value, {"value": value}])))
    if kind == "JoinFormatter":
        t = draw(st.sampled_from(["sum", "stack", "join", "to_dict"]))
        args = dict(type=t, names=["a", "b"]) if t == "to_dict" else dict(type=t, symbol="-") if t == "join" \
            else dict(type=t)
        return dict(id=nid, kind="JoinFormatter", name=f"n{nid}", args=args)
    ftype = draw(st.sampled_from(["python", "jsonlike", "json"]))
    return dict(id=nid, kind="Formatter", name=f"n{nid}", args=dict(ftype=ftype, rule=draw(st.sampled_from(RULES))))


def _chain(nodes: list[dict]) -> dict:
    return dict(nodes=nodes)


@st.composite
def flow_node(draw, nid: str, depth: int) -> dict:
    kind = draw(st.sampled_from(["SubGraph", "Switch", "Ifs", "Loop", "Warp", "Diverter"]))
    inner = lambda i: draw(leaf_node(f"{nid}{i}"))
    if kind == "SubGraph":
        return dict(id=nid, kind=kind, name=f"n{nid}", args=_chain([inner(1), inner(2)]))
    if kind == "Switch":
        full = draw(st.booleans())
        cases = {"a": [inner(1)], "1": inner(2), "default": [inner(3)]}
        args = dict(judge_on_full_input=full, nodes=cases)
        if draw(st.booleans()):
            args["conversion"] = "def c(x):\n    return str(x)[:1]\n"
        return dict(id=nid, kind=kind, name=f"n{nid}", args=args)
    if kind == "Ifs":
        return dict(id=nid, kind=kind, name=f"n{nid}", args=dict(cond="def c(*x):\n    return len(str(x)) % 2\n",
                                                                true=inner(1), false=[inner(2), inner(3)]))
    if kind == "Loop":
        return dict(id=nid, kind=kind, name=f"n{nid}", args=dict(count=draw(st.integers(2, 3)), nodes=[inner(1)]))
    if kind == "Warp":
        return dict(id=nid, kind=kind, name=f"n{nid}", args=dict(nodes=[inner(1)]))
    return dict(id=nid, kind=kind, name=f"n{nid}", args=dict(nodes=[[inner(1)], inner(2), []]))


@st.composite
def graphs(draw) -> dict:
    n = draw(st.integers(1, 5))
    nodes = []
    for i in range(n):
        nid = str(i + 1)
        nodes.append(draw(flow_node(nid, 0)) if draw(st.integers(0, 4)) == 0 else draw(leaf_node(nid)))
    if draw(st.integers(0, 5)) == 0:
        return dict(nodes=nodes, edges=[], resources=[])            # chained
    edges: list[dict] = []
    for i, node in enumerate(nodes):
        sources = ["__start__"] + [m["id"] for m in nodes[:i]]
        picks = draw(st.lists(st.sampled_from(sources), min_size=0, max_size=3, unique=True))
        for src in picks:
            edge = dict(iid=src, oid=node["id"])
            if draw(st.integers(0, 3)) == 0:
                edge["formatter"] = draw(st.sampled_from(RULES))
            edges.append(edge)
        if draw(st.integers(0, 6)) == 0:
            edges.append(dict(constant=draw(VALUES), oid=node["id"]))
    ends = draw(st.lists(st.sampled_from([m["id"] for m in nodes]), min_size=1, max_size=2, unique=True))
    edges += [dict(iid=e, oid="__end__") for e in ends]
    order = draw(st.permutations(range(len(edges))))
    return dict(nodes=nodes, edges=[edges[i] for i in order], resources=[])


ARGS = st.one_of(st.tuples(VALUES).map(list), st.lists(VALUES, min_size=0, max_size=3))


@pytest.fixture(scope="module")
def oracle():
    o = Oracle(PYTHON)
    yield o
    o.close()


@pytest.fixture(scope="module")
def worker():
    with LocalWorker() as w:
        yield w


def ours(graph: dict, args: list, worker) -> dict:
    loaded, report = load_graph(graph)
    if loaded is None:
        return {"error": "invalid", "message": "; ".join(p.message for p in report.errors), "phase": "start"}
    result = Executor(loaded, sandbox=worker.client()).run_result(*args)
    if not result.ok:
        error = result.error
        return {"error": getattr(error, "exc_type", "run"), "message": str(error), "phase": "run",
                "detail": getattr(error, "message", "")}
    return {"value": encode(result.value)}


def agree(mine: dict, theirs: dict) -> bool:
    """Same value; or both fail, and when both fail while running, upstream's message (it wraps the exception in
    its own types) contains ours, except for upstream's bare asserts, which have no message."""
    if "value" in theirs:
        return mine == theirs
    if "error" not in mine:
        return False
    if mine["phase"] == theirs["phase"] == "run" and mine["detail"] and mine["error"] != "AssertionError":
        return mine["detail"] in theirs["message"]
    return True


def _check(graph: dict, args: list, oracle, worker) -> None:
    theirs = oracle.run(graph, args)
    if theirs.get("phase") == "runner":
        pytest.skip(f"upstream's runner failed: {theirs}")
    mine = ours(graph, args, worker)
    assert agree(mine, theirs), json.dumps({"graph": graph, "args": args, "ours": mine, "upstream": theirs})


SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))


@SETTINGS
@given(graph=graphs(), args=ARGS)
def test_generated_graphs_agree_with_upstream(graph, args, oracle, worker):
    _check(graph, args, oracle, worker)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(rule=st.lists(st.sampled_from(["[0]", "[-1]", "[a]", "[b, a]", "[1:]", "[::2]", "[:]", "{a}", "{:}",
                                      "[0, 1]", "[None:2]", "[x]", "[]"]), min_size=1, max_size=3).map("".join),
       star=st.booleans(), value=VALUES)
def test_edge_formatters_agree_with_upstream(rule, star, value, oracle, worker):
    formatter = ("*" if star and rule.startswith("[") else "") + rule
    graph = dict(nodes=[], edges=[dict(iid="__start__", oid="__end__", formatter=formatter)], resources=[])
    _check(graph, [value], oracle, worker)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(text=st.sampled_from(['x {"a": 1} y', '[1, 2] and {"a": [3]}', "no json", '{"a": "}"}', "{bad}", "- a: 1",
                            "a: [1, 2]", '<lazyllm-query>{"query": "q", "files": ["f"]}', "  padded  "]),
       ftype=st.sampled_from(["json", "yaml", "python", "file"]), rule=st.sampled_from(["", "[a]", "[:]", "[0]"]))
def test_formatter_nodes_agree_with_upstream(text, ftype, rule, oracle, worker):
    rule = {"file": "decode"}.get(ftype, rule)
    graph = dict(nodes=[dict(id="1", kind="Formatter", name="f", args=dict(ftype=ftype, rule=rule))], edges=[],
                 resources=[])
    _check(graph, [text], oracle, worker)
