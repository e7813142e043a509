"""Upstream's value semantics piece by piece: values and their JSON forms, the slice language (the reference's
table, all ran upstream), formatter nodes, argument passing, flows, events, the service interface (with the test
``FakeServices``), and the one-shot/REPL entry point."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures"))

from graph_support import FakeServices

from lazyllm_images.runtime.graph import cli, slicer
from lazyllm_images.runtime.graph.executor import Executor
from lazyllm_images.runtime.graph.formatters import (
    FormatterNode,
    JoinFormatter,
    load_json,
)
from lazyllm_images.runtime.graph.load import load_graph_strict
from lazyllm_images.runtime.graph.sandbox import LocalWorker
from lazyllm_images.runtime.graph.servicenodes import fill_template
from lazyllm_images.runtime.graph.values import (
    Arguments,
    Package,
    decode,
    encode,
    output_json,
    parse_cli_input,
    start_value,
)


@pytest.fixture(scope="module")
def worker():
    with LocalWorker() as w:
        yield w


def code(id_, name, src, **extra):
    return dict(id=id_, kind="Code", name=name, args=dict(code=src, **extra))


def run(worker, graph: dict, *args, services=None, events=None):
    loaded = load_graph_strict(graph)
    return Executor(loaded, sandbox=worker.client(), services=services,
                    on_event=events.append if events is not None else None).run(*args)


# --------------------------------------------------------------------------------------------------- values
def test_package_behaves_as_upstream():
    assert Package(1, 2) == (1, 2) and Package([1, 2]) == (1, 2) and Package(x for x in (1, 2)) == (1, 2)
    assert Package(5) == (5,) and Package("ab") == ("ab",)
    assert isinstance(Package(1, 2, 3)[1:], Package) and isinstance(Package(1) + (2,), Package)
    assert repr(Package(1, 2)) == "(1, 2)"


def test_arguments_splice_packages_only():
    a = Arguments.new()
    for v in (Package(1, 2), [3], (4,), {"k": 5}):
        a.append(v)
    assert a.args == (1, 2, [3], (4,), {"k": 5}) and a.kw == {}
    assert start_value((3,)) == 3 and start_value((1, 2)) == Package(1, 2) and start_value(()) == Package()
    assert start_value((), {"k": 1}) == {"k": 1}
    both = start_value((2,), {"k": 1})
    assert isinstance(both, Arguments) and both.args == (2,) and both.kw == {"k": 1}


@pytest.mark.parametrize("value", [None, True, 3, 2.5, "s", [1, (2, 3)], Package(1, [2]), {"a": (1,)}, {1: "x"},
                                   {(1, 2): {3}}, frozenset({1}), b"\x00", {"__tuple__": [1]}])
def test_wire_form_round_trips(value):
    assert decode(json.loads(json.dumps(encode(value)))) == value
    assert type(decode(encode(value))) is type(value)


def test_output_form():
    assert output_json(Package(1, (2, 3), {4})) == "[1, [2, 3], [4]]"
    assert output_json({1: "a", None: b"x"}) == '{"1": "a", "null": "x"}'
    assert output_json("商汤") == '"商汤"'
    assert parse_cli_input("[1, 2]") == [1, 2] and parse_cli_input("hello") == "hello"
    assert parse_cli_input('"5"') == "5" and parse_cli_input("5") == 5


# -------------------------------------------------------------------------------------- the slice language
REFERENCE_TABLE = [  # workflow-engine.md §3.3, every row ran upstream
    ("[0]", [10, 20, 30], 10), ("[-1]", [1, 2, 3], 3), ("[::2]", [0, 1, 2, 3, 4, 5], [0, 2, 4]),
    ("[::-1]", [1, 2, 3], [3, 2, 1]), ("[None:2]", [1, 2, 3], [1, 2]), ("[0:2]", "hello", "he"),
    ("[0, 2]", [10, 20, 30], [10, 30]), ("*[0, 2]", [10, 20, 30], Package(10, 30)),
    ("[:][1]", [[1, 2], [3, 4]], [2, 4]), ("[0][a]", [{"a": 9}], 9),
    ("[:][a]", [{"a": 1, "b": 2}, {"a": 3, "b": 4}], [1, 3]),
    ("[:]{a}", [{"a": 1, "b": 2}, {"a": 3, "b": 4}], [{"a": 1}, {"a": 3}]), ("[b]", {"a": 1, "b": 4}, 4),
    ("[b, a]", {"a": 1, "b": 2}, [2, 1]), ("*[a, b]", {"a": 1, "b": 2}, Package(1, 2)),
    ("{a,c,d}", {"a": 1, "b": 2, "c": 3, "d": 4}, {"a": 1, "c": 3, "d": 4}),
    ("{:}", {"a": 1, "b": 2}, {"a": 1, "b": 2}), ("[:]", {"a": 1, "b": 2}, [1, 2]), ("[a][b]", {"a": {"b": 7}}, 7),
    ("{a}{b}", {"a": {"b": 1, "c": 2}}, {"a": {"b": 1}}),
    ("[a]{b}", {"a": {"b": 1, "c": 2}}, {"b": 1}), ("[0]", Package(3, 1), 3), ("[1:][0]", [[1], [2], [3]], [2, 3]),
    ("*[0:2]", [1, 2, 3], [1, 2]), ("*[a]", {"a": 1}, 1), ("[0:5]", {"role": "assistant", "content": "hello world"},
                                                            "hello"),
]


@pytest.mark.parametrize("rule,data,expected", REFERENCE_TABLE)
def test_reference_slice_table(rule, data, expected):
    out = slicer.parse_edge(rule).apply(data)
    assert out == expected and type(out) is type(expected)


@pytest.mark.parametrize("rule,data,error", [("[a]", "text", TypeError), ("[x]", {"a": 1}, KeyError),
                                             ("{a}", [1], AssertionError), ("[1:]", {"a": 1}, AssertionError)])
def test_slices_fail_as_upstream(rule, data, error):
    with pytest.raises(error):
        slicer.parse_edge(rule).apply(data)


def test_formatter_nodes():
    assert FormatterNode("json", "[b][1]")('Result: {"a": 1, "b": [1, 2]} done') == 2
    assert FormatterNode("json", "[:][a]")('x {"a":1} y {"a":2}') == [1, 2]
    assert FormatterNode("json", "")("no json here") == ""
    with pytest.raises(AssertionError):
        load_json('{"a": 1')
    assert FormatterNode("yaml", "[:]{a}")("- a: 1\n  b: 2\n- a: 3\n  d: 4\n") == [{"a": 1}, {"a": 3}]
    assert FormatterNode("python", "[:]")([1, 2]) == [1, 2]
    assert FormatterNode("file", "decode")('<lazyllm-query>{"query":"aha","files":["p"]}') == \
        {"query": "aha", "files": ["p"]}
    assert FormatterNode("file", "encode")({"query": "aha", "files": ["p"]}) == \
        '<lazyllm-query>{"query": "aha", "files": ["p"]}'
    assert FormatterNode("file", "merge")("hi", '<lazyllm-query>{"query":"aha","files":["p"]}') == \
        '<lazyllm-query>{"query": "hiaha", "files": ["p"]}'


def test_join_formatter():
    assert JoinFormatter("sum")([1, 2]) == 3 and JoinFormatter("sum")(["1", "11"]) == "111"
    assert JoinFormatter("sum")([[1], [1, 1]]) == [1, 1, 1] and JoinFormatter("sum")(1, 2, 3) == 6
    assert JoinFormatter("stack")(1) == [1] and JoinFormatter("stack")([1]) == [[1]]
    assert JoinFormatter("to_dict", names=["a", "b"])(1, 2) == {"a": 1, "b": 2}
    assert JoinFormatter("join", symbol="-")(1, "b") == "1-b" and JoinFormatter("join")("  abc ") == "abc"
    with pytest.raises(AssertionError, match="Cannot sum empty inputs"):
        JoinFormatter("sum")()


def test_http_templates():
    assert fill_template("{{a}}", ({"a": [1]},), {}) == [1]
    assert fill_template("x={{a}}&y={{b}}&z={{c}}", (), {"a": [1], "b": None}) == "x=[1]&y=null&z={{c}}"
    assert fill_template("{{a}}", ("not a dict",), {}) == "{{a}}"


# ----------------------------------------------------------------------------------------- running graphs
def test_hyperparameter_and_arg_names(worker):
    g = dict(nodes=[dict(code("1", "m", "def f(x, k=1):\n    return x * k\n"), hyperparameter={"k": 3})])
    assert run(worker, g, 2) == 6
    g = dict(nodes=[code("1", "m", "def f(**k):\n    return k\n", _lazyllm_arg_names=["a", "b"])])
    assert run(worker, g, 5, 6) == {"a": 5, "b": 6}


def test_events_name_nodes_with_timings_and_parents(worker):
    inner = code("1", "double", "def f(x):\n    return 2 * x\n")
    g = dict(nodes=[dict(id="5", kind="SubGraph", name="sub", args=dict(nodes=[inner]))])
    events: list[dict] = []
    assert run(worker, g, 4, events=events) == 8
    types = [(e["type"], e.get("node_id")) for e in events]
    assert types == [("run_started", None), ("node_started", "5"), ("node_started", "1"), ("node_finished", "1"),
                     ("node_finished", "5"), ("run_finished", None)]
    started = next(e for e in events if e["type"] == "node_started" and e["node_id"] == "1")
    assert started["parent"] == "5" and started["name"] == "double" and started["kind"] == "Code"
    assert started["path"] == "$.nodes[0].args.nodes[0]"
    finished = next(e for e in events if e["type"] == "node_finished" and e["node_id"] == "1")
    assert finished["elapsed_ms"] > 0 and events[-1]["result"] == 8
    json.dumps(events)


def test_failures_name_the_innermost_node(worker):
    inner = code("1", "boom", "def f(x):\n    raise ValueError('boom')\n")
    g = dict(nodes=[dict(id="5", kind="SubGraph", name="sub", args=dict(nodes=[inner]))])
    events: list[dict] = []
    loaded = load_graph_strict(g)
    result = Executor(loaded, sandbox=worker.client(), on_event=events.append).run_result(1)
    assert str(result.error) == 'node "1" (boom) raised ValueError: boom'
    assert "raise ValueError('boom')" in result.error.traceback
    failed = [e["node_id"] for e in events if e["type"] == "node_failed"]
    assert failed == ["1", "5"] and events[-1]["ok"] is False


def test_printed_output_is_a_log_event(worker):
    events: list[dict] = []
    run(worker, dict(nodes=[code("1", "talk", "def f(x):\n    print('hello', x)\n    return x\n")]), 3, events=events)
    assert [e["text"] for e in events if e["type"] == "log"] == ["hello 3\n"]


def test_edge_formatter_errors_name_the_edge(worker):
    g = dict(nodes=[code("1", "m", "def f(x):\n    return x\n")],
             edges=[dict(iid="__start__", oid="1", formatter="[a]"), dict(iid="1", oid="__end__")])
    loaded = load_graph_strict(g)
    result = Executor(loaded, sandbox=worker.client()).run_result({"b": 1})
    assert str(result.error) == "the formatter \"[a]\" of $.edges[0] raised KeyError: 'a'"


def test_switch_judge_false_needs_two_inputs(worker):
    sw = dict(id="4", kind="Switch", name="s", args=dict(judge_on_full_input=False, nodes={"a": []}))
    loaded = load_graph_strict(dict(nodes=[sw]))
    result = Executor(loaded, sandbox=worker.client()).run_result("a")
    assert str(result.error).startswith('node "4" (s) raised AssertionError: with judge_on_full_input false')
    assert Executor(loaded, sandbox=worker.client()).run("a", 7) == 7


def test_graphs_without_code_need_no_sandbox():
    g = dict(nodes=[dict(id="1", kind="JoinFormatter", name="j", args=dict(type="stack"))])
    assert Executor(load_graph_strict(g)).run(1, 2) == [1, 2]


# ------------------------------------------------------------------------------------- service interface
def test_llm_keys_need_one_input_per_key(worker):
    res = [dict(id="0", kind="LLM", name="m", args=dict(type="online", source="openai", keys=["q", "a"]))]
    nodes = [dict(id="1", kind="SharedModel", name="s", args=dict(llm="0", prompt="mine"))]
    loaded = load_graph_strict(dict(nodes=nodes, resources=res))
    result = Executor(loaded, services=FakeServices()).run_result("only one")
    assert str(result.error) == 'node "1" (s) raised AssertionError: node "0" (m) has 2 keys (q, a) but got 1 inputs'


def test_llm_keys_zip_inputs_and_stream_deltas(worker):
    services = FakeServices()
    res = [dict(id="0", kind="LLM", name="m", args=dict(type="online", source="openai", keys=["query", "answer"],
                                                        stream=True))]
    nodes = [dict(id="1", kind="SharedModel", name="s", args=dict(llm="0", prompt="P"),
                  hyperparameter={"temperature": 0.1})]
    events: list[dict] = []
    out = run(worker, dict(nodes=nodes, resources=res), "hello", "world", services=services, events=events)
    call = services.calls[-1][1]
    assert call.args == ({"query": "hello", "answer": "world"},) and call.prompt == "P" and call.stream
    assert call.kwargs == {"temperature": 0.1} and call.model.kind == "LLM"
    assert "".join(e["delta"] for e in events if e["type"] == "text_delta").strip() == out.strip()


def test_intention_falls_back_to_the_first_label(worker):
    res = [dict(id="0", kind="OnlineLLM", name="m", args=dict(source="openai"))]
    cases = {"music": code("1", "m1", "def f(x):\n    return 'music ' + x\n"),
             "chat": code("2", "m2", "def f(x):\n    return 'chat ' + x\n")}
    g = dict(nodes=[dict(id="4", kind="Intention", name="i", args=dict(base_model="0", nodes=cases))],
             resources=res)
    assert run(worker, g, "sing", services=FakeServices()) == "music sing"
    assert run(worker, g, "hmm", services=FakeServices()) == "music hmm"


def test_http_tool_with_a_url_goes_through_services(worker):
    services = FakeServices()
    tool = dict(id="1", kind="HttpTool", name="h", args=dict(method="GET", url="https://postman-echo.com/get",
                                                             params={"q": "{{q}}"}, outputs=["args", "url"]))
    out = run(worker, dict(nodes=[tool]), {"q": "x y"}, services=services)
    assert out == Package({"q": "x y"}, "https://postman-echo.com/get?q=x+y")
    request = services.calls[-1][1]
    assert request.method == "GET" and request.params == {"q": "x y"} and request.node.id == "1"


def test_missing_services_fail_the_node_clearly(worker):
    g = dict(nodes=[dict(id="1", kind="OnlineLLM", name="chat", args=dict(source="openai"))])
    result = Executor(load_graph_strict(g)).run_result("hi")
    assert str(result.error) == 'node "1" (chat) raised ServiceUnavailable: no model service for OnlineLLM nodes in ' \
                                'this run'


def test_agent_gets_tool_handles_that_run_in_the_sandbox(worker):
    class Agent(FakeServices):
        def agent(self, call, tools):
            self.tools = tools
            return [t.call({"a": 2, "b": 3}) for t in tools]
    tool = code("1001", "add", 'def add(a: int, b: int):\n    """Add.\n\n    Args:\n        a (int): first.\n'
                               '        b (int): second.\n    """\n    return a + b\n')
    res = [dict(id="0", kind="OnlineLLM", name="m", args=dict(source="openai")), tool]
    g = dict(nodes=[dict(id="1", kind="FunctionCall", name="fc", args=dict(base_model="0", tools=["1001"]))],
             resources=res)
    services = Agent()
    assert run(worker, g, "go", services=services) == [{"ok": True, "value": 5}]
    handle = services.tools[0]
    assert handle.name == "add" and handle.description == "Add."
    assert handle.parameters == {"type": "object", "required": ["a", "b"], "properties": {
        "a": {"type": "integer", "description": "first."}, "b": {"type": "integer", "description": "second."}}}


