"""`lazyllm deploy` end to end on the CPU: real images, real servers, real requests."""

from __future__ import annotations

import json
import math
import os
import queue
import signal
import subprocess
import threading
import time

import docker
import httpx
import pytest

from compose_cli import compose_argv, needs_compose
from e2e_cli import cli_argv, cli_env, deployed, deployment, lazyllm

RELATED = ("A man is eating food.", "A man is eating a piece of bread.")
UNRELATED = "The stock market fell sharply on Monday."


def cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def check_embeddings(endpoint: str, model: str) -> None:
    r = httpx.post(f"{endpoint}/embeddings", json={"model": model, "input": [*RELATED, UNRELATED]}, timeout=60)
    assert r.status_code == 200, r.text
    vectors = [d["embedding"] for d in sorted(r.json()["data"], key=lambda d: d["index"])]
    assert all(len(v) == 384 for v in vectors)
    assert cosine(vectors[0], vectors[1]) > cosine(vectors[0], vectors[2]) + 0.3


def test_embedding_framework_serves_the_packaged_model(embed_server):
    check_embeddings(embed_server.v1, embed_server.model)


def test_infinity_framework_serves_the_packaged_model():
    with deployment("all-MiniLM-L6-v2", "--framework", "infinity", "--name", "lazyllm-test-infinity") as info:
        assert info["service"] == "lazyllm-test-infinity"
        check_embeddings(info["endpoint"], info["model"])


def test_ps_logs_and_stop_manage_the_service(embed_server):
    rows = json.loads(lazyllm("ps", "--json").stdout)
    row = next(r for r in rows if r["name"] == embed_server.service)
    assert row["framework"] == "embedding" and row["urls"]["api"] == embed_server.v1
    logs = lazyllm("logs", embed_server.service, "--tail", "50")
    assert logs.returncode == 0 and "healthz" in logs.stdout


def test_a_broken_model_directory_fails_clearly_and_leaves_nothing(tmp_path):
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text('{"architectures": ["BertModel"], "model_type": "bert"}')
    (broken / "modules.json").write_text("this is not json")
    result = lazyllm("deploy", str(broken), "--framework", "embedding", "--name", "lazyllm-test-broken",
                     "--timeout", "180")
    assert result.returncode == 1
    assert "exited with code" in result.stderr and "last 30 log lines" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("hint: ")
    client = docker.from_env()
    assert not client.containers.list(all=True, filters={"label": "org.lazyllm.service=lazyllm-test-broken"})
    assert not client.networks.list(names=["lazyllm-test-broken-net"])


def test_auto_picks_the_cpu_llm_framework_and_serves_chat_completions(llm_deployment, llm_server):
    rows = json.loads(lazyllm("ps", "--json").stdout)
    assert next(r for r in rows if r["name"] == llm_deployment["service"])["framework"] == "vllm-cpu"
    body = {"model": llm_server.model, "messages": [{"role": "user", "content": "hello"}], "max_tokens": 8,
            "temperature": 0}
    r = httpx.post(f"{llm_server.v1}/chat/completions", json=body, timeout=120)
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] is not None
    chunks = []
    with httpx.stream("POST", f"{llm_server.v1}/chat/completions", json={**body, "stream": True}, timeout=120) as s:
        for line in s.iter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                chunks.append(json.loads(line[6:]))
    assert len(chunks) >= 2 and chunks[0]["object"] == "chat.completion.chunk"


def test_chat_true_serves_the_chat_page(llm_deployment):
    page = httpx.get(llm_deployment["chat"], timeout=30)
    assert page.status_code == 200 and "<html" in page.text.lower()
    info = httpx.get(llm_deployment["chat"].rstrip("/") + "/api/info", timeout=30).json()
    assert info["model"] == llm_deployment["model"]


def test_dry_run_prints_the_exact_engine_calls(tiny_llama):
    result = lazyllm("deploy", str(tiny_llama), "--framework", "vllm-cpu", "--chat=true", "--dry-run")
    assert result.returncode == 0, result.stderr
    runs = [line for line in result.stdout.splitlines() if line.startswith("docker run ")]
    assert len(runs) == 2 and "--cap-drop ALL" in runs[0] and "--security-opt no-new-privileges" in runs[0]
    assert f"{tiny_llama}" in runs[0] and "readonly" in runs[0]
    assert "--publish 127.0.0.1::8000" in runs[0]


