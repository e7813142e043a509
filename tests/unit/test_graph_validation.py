"""Validation before anything runs: every fault is reported, all at once, each with its JSON path."""

from __future__ import annotations

import json

import pytest

from lazyllm_images.runtime.graph.load import (
    GraphFileError,
    load_graph,
    load_graph_strict,
    read_graph_file,
)
from lazyllm_images.runtime.graph.problems import GraphValidationError


def code(id_, name, src="def f(x):\n    return x\n", **extra):
    return dict(id=id_, kind="Code", name=name, args=dict(code=src, **extra))


def e(a, b, **extra):
    return dict(iid=a, oid=b, **extra)


def graph(nodes, edges=(), resources=()):
    return dict(nodes=list(nodes), edges=list(edges), resources=list(resources))


DOC_TOOL = 'def t(x: int):\n    """A tool.\n\n    Args:\n        x (int): a number.\n    """\n    return x\n'
LOOP_BODY = [code("1", "a")]

# (name, graph, expected error message, its JSON path)
FAULTS = [
    ("not_a_graph", [1, 2], 'the file is JSON but not a graph: expected an object with "nodes", "edges" and '
     '"resources", got a list', "$"),
    ("no_nodes_or_edges_key", {"foo": 1}, 'the file is JSON but not a graph: it has neither "nodes" nor "edges"', "$"),
    ("nodes_not_a_list", {"nodes": {}, "edges": []}, "$.nodes must be a list, not an object", "$.nodes"),
    ("empty_graph", graph([]), "the graph at $ has no nodes and no edges", "$"),
    ("unknown_kind", graph([dict(id="1", kind="Nope", name="a", args={})]), 'unknown kind "Nope" at $.nodes[0].kind',
     "$.nodes[0].kind"),
    ("unregistered_upstream_kind", graph([dict(id="1", kind="OnlineSTT", name="a", args={})]),
     'unknown kind "OnlineSTT" at $.nodes[0].kind', "$.nodes[0].kind"),
    ("unsupported_media_kind", graph([dict(id="1", kind="TTS", name="a", args={"type": "local", "base_model": "x"})]),
     "kind TTS at $.nodes[0] is not supported", "$.nodes[0].kind"),
    ("unsupported_sql_kind", graph([dict(id="1", kind="SqlManager", name="a", args={})]),
     "kind SqlManager at $.nodes[0] is not supported", "$.nodes[0].kind"),
    ("unsupported_vqa_resource", graph([code("1", "a")], resources=[dict(id="0", kind="VQA", name="v", args={
        "type": "local", "base_model": "m"})]), "kind VQA at $.resources[0] is not supported", "$.resources[0].kind"),
    ("missing_args", graph([dict(id="1", kind="Code", name="a")]), '$.nodes[0] has no "args"', "$.nodes[0]"),
    ("missing_argument", graph([dict(id="1", kind="Switch", name="s", args={"nodes": {"a": code("2", "b")}})]),
     'missing argument "judge_on_full_input" for kind Switch at $.nodes[0].args', "$.nodes[0].args"),
    ("unknown_argument", graph([dict(id="1", kind="Code", name="a", args={"code": "def f(x): return x", "bogus": 1})]),
     'unknown argument "bogus" for kind Code at $.nodes[0].args.bogus', "$.nodes[0].args.bogus"),
    ("unknown_argument_of_llm_type", graph([dict(id="1", kind="LLM", name="m", args={"type": "online", "sourc": "x"})]),
     'unknown argument "sourc" for kind LLM (type online) at $.nodes[0].args.sourc', "$.nodes[0].args.sourc"),
    ("dangling_oid", graph([code("1", "a")], [e("__start__", "1"), e("1", "9"), e("1", "__end__")]),
     '$.edges[1].oid refers to id "9", which is not a node', "$.edges[1].oid"),
    ("dangling_iid", graph([code("1", "a")], [e("__start__", "1"), e("8", "1"), e("1", "__end__")]),
     '$.edges[1].iid refers to id "8", which is not a node', "$.edges[1].iid"),
    ("dangling_list_edge", graph([code("1", "a")], [["__start__", "1"], ["1", "7"], ["1", "__end__"]]),
     '$.edges[1][1] refers to id "7", which is not a node', "$.edges[1][1]"),
    ("dangling_constant_edge", graph([code("1", "a")], [e("__start__", "1"), dict(constant=1, oid="5"),
                                                        e("1", "__end__")]),
     '$.edges[1].oid refers to id "5", which is not a node', "$.edges[1].oid"),
    ("edge_to_a_node_of_another_graph", graph([dict(id="5", kind="SubGraph", name="s", args=dict(nodes=[code(
        "1", "a")])), code("2", "b")], [e("__start__", "1"), e("1", "__end__")]),
     '$.edges[0].oid refers to id "1", which is not a node of this graph', "$.edges[0].oid"),
    ("duplicate_id", graph([code("1", "a"), code("1", "b")]), 'duplicate id "1" at $.nodes[1].id (first at '
     '$.nodes[0])', "$.nodes[1].id"),
    ("duplicate_name", graph([code("1", "a"), code("2", "a")]), 'duplicate name "a" at $.nodes[1].name (also '
     '$.nodes[0])', "$.nodes[1].name"),
    ("duplicate_edge", graph([code("1", "a")], [e("__start__", "1"), e("__start__", "1"), e("1", "__end__")]),
     '$.edges[1] repeats the edge from "__start__" to "1" ($.edges[0])', "$.edges[1]"),
    ("no_path_into_end", graph([code("1", "a")], [e("__start__", "1")]),
     'no path into __end__: no edge of $.edges ends at "__end__"', "$.edges"),
    ("only_a_constant_into_end", graph([code("1", "a")], [e("__start__", "1"), dict(constant=1, oid="__end__")]),
     'no path into __end__: no edge of $.edges ends at "__end__"', "$.edges"),
    ("cycle", graph([code("1", "a"), code("2", "b")], [e("__start__", "1"), e("1", "2"), e("2", "1"),
                                                      e("2", "__end__")]), 'cycle in $.edges: "1" -> "2" -> "1"',
     "$.edges"),
    ("self_loop", graph([code("1", "a")], [e("__start__", "1"), e("1", "1"), e("1", "__end__")]),
     'cycle in $.edges: "1" -> "1"', "$.edges"),
    ("cycle_in_a_loop_body", graph([dict(id="9", kind="Loop", name="l", args=dict(count=2, nodes=[
        code("1", "a"), code("2", "b")], edges=[e("__start__", "1"), e("1", "2"), e("2", "1"), e("2", "__end__")]))]),
     'cycle in $.nodes[0].args.edges: "1" -> "2" -> "1"', "$.nodes[0].args.edges"),
    ("edge_into_start", graph([code("1", "a")], [e("__start__", "1"), e("1", "__start__"), e("1", "__end__")]),
     "$.edges[1].oid: an edge cannot go into __start__", "$.edges[1].oid"),
    ("edge_out_of_end", graph([code("1", "a")], [e("__start__", "1"), e("1", "__end__"), e("__end__", "1")]),
     "$.edges[2].iid: an edge cannot go out of __end__", "$.edges[2].iid"),
    ("formatter_not_bracketed", graph([code("1", "a")], [e("__start__", "1", formatter="a.b"), e("1", "__end__")]),
     'bad formatter "a.b" at $.edges[0].formatter: must start with "[", "*[" or "{" and end with "]" or "}"',
     "$.edges[0].formatter"),
    ("formatter_slice_and_list", graph([code("1", "a")], [e("__start__", "1", formatter="[0, 1:2]"),
                                                         e("1", "__end__")]),
     'bad formatter "[0, 1:2]" at $.edges[0].formatter: "[0, 1:2]" mixes a slice with a list of keys, which is not '
     'supported', "$.edges[0].formatter"),
    ("formatter_bad_number", graph([code("1", "a")], [e("__start__", "1", formatter="[x:2]"), e("1", "__end__")]),
     'bad formatter "[x:2]" at $.edges[0].formatter: "x" in a slice is not a number (use an integer, None or '
     'nothing)', "$.edges[0].formatter"),
    ("formatter_node_rule", graph([dict(id="1", kind="Formatter", name="f", args=dict(ftype="json", rule="[a*]"))]),
     'bad formatter "[a*]" at $.nodes[0].args.rule: "*" may only come first, right before "["',
     "$.nodes[0].args.rule"),
    ("formatter_node_type", graph([dict(id="1", kind="Formatter", name="f", args=dict(ftype="pipeline", rule=""))]),
     'Formatter ftype "pipeline" at $.nodes[0].args.ftype must be one of jsonlike, python, json, yaml, file',
     "$.nodes[0].args.ftype"),
    ("join_formatter_type", graph([dict(id="1", kind="JoinFormatter", name="j", args=dict(type="concat"))]),
     'JoinFormatter type "concat" at $.nodes[0].args.type must be one of sum, stack, to_dict, join, file',
     "$.nodes[0].args.type"),
    ("code_syntax_error", graph([code("1", "a", "def f(x) return x")]),
     "syntax error in $.nodes[0].args.code (line 1)", "$.nodes[0].args.code"),
    ("code_without_function", graph([code("1", "a", "x = 1")]), "no function defined in $.nodes[0].args.code",
     "$.nodes[0].args.code"),
    ("code_first_def_nested", graph([code("1", "a", "class A:\n    def m(self):\n        pass\n")]),
     "the first `def` in $.nodes[0].args.code (m) is not a top-level function", "$.nodes[0].args.code"),
    ("code_as_bare_string", graph([dict(id="1", kind="Code", name="a", args="def f(x) x")]),
     "syntax error in $.nodes[0].args (line 1)", "$.nodes[0].args"),
    ("ifs_condition_syntax", graph([dict(id="1", kind="Ifs", name="i", args=dict(cond="def c(x) x", true=[],
                                                                                    false=[]))]),
     "syntax error in $.nodes[0].args.cond (line 1)", "$.nodes[0].args.cond"),
    ("switch_conversion_without_def", graph([dict(id="1", kind="Switch", name="s", args=dict(
        judge_on_full_input=True, conversion="str", nodes={"a": []}))]),
     "no function defined in $.nodes[0].args.conversion", "$.nodes[0].args.conversion"),
    ("loop_without_stop_or_count", graph([dict(id="2", kind="Loop", name="l", args=dict(nodes=LOOP_BODY))]),
     "Loop at $.nodes[0] needs stop_condition or count", "$.nodes[0].args"),
    ("loop_count_one", graph([dict(id="2", kind="Loop", name="l", args=dict(count=1, nodes=LOOP_BODY))]),
     "Loop count at $.nodes[0].args.count must be an integer greater than 1, not 1", "$.nodes[0].args.count"),
    ("loop_stop_condition_syntax", graph([dict(id="2", kind="Loop", name="l", args=dict(
        stop_condition="def s(x) x", nodes=LOOP_BODY))]), "syntax error in $.nodes[0].args.stop_condition (line 1)",
     "$.nodes[0].args.stop_condition"),
    ("missing_resource", graph([dict(id="1", kind="SharedModel", name="s", args=dict(llm="0"))]),
     '$.nodes[0].args.llm refers to id "0", which is not a node or resource', "$.nodes[0].args.llm"),
    ("missing_tool", graph([dict(id="1", kind="ToolsForLLM", name="t", args=dict(tools=["1001"]))]),
     '$.nodes[0].args.tools[0] refers to id "1001", which is not a node or resource', "$.nodes[0].args.tools[0]"),
    ("missing_document", graph([dict(id="1", kind="Retriever", name="r", args=dict(doc="d", group_name="g"))]),
     '$.nodes[0].args.doc refers to id "d", which is not a node or resource', "$.nodes[0].args.doc"),
    ("resource_of_the_wrong_kind", graph([dict(id="1", kind="SharedModel", name="s", args=dict(llm="2"))],
                                         resources=[code("2", "c")]),
     '$.nodes[0].args.llm refers to "2" (Code at $.resources[0]), which is not a model (LLM, LocalLLM, OnlineLLM, '
     'SharedModel)', "$.nodes[0].args.llm"),
    ("tool_without_docstring", graph([dict(id="1", kind="ToolsForLLM", name="t", args=dict(tools=["2"]))],
                                     resources=[code("2", "c")]),
     'the tool "c" ($.resources[0]) used at $.nodes[0].args.tools[0] has no docstring', "$.nodes[0].args.tools[0]"),
    ("switch_cases_not_an_object", graph([dict(id="1", kind="Switch", name="s", args=dict(judge_on_full_input=True,
                                                                                            nodes=[1]))]),
     "nodes at $.nodes[0].args.nodes must be an object mapping each case to a node or a list of nodes",
     "$.nodes[0].args.nodes"),
    ("server_in_a_loop_body", graph([dict(id="5", kind="Loop", name="l", args=dict(count=2, nodes=LOOP_BODY,
                                    resources=[dict(id="9", kind="server", name="srv", args={})]))]),
     "a server resource at $.nodes[0].args.resources[0] is only allowed in a Graph, SubGraph or App, not in a "
     "branch or a Loop/Warp body", "$.nodes[0].args.resources[0].kind"),
    ("two_servers", graph([code("1", "a")], resources=[dict(id="8", kind="server", name="s1", args={}),
                                                     dict(id="9", kind="server", name="s2", args={})]),
     "duplicated server resource at $.resources[1] (first at $.resources[0])", "$.resources[1]"),
    ("web_without_title", graph([code("1", "a")], resources=[dict(id="9", kind="web", name="w", args={"audio": 0})]),
     'missing argument "title" for kind web at $.resources[0].args', "$.resources[0].args"),
    ("server_as_a_node", graph([dict(id="1", kind="server", name="s", args={})]),
     'kind server at $.nodes[0] is only allowed in "resources"', "$.nodes[0].kind"),
    ("name_starting_with_underscore", graph([code("1", "_a")]),
     'name "_a" at $.nodes[0].name must not be empty or start with "_"', "$.nodes[0].name"),
    ("numeric_id", graph([code(1, "a")]), "id at $.nodes[0].id must be a string, not a number", "$.nodes[0].id"),
    ("reserved_id", graph([code("__end__", "a")]), 'id "__end__" at $.nodes[0].id is reserved', "$.nodes[0].id"),
    ("short_list_edge", graph([code("1", "a")], [["__start__"], ["1", "__end__"]]),
     "$.edges[0] must be [from_id, to_id], got 1 element(s)", "$.edges[0]"),
    ("edge_without_oid", graph([code("1", "a")], [dict(iid="__start__"), e("1", "__end__")]),
     '$.edges[0] has no "oid"', "$.edges[0]"),
    ("ifs_judge_false", graph([dict(id="1", kind="Ifs", name="i", args=dict(cond="def c(x): return x", true=[],
                                                                               false=[], judge_on_full_input=False))]),
     "Ifs at $.nodes[0] supports only judge_on_full_input=true (as upstream)", "$.nodes[0].args.judge_on_full_input"),
    ("id_of_an_enclosing_node", graph([dict(id="5", kind="SubGraph", name="s", args=dict(nodes=[code("5", "a")]))]),
     'id "5" at $.nodes[0].args.nodes[0].id is already the id of an enclosing node ($.nodes[0])',
     "$.nodes[0].args.nodes[0].id"),
    ("nested_dangling_edge", graph([dict(id="5", kind="SubGraph", name="s", args=dict(nodes=[code("1", "a")], edges=[
        e("__start__", "1"), e("1", "7"), e("1", "__end__")]))]),
     '$.nodes[0].args.edges[1].oid refers to id "7", which is not a node', "$.nodes[0].args.edges[1].oid"),
    ("switch_branch_unknown_kind", graph([dict(id="1", kind="Switch", name="s", args=dict(
        judge_on_full_input=True, nodes={"a b": [dict(id="2", kind="Nope", name="n", args={})]}))]),
     'unknown kind "Nope" at $.nodes[0].args.nodes["a b"][0].kind', '$.nodes[0].args.nodes["a b"][0].kind'),
]