# ----------------------------------------------------------------------------------------- the entry point
def _main(tmp_path, graph, *argv, stdin="", worker=None):
    path = tmp_path / "g.json"
    path.write_text(json.dumps(graph), encoding="utf-8")
    extra = ["--sandbox", worker.socket_path] if worker is not None else []
    out, err = io.StringIO(), io.StringIO()
    rc = cli.main(["run", str(path), *argv, *extra], stdin=io.StringIO(stdin), stdout=out, stderr=err)
    return rc, out.getvalue(), err.getvalue()


DOUBLER = dict(nodes=[code("1", "m1", "def f(x):\n    return 2 * x\n")])


def test_repl_is_upstreams(tmp_path, worker):
    rc, out, err = _main(tmp_path, DOUBLER, stdin="1\nab\nquit\nnot read\n", worker=worker)
    assert rc == 0 and err == ""
    assert out == 'query(enter "quit" to exit): answer: 11\nquery(enter "quit" to exit): answer: abab\n' \
                  'query(enter "quit" to exit): '


def test_repl_survives_errors_and_ends_on_eof(tmp_path, worker):
    g = dict(nodes=[code("1", "m1", "def f(x):\n    return int(x) * 2\n")])
    rc, out, err = _main(tmp_path, g, stdin="x\n4", worker=worker)
    assert rc == 0
    assert out.count("answer: 8") == 1
    assert "error: node \"1\" (m1) raised ValueError: invalid literal for int() with base 10: 'x'" in err


