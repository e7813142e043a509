"""`lazyllm deploy` end to end on the CPU: real images, real servers, real requests."""

from __future__ import annotations

import json
import math
import subprocess

import docker
import httpx
import pytest

from e2e_cli import deployment, lazyllm

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


def test_compose_file_is_valid(tiny_llama, tmp_path):
    path = tmp_path / "compose.yaml"
    result = lazyllm("deploy", str(tiny_llama), "--framework", "vllm-cpu", "--chat=true", "--compose", str(path))
    assert result.returncode == 0, result.stderr[-2000:]
    check = subprocess.run(["docker-compose", "-f", str(path), "config", "-q"], capture_output=True, text=True)
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


def test_foreground_streams_logs_and_ctrl_c_removes_everything():
    import os
    import signal
    import sys
    import time
    proc = subprocess.Popen([sys.executable, "-m", "lazyllm_images", "deploy", "all-MiniLM-L6-v2", "--framework",
                             "embedding", "--name", "lazyllm-test-fg", "--foreground"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True,
                            env={**os.environ, "LAZYLLM_BASE": "offline"})
    seen, deadline = "", time.monotonic() + 600
    while time.monotonic() < deadline and "endpoint:" not in seen:
        line = proc.stdout.readline()
        assert line or proc.poll() is None, seen[-3000:]
        seen += line
    endpoint = next(x.split()[1] for x in seen.splitlines() if x.startswith("endpoint:"))
    check_embeddings(endpoint, "all-MiniLM-L6-v2")
    seen += proc.stdout.readline()                   # the server's own log lines follow
    os.killpg(proc.pid, signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert "stopped lazyllm-test-fg" in out
    assert not docker.from_env().containers.list(all=True, filters={"label": "org.lazyllm.service=lazyllm-test-fg"})
