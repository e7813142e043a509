"""The graph runner's HTTP API (runtime/graph/serve.py) and its services (remote.py), without an engine: the API
over a real executor, the services against a small local stand-in for an OpenAI-compatible server and the RAG
service's query route (what is checked is our side: the requests sent and the shapes returned)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from starlette.testclient import TestClient

from lazyllm_images.runtime.graph.executor import Executor
from lazyllm_images.runtime.graph.load import load_graph
from lazyllm_images.runtime.graph.remote import RemoteServices
from lazyllm_images.runtime.graph.serve import Runs, make_app

JOIN = {"nodes": [{"id": "1", "kind": "JoinFormatter", "name": "join", "args": {"type": "sum"}}],
        "edges": [{"iid": "__start__", "oid": "1"}, {"iid": "1", "oid": "__end__"}]}


def client(graph: dict, services=None, token: str | None = None) -> TestClient:
    loaded, report = load_graph(graph)
    assert loaded is not None, report.errors
    runs = Runs(lambda on_event: Executor(loaded, services=services, on_event=on_event))
    return TestClient(make_app(runs, {"graph": True}, token))


def test_run_answers_json_and_streams_node_events():
    c = client(JOIN)
    assert c.post("/v1/run", json={"args": [1, 2, 3]}).json() == {"ok": True, "result": 6}
    assert c.post("/generate", content=json.dumps([1, 2])).json() == {"ok": True, "result": 3}
    with c.stream("POST", "/v1/run", json={"args": [1, 2], "stream": True}) as r:
        lines = [line for line in r.iter_lines() if line.startswith("data: ")]
    events = [json.loads(line[6:]) for line in lines[:-1]]
    assert lines[-1] == "data: [DONE]"
    assert [e["type"] for e in events] == ["run_started", "node_started", "node_finished", "run_finished"]
    assert events[-1]["result"] == 3 and events[2]["elapsed_ms"] >= 0


@pytest.mark.parametrize("body, status", [({"input": 1, "args": [1]}, 400), ({"args": 3}, 400), ([1], 400)])
def test_bad_run_bodies(body, status):
    assert client(JOIN).post("/v1/run", json=body).status_code == status


def test_a_failing_run_is_422_naming_the_node():
    graph = {"nodes": [{"id": "1", "kind": "Formatter", "name": "pick", "args": {"ftype": "json", "rule": "[a]"}}],
             "edges": []}
    r = client(graph).post("/v1/run", json={"input": 5})
    assert r.status_code == 422 and 'node "1" (pick)' in r.json()["error"]


def test_the_token_guards_every_route_but_health():
    c = client(JOIN, token="s3cret-token")
    assert c.post("/v1/run", json={"args": [1]}).status_code == 401
    assert c.get("/healthz").status_code == 200
    ok = c.post("/v1/run", json={"args": [1, 1]}, headers={"Authorization": "Bearer s3cret-token"})
    assert ok.json() == {"ok": True, "result": 2}


class StandIn(BaseHTTPRequestHandler):
    """OpenAI's chat and embeddings routes and the RAG service's query route, recording what it was sent."""

    seen: list = []

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        StandIn.seen.append((self.path, body, self.headers.get("Authorization")))
        if self.path.endswith("/chat/completions"):
            out = {"choices": [{"message": self.chat(body)}]}
        elif self.path.endswith("/rerank"):         # longer documents first
            order = sorted(range(len(body["documents"])), key=lambda i: -len(body["documents"][i]))
            out = {"results": [{"index": i, "relevance_score": 1.0 / (r + 1)} for r, i in enumerate(order)]}
        elif self.path.endswith("/embeddings"):
            out = {"data": [{"index": i, "embedding": [float(len(t)), 1.0]} for i, t in enumerate(body["input"])]}
        else:
            out = {"answer": None, "sources": [{"path": "a.md", "text": "alpha", "score": 0.9},
                                               {"path": "b.md", "text": "beta", "score": 0.5}][:body["top_k"]]}
        data = json.dumps(out).encode()
        self.reply(data)

    def reply(self, data: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


    @staticmethod
    def chat(body: dict) -> dict:
        """A model that calls the first tool once with x=20, then answers with the tool's result; extracts
        parameters as JSON; otherwise echoes."""
        msgs = body["messages"]
        if body.get("tools") and not any(m["role"] == "tool" for m in msgs):
            name = body["tools"][0]["function"]["name"]
            return {"content": None, "tool_calls": [{"id": "c1", "type": "function",
                                                     "function": {"name": name, "arguments": '{"x": 20}'}}]}
        if body.get("tools"):
            return {"content": f"final: {[m for m in msgs if m['role'] == 'tool'][-1]['content']}"}
        if "Extract these parameters" in (msgs[0].get("content") or ""):
            return {"content": 'Sure: {"city": "Paris", "days": 3}'}
        return {"content": f"echo {msgs[-1]['content']}"}


@pytest.fixture()
def stand_in():
    server = ThreadingHTTPServer(("127.0.0.1", 0), StandIn)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    StandIn.seen = []
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_model_embedding_and_retrieval_nodes_on_remote_services(stand_in, tmp_path):
    key = tmp_path / "key"
    key.write_text("sk-test\n")
    graph = {"nodes": [
        {"id": "r", "kind": "Retriever", "name": "find",
         "args": {"doc": "d", "group_name": "CoarseChunk", "topk": 2, "output_format": "content", "join": "|"}},
        {"id": "m", "kind": "OnlineLLM", "name": "ask", "args": {"source": "openai", "prompt": "Be brief."}},
        {"id": "e", "kind": "OnlineEmbedding", "name": "vec", "args": {"source": "openai"}}],
        "edges": [{"iid": "__start__", "oid": "r"}, {"iid": "r", "oid": "m"}, {"iid": "m", "oid": "e"},
                  {"iid": "e", "oid": "__end__"}],
        "resources": [{"id": "d", "kind": "Document", "name": "docs", "args": {"dataset_path": "/docs"}}]}
    services = RemoteServices({
        "models": {"m": {"kind": "openai", "url": f"{stand_in}/v1", "model": "gpt", "key_file": str(key)},
                   "e": {"kind": "openai", "url": f"{stand_in}/v1", "model": "emb"}},
        "documents": {"d": {"url": f"{stand_in}/v1"}}})
    result = client(graph, services).post("/v1/run", json={"input": "q"}).json()
    assert result == {"ok": True, "result": [float(len("echo alpha|beta")), 1.0]}
    paths = [(path, auth) for path, _, auth in StandIn.seen]
    assert paths == [("/v1/query", None), ("/v1/chat/completions", "Bearer sk-test"), ("/v1/embeddings", None)]
    chat = StandIn.seen[1][1]
    assert chat["model"] == "gpt" and chat["messages"][0] == {"role": "system", "content": "Be brief."}


def test_a_model_node_without_a_server_fails_clearly():
    graph = {"nodes": [{"id": "m", "kind": "LocalLLM", "name": "llm", "args": {"base_model": "x"}}], "edges": []}
    r = client(graph, RemoteServices({})).post("/v1/run", json={"input": "q"})
    assert r.status_code == 422 and "no model server was started" in r.json()["error"]


def test_function_call_runs_the_tools_the_model_calls(stand_in):
    """FunctionCall: the model's tool call runs the Code tool (in the sandbox), its result goes back, the model's
    final text is the answer."""
    from lazyllm_images.runtime.graph.sandbox import LocalWorker
    tool = "def add_one(x: int):\n    \"\"\"Add one to x.\n\n    Args:\n        x (int): the number.\n    \"\"\"\n    return x + 1\n"
    graph = {"nodes": [{"id": "f", "kind": "FunctionCall", "name": "agent", "args": {"base_model": "m", "tools": ["t"]}}],
             "edges": [],
             "resources": [{"id": "m", "kind": "OnlineLLM", "name": "llm", "args": {"source": "openai"}},
                           {"id": "t", "kind": "Code", "name": "add_one", "args": {"code": tool}}]}
    loaded, report = load_graph(graph)
    assert loaded is not None, report.errors
    services = RemoteServices({"models": {"m": {"kind": "openai", "url": f"{stand_in}/v1", "model": "gpt"}}})
    with LocalWorker() as worker:
        result = Executor(loaded, sandbox=worker.client(), services=services).run_result("what is 20 + 1?")
    assert result.ok and result.value == "final: 21", result.error
    first = StandIn.seen[0][1]
    assert first["tools"][0]["function"]["name"] == "add_one"


def test_parameter_extractor_and_reranker(stand_in):
    graph = {"nodes": [
        {"id": "p", "kind": "ParameterExtractor", "name": "params",
         "args": {"base_model": "m", "param": ["city", "days"], "type": ["str", "int"],
                  "description": ["the city", "how many days"], "require": [True, True]}}], "edges": [],
        "resources": [{"id": "m", "kind": "OnlineLLM", "name": "llm", "args": {"source": "openai"}}]}
    services = RemoteServices({"models": {"m": {"kind": "openai", "url": f"{stand_in}/v1", "model": "gpt"}}})
    assert client(graph, services).post("/v1/run", json={"input": "3 days in Paris"}).json() == \
        {"ok": True, "result": ["Paris", 3]}
    rerank = {"nodes": [{"id": "r", "kind": "Reranker", "name": "order",
                         "args": {"arguments": {"model": "ce", "topk": 2}, "output_format": "content"}}],
              "edges": []}
    services = RemoteServices({"models": {"r": {"kind": "openai", "url": f"{stand_in}/v1", "model": "ce"}}})
    answer = client(rerank, services).post("/v1/run", json={"args": [["a", "ccc", "bb"], "q"]}).json()
    assert answer == {"ok": True, "result": ["ccc", "bb"]}