def test_repl_prints_packages_as_tuples(tmp_path, worker):
    g = dict(nodes=[code("1", "m1", "def f(x):\n    return package(x, 2)\n")])
    _, out, _ = _main(tmp_path, g, stdin="11\nquit\n", worker=worker)
    assert "answer: ('11', 2)" in out


@pytest.mark.parametrize("argv,out", [(["--input", "3"], "6\n"), (["--input", "ab"], '"abab"\n'),
                                      (["--input", "[1]"], "[1, 1]\n"), (["--args", "[3]"], "6\n")])
def test_one_shot_inputs(tmp_path, worker, argv, out):
    rc, got, err = _main(tmp_path, DOUBLER, *argv, worker=worker)
    assert (rc, got) == (0, out), err


@pytest.mark.parametrize("argv,message", [
    (["--input", "1", "--args", "[1]"], "error: --input and --args cannot be used together"),
    (["--args", "5"], "error: --args must be a JSON array of inputs"),
    (["--args", "[1"], "error: --args is not JSON"),
    (["--bogus"], "error: unrecognized arguments: --bogus"),
])
def test_usage_errors_exit_2(tmp_path, argv, message):
    rc, out, err = _main(tmp_path, DOUBLER, *argv)
    assert rc == 2 and out == ""
    assert err.startswith(message) and "\nhint: " in err