@needs_compose
def test_compose_file_is_valid(tiny_llama, tmp_path):
    path = tmp_path / "compose.yaml"
    result = lazyllm("deploy", str(tiny_llama), "--framework", "vllm-cpu", "--chat=true", "--compose", str(path))
    assert result.returncode == 0, result.stderr[-2000:]
    check = subprocess.run([*compose_argv(), "-f", str(path), "config", "-q"], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr


@pytest.mark.parametrize("argv,needle", [
    (["deploy", "/nonexistent/model/dir"], "does not exist"),
    (["deploy", "some-llm", "--framework", "vllm"], "needs"),
    (["deploy", "all-MiniLM-L6-v2", "--framework", "embedding", "--gpus", "all"], "GPU"),
    (["deploy", "all-MiniLM-L6-v2", "--framework", "embedding", "--no_such_option=1"], "no_such_option"),
])
def test_bad_deploys_are_one_line_errors(argv, needle):
    result = lazyllm(*argv, "--dry-run")
    assert result.returncode in (1, 2)
    assert result.stderr.startswith("error: ") and needle in result.stderr and "\nhint: " in result.stderr
    assert "Traceback" not in result.stderr


def test_a_cross_encoder_is_deployed_as_a_reranker_by_auto(tiny_reranker):
    result = lazyllm("deploy", str(tiny_reranker), "--name", "lazyllm-test-rerank")
    info = deployed(result)
    try:
        assert "embedding; auto: a reranker" in result.stdout and f"{info['endpoint']}/rerank" in result.stdout
        docs = ["Bread is baked in an oven.", "A container runs an image.", "Layers are cached by content."]
        r = httpx.post(f"{info['endpoint']}/rerank", timeout=60, json={
            "model": info["model"], "query": "what runs an image?", "documents": docs, "return_documents": True})
        assert r.status_code == 200, r.text
        results = r.json()["results"]
        assert sorted(x["index"] for x in results) == [0, 1, 2]
        assert [x["relevance_score"] for x in results] == sorted((x["relevance_score"] for x in results), reverse=True)
        assert all(x["document"]["text"] == docs[x["index"]] and 0 <= x["relevance_score"] <= 1 for x in results)
        wrong = httpx.post(f"{info['endpoint']}/embeddings", json={"input": "x"}, timeout=60)
        assert wrong.status_code == 400 and "/v1/rerank" in wrong.json()["error"]["message"]
    finally:
        lazyllm("stop", info["service"])


class Foreground:
    """``lazyllm deploy ... --foreground`` in its own process group, its output read on a thread."""

    def __init__(self, name: str) -> None:
        self.name, self.seen, self.lines = name, "", queue.Queue()
        self.proc = subprocess.Popen(cli_argv("deploy", "all-MiniLM-L6-v2", "--framework", "embedding", "--name", name,
                                              "--foreground"), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, start_new_session=True, env=cli_env())
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def wait_for(self, needle: str, timeout: float = 600) -> str:
        deadline = time.monotonic() + timeout
        while needle not in self.seen:
            try:
                line = self.lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                line = ""
            assert line is not None and time.monotonic() < deadline, f"no {needle!r} in:\n{self.seen[-3000:]}"
            self.seen += line
        return self.seen

    def interrupt(self) -> None:
        os.killpg(self.proc.pid, signal.SIGINT)                 # what Ctrl-C does to the terminal's group

    def finish_cleanly(self) -> None:
        """Exit 0 after "stopped NAME", no traceback or error, no container or network of the service left."""
        self.proc.wait(timeout=60)
        out = self.wait_for(f"stopped {self.name}", timeout=5)
        assert self.proc.returncode == 0 and "Traceback" not in out and "error:" not in out, out[-2000:]
        assert not self.left()

    def left(self) -> list:
        label = f"org.lazyllm.service={self.name}"
        client = docker.from_env()
        return client.containers.list(all=True, filters={"label": label}) + client.networks.list(
            filters={"label": label})


def endpoint_of(text: str) -> str:
    return next(x.split()[1] for x in text.splitlines() if x.startswith("endpoint:"))


def test_foreground_streams_the_servers_logs_and_ctrl_c_removes_everything():
    fg = Foreground("lazyllm-test-fg")
    check_embeddings(endpoint_of(fg.wait_for("endpoint:")), "all-MiniLM-L6-v2")
    fg.wait_for("/v1/embeddings")                               # the server's own access log, streamed
    fg.interrupt()
    fg.finish_cleanly()


def test_foreground_ctrl_c_while_the_summary_prints_still_removes_everything():
    fg = Foreground("lazyllm-test-fg-early")
    fg.wait_for("endpoint:")
    fg.interrupt()                                              # the summary and the log stream are starting
    fg.finish_cleanly()


def test_foreground_ends_when_its_service_is_stopped_elsewhere():
    fg = Foreground("lazyllm-test-fg-stop")
    fg.wait_for("manage:")
    stopped = lazyllm("stop", "lazyllm-test-fg-stop")
    assert stopped.returncode == 0, stopped.stderr
    fg.finish_cleanly()