@pytest.mark.parametrize("data,message,path", [f[1:] for f in FAULTS], ids=[f[0] for f in FAULTS])
def test_fault_is_reported_with_its_path(data, message, path):
    loaded, report = load_graph(data)
    assert loaded is None
    found = [(p.message, p.path) for p in report.errors]
    assert (message, path) in found, found


def test_every_problem_is_reported_at_once():
    data = graph([code("1", "a", "def f(x) x"), dict(id="2", kind="Nope", name="b", args={}),
                  dict(id="3", kind="Loop", name="l", args=dict(nodes=LOOP_BODY))],
                 [e("__start__", "1"), e("1", "9"), e("1", "__end__", formatter="a.b"), e("1", "2")])
    loaded, report = load_graph(data)
    assert loaded is None
    paths = [p.path for p in report.errors]
    assert paths == ["$.nodes[0].args.code", "$.nodes[1].kind", "$.nodes[2].args", "$.edges[1].oid",
                     "$.edges[2].formatter"], report.errors
    with pytest.raises(GraphValidationError, match="and 4 more problems") as info:
        load_graph_strict(data)
    assert len(info.value.report.errors) == 5


def test_problems_carry_hints_and_serialise():
    _, report = load_graph(graph([dict(id="2", kind="Loop", name="l", args=dict(nodes=LOOP_BODY))]))
    d = report.as_dict()
    assert d["ok"] is False
    assert d["errors"][0] == {"level": "error", "path": "$.nodes[0].args", "hint": "without either, upstream loops "
                              "forever", "message": "Loop at $.nodes[0] needs stop_condition or count"}
    json.dumps(d)