def test_run_failure_exits_1_and_validation_exits_2(tmp_path, worker):
    rc, out, err = _main(tmp_path, DOUBLER, "--args", "[1, 2]", worker=worker)
    assert rc == 1 and out == "" and err.startswith('error: node "1" (m1) raised TypeError:')
    bad = dict(nodes=[code("1", "m1", "def f(x) x")], edges=[dict(iid="__start__", oid="9"),
                                                             dict(iid="1", oid="__end__")])
    rc, out, err = _main(tmp_path, bad, "--input", "1")
    assert rc == 2 and out == ""
    assert err.splitlines()[:3] == ["error: syntax error in $.nodes[0].args.code (line 1)", "hint: expected ':'",
                                    'error: $.edges[0].oid refers to id "9", which is not a node']
    assert all(line.startswith("warning: ") for line in err.splitlines()[3:])


def test_dry_run_prints_the_services(tmp_path):
    g = dict(nodes=[dict(id="1", kind="SharedModel", name="s", args=dict(llm="0"))],
             resources=[dict(id="0", kind="LocalLLM", name="m", args=dict(base_model="qwen"))])
    rc, out, _ = _main(tmp_path, g, "--dry-run")
    data = json.loads(out)
    assert rc == 0 and data["ok"] and [s["id"] for s in data["services"]] == ["0", "1"]


