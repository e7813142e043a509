"""The HTTP layer in-process on an empty documents folder (no embedding is ever requested): request validation,
health, models, status, retrieval-only answers."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path


import numpy as np
import pytest
from starlette.testclient import TestClient
from test_rag_generate import scripted

from lazyllm_images.runtime.rag.__main__ import check_args, parse_args
from lazyllm_images.runtime.rag.app import RagService, create_app
from lazyllm_images.runtime.rag.generate import LLMClient
from lazyllm_images.runtime.rag.indexer import Indexer
from lazyllm_images.runtime.rag.retrieve import Retriever
from lazyllm_images.runtime.rag.store import Store
from lazyllm_images.runtime.rag.watch import Watcher


class NoEmbedder:
    model = "none"

    def embed(self, texts: list[str], kind: str = "index") -> np.ndarray:
        raise AssertionError("an empty folder needs no embedding")


@contextlib.contextmanager
def serve(tmp_path: Path, llm: LLMClient | None = None, **app_kw: object) -> Iterator[TestClient]:
    """The service over an empty documents folder (so no embedding is ever requested), first pass done."""
    docs = tmp_path / "docs"
    docs.mkdir(parents=True)
    indexer = Indexer(docs, Store(tmp_path / "index"), NoEmbedder())
    service = RagService(indexer, Watcher(indexer, 3600), Retriever(NoEmbedder()), llm, "lazyllm-rag")
    with TestClient(create_app(service, **app_kw)) as c:  # type: ignore[arg-type]
        assert service.watcher.ready.wait(10)
        yield c


@pytest.fixture()
def client(tmp_path: Path) -> Iterator[TestClient]:
    with serve(tmp_path) as c:
        yield c


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"top_k": 3}', b'{"query": ""}', b'{"query": 5}',
                                  b'{"query": "q", "top_k": 0}', b'{"query": "q", "top_k": "3"}',
                                  b'{"query": "q", "top_k": true}', b'{"query": "q", "top_k": 500}'])
def test_bad_query_bodies_are_400(client: TestClient, body: bytes) -> None:
    r = client.post("/v1/query", content=body)
    assert r.status_code == 400 and r.json()["error"]["message"]


@pytest.mark.parametrize("body", [{}, {"messages": []}, {"messages": "hi"}, {"messages": [{"content": "x"}]},
                                  {"messages": [{"role": "assistant", "content": "x"}]},
                                  {"messages": [{"role": "user", "content": "x"}], "stream": "yes"},
                                  {"messages": [{"role": "user", "content": 3}]}])
def test_bad_chat_bodies_are_400(client: TestClient, body: dict) -> None:
    r = client.post("/v1/chat/completions", json=body)
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"


def test_empty_folder_answers_with_no_sources(client: TestClient) -> None:
    assert client.get("/healthz").status_code == 200
    assert client.post("/v1/query", json={"query": "anything"}).json() == {"answer": None, "sources": []}
    r = client.post("/v1/chat/completions", json={"messages": [
        {"role": "user", "content": [{"type": "text", "text": "anything"}]}]})
    body = r.json()
    assert body["sources"] == [] and "retrieval only" in body["choices"][0]["message"]["content"]


def test_stream_ends_with_sources_and_done(client: TestClient) -> None:
    with client.stream("POST", "/v1/chat/completions",
                       json={"stream": True, "messages": [{"role": "user", "content": "q"}]}) as r:
        lines = [line for line in r.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]" and '"sources": []' in lines[-2] and '"finish_reason": "stop"' in lines[-2]


def test_models_and_status(client: TestClient) -> None:
    assert client.get("/v1/models").json()["data"][0]["id"] == "lazyllm-rag"
    status = client.get("/v1/status").json()
    assert status["ready"] and status["mode"] == "retrieval-only" and status["llm_model"] is None
    assert status["files"] == status["chunks"] == 0 and status["indexing"]["percent"] == 100.0
    assert client.post("/v1/reindex").json()["added"] == 0


def test_command_line_checks(tmp_path: Path) -> None:
    base = ["--index", str(tmp_path / "i"), "--embed-url", "http://e", "--embed-model", "m"]
    assert "not found" in check_args(parse_args(["--documents", str(tmp_path / "missing"), *base]))
    docs = ["--documents", str(tmp_path)]
    assert check_args(parse_args([*docs, *base])) is None
    assert "go together" in check_args(parse_args([*docs, *base, "--llm-url", "http://l"]))
    assert "key file" in check_args(parse_args([*docs, *base, "--llm-url", "u", "--llm-model", "m",
                                                "--llm-key-file", str(tmp_path / "nokey")]))


CHAT = {"messages": [{"role": "user", "content": "q"}]}


def test_an_upstream_error_before_any_words_is_a_502_with_its_message(tmp_path: Path) -> None:
    """The RAG service's own SSE parser dropped ``data: {"error": ...}``: the client got an empty answer."""
    failing = b'data: {"error": {"message": "model is overloaded", "type": "server_error"}}\n\n'
    with serve(tmp_path, scripted(failing)) as c:
        r = c.post("/v1/chat/completions", json={**CHAT, "stream": True})
        assert r.status_code == 502 and "model is overloaded" in r.json()["error"]["message"]
    with serve(tmp_path / "again", scripted(b'{"error": {"message": "model is overloaded"}}')) as c:
        for path, body in (("/v1/chat/completions", CHAT), ("/v1/query", {"query": "q"})):
            r = c.post(path, json=body)
            assert r.status_code == 502 and "model is overloaded" in r.json()["error"]["message"], path


def test_an_upstream_error_mid_stream_is_an_error_event(tmp_path: Path) -> None:
    stream = (b'data: {"choices":[{"delta":{"content":"Partial"}}]}\n\n'
              b'event: error\ndata: {"message": "connection reset by GPU"}\n\n')
    with serve(tmp_path, scripted(stream)) as c:
        with c.stream("POST", "/v1/chat/completions", json={**CHAT, "stream": True}) as r:
            events = [line[len("data: "):] for line in r.iter_lines() if line.startswith("data: ")]
    assert r.status_code == 200 and events[-1] == "[DONE]"
    parsed = [json.loads(e) for e in events[:-1]]
    assert parsed[1]["choices"][0]["delta"]["content"] == "Partial"
    assert "connection reset by GPU" in parsed[2]["error"]["message"]
    assert parsed[3]["choices"][0]["finish_reason"] == "error" and parsed[3]["sources"] == []