WARNINGS = [
    ("side_branch", graph([code("1", "a"), code("2", "b")], [e("__start__", "1"), e("__start__", "2"),
                                                             e("2", "__end__")]),
     'node "1" (a) at $.nodes[0] runs but its output never reaches __end__'),
    ("unconnected_node", graph([code("1", "a"), code("2", "b")], [e("__start__", "1"), e("1", "__end__")]),
     'node "2" (b) at $.nodes[1] has no edges and never runs'),
    ("no_inputs", graph([code("1", "a", "def f(): return 1")], [e("1", "__end__")]),
     'node "1" (a) at $.nodes[0] has no inputs: it is called with no arguments'),
    ("input_unused", graph([code("1", "a", "def f(): return 1")], [e("1", "__end__")]),
     "no edge of $.edges leaves __start__: the graph ignores its input"),
    ("helper_above_main", graph([code("1", "a", "def helper(x):\n    return x\ndef main(x):\n    return x\n")]),
     "$.nodes[0].args.code defines several functions; upstream runs the first one, helper, not main"),
    ("vars_for_code_hides_imports", graph([code("1", "a", "import math\ndef f(x):\n    return math.pi\n",
                                                vars_for_code={"k": 1})]),
     "with vars_for_code, the top-level imports and helpers of $.nodes[0].args.code are not visible inside f "
     "(an upstream bug, kept)"),
    ("switch_int_like_key", graph([dict(id="1", kind="Switch", name="s", args=dict(judge_on_full_input=True,
                                                                                    nodes={"1": code("2", "b")}))]),
     'the case "1" at $.nodes[0].args.nodes["1"] is a string (JSON keys are strings): a number input never matches '
     'it, as upstream'),
    ("default_first", graph([dict(id="1", kind="Switch", name="s", args=dict(judge_on_full_input=True, nodes={
        "default": [], "a": []}))]),
     'the "default" case at $.nodes[0].args.nodes.default matches everything: the cases after it never run '
     '(upstream tests the cases in order)'),
    ("redefined_shared_id", graph([dict(id="5", kind="SubGraph", name="s", args=dict(nodes=[code("1", "a")])),
                                   dict(id="6", kind="SubGraph", name="t", args=dict(nodes=[code("1", "b")]))]),
     'id "1" at $.nodes[1].args.nodes[0].id is already defined at $.nodes[0].args.nodes[0]; upstream reuses that '
     'definition and ignores this one'),
    ("enable_report", graph([code("1", "a", _lazyllm_enable_report=True)]),
     "$.nodes[0].args._lazyllm_enable_report is ignored: node reports go to the event stream (--trace, SSE)"),
]