def test_trace_prints_node_timings(tmp_path, worker):
    rc, out, err = _main(tmp_path, DOUBLER, "--input", "2", "--trace", worker=worker)
    assert rc == 0 and out == "4\n"
    assert err.startswith('trace: node "1" (m1) Code ') and "ms ok" in err and "trace: run " in err


def test_diverter_dropping_inputs_is_a_warning(worker):
    dv = dict(id="5", kind="Diverter", name="d", args=dict(nodes=[code("1", "a", "def f(x):\n    return -x\n")]))
    loaded = load_graph_strict(dict(nodes=[dv]))
    result = Executor(loaded, sandbox=worker.client()).run_result([1, 2, 3])
    assert result.ok and result.value == -1           # a one-value package reaching __end__ is that value
    assert result.warnings == ['node "5" (d) got 3 input(s) for 1 branch(es): as upstream, only 1 run and the rest '
                               'are dropped']


def test_a_run_time_limit_stops_long_loops(worker):
    loop = dict(id="2", kind="Loop", name="forever", args=dict(
        stop_condition="def s(x):\n    return False\n", nodes=[code("1", "step", "def f(x):\n    return x + 1\n")]))
    loaded = load_graph_strict(dict(nodes=[loop]))
    result = Executor(loaded, sandbox=worker.client()).run_result(0, timeout=1.0)
    assert not result.ok and result.error.reason == "timeout"
    assert "went over its time limit" in str(result.error)


def test_dry_run_masks_secrets(tmp_path):
    g = dict(nodes=[dict(id="1", kind="OnlineLLM", name="chat", args=dict(source="openai", api_key="sk-123"))])
    rc, out, _ = _main(tmp_path, g, "--dry-run")
    assert rc == 0 and "sk-123" not in out and json.loads(out)["services"][0]["args"]["api_key"] == "***"