@pytest.mark.parametrize("data,message", [w[1:] for w in WARNINGS], ids=[w[0] for w in WARNINGS])
def test_quirks_upstream_runs_are_warnings_not_errors(data, message):
    loaded, report = load_graph(data)
    assert loaded is not None, report.errors
    assert message in [p.message for p in report.warnings], report.warnings


def test_shared_node_ids_across_levels_are_one_node():
    plus1 = code("2", "p")
    data = graph([dict(id="9", kind="Warp", name="w", args=dict(nodes=[dict(id="8", kind="Ifs", name="i", args=dict(
        cond="def c(x): return x", true=plus1, false=[code("3", "q")])), plus1]))])
    loaded, report = load_graph(data)
    assert loaded is not None and not report.warnings
    ifs = loaded.nodes_by_id["8"]
    assert ifs.sub["true"].nodes[0] is loaded.nodes_by_id["2"]
    assert loaded.nodes_by_id["9"].sub["body"].nodes[1] is loaded.nodes_by_id["2"]


def test_args_forms_as_upstream_reads_them():
    loaded, _ = load_graph(graph([dict(id="1", kind="Code", name="a", args="def f(x): return x"),
                                  dict(id="2", kind="Constant", name="b", args={"other": 5}),
                                  dict(id="3", kind="Constant", name="c", args={"value": 5}),
                                  dict(id="4", kind="JoinFormatter", name="d", args="stack")]))
    by = loaded.nodes_by_id
    assert by["1"].args["code"] == "def f(x): return x"
    assert by["2"].args["value"] == {"other": 5} and by["3"].args["value"] == 5
    assert by["4"].args == {"type": "stack", "names": None, "symbol": None}


def test_services_summary_lists_models_tools_and_users():
    data = graph([dict(id="1", kind="SharedModel", name="s", args=dict(llm="0", prompt="hi")),
                  dict(id="2", kind="HTTP", name="h", args=dict(method="GET", url="http://x")),
                  dict(id="3", kind="HttpTool", name="t", args=dict(code_str="def f(x): return x")),
                  dict(id="4", kind="Retriever", name="r", args=dict(doc="d", group_name="CoarseChunk"))],
                 resources=[dict(id="0", kind="LocalLLM", name="m", args=dict(base_model="qwen")),
                            dict(id="d", kind="Document", name="doc", args=dict(dataset_path="/docs", embed="e")),
                            dict(id="e", kind="Embedding", name="emb", args=dict(type="local", base_model="bge")),
                            dict(id="s", kind="server", name="srv", args={})])
    loaded, report = load_graph(data)
    assert loaded is not None, report.errors
    summary = {s["id"]: s for s in loaded.services_summary()["services"]}
    assert summary["0"]["category"] == "model" and summary["0"]["used_by"] == ["1"]
    assert summary["0"]["args"]["base_model"] == "qwen" and summary["0"]["path"] == "$.resources[0]"
    assert summary["2"]["category"] == "http"
    assert "3" not in summary                          # HttpTool without a url is pure
    assert summary["d"]["category"] == "retrieval" and summary["d"]["used_by"] == ["4"]
    assert summary["e"]["category"] == "embedding" and summary["e"]["used_by"] == ["d"]
    assert summary["s"]["category"] == "resource"
    assert loaded.services_summary()["counts"] == {"embedding": 1, "http": 1, "model": 2, "resource": 1,
                                                   "retrieval": 2}


def test_file_faults(tmp_path):
    with pytest.raises(GraphFileError, match="no such file"):
        read_graph_file(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{", encoding="utf-8")
    with pytest.raises(GraphFileError, match="is not JSON: Expecting property name"):
        read_graph_file(bad)
    with pytest.raises(GraphFileError, match="is a directory"):
        read_graph_file(tmp_path)
