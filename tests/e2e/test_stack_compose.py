"""``--target compose`` + ``lazyllm stack up|ps|down``: whole services as compose files, run on the engine under
test with the compose client it has (v2 on the current engine, Debian's v1.29 on 20.10).

Real: the images are built by the CLI on the offline base, compose starts the containers, requests go to the
published ports; secrets travel as compose secrets (files beside the stack file), never in the file or the
containers' config.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import stat
from pathlib import Path

import docker
import httpx
import pytest
import yaml

from compose_cli import needs_compose
from e2e_cli import REPO, lazyllm

pytestmark = [pytest.mark.e2e, needs_compose]

DOCS = REPO / "examples" / "docs"
FIXTURE = (REPO / "tests" / "fixtures" / "mcp_fixture_server.py").read_text()


def leftovers(service: str) -> list[str]:
    client = docker.from_env()
    found = [c.name for c in client.containers.list(all=True, filters={"label": f"org.lazyllm.service={service}"})]
    found += [n.name for n in client.networks.list(filters={"label": f"org.lazyllm.service={service}"})]
    return found


def up(path: Path) -> dict[str, str]:
    result = lazyllm("stack", "up", str(path), "--timeout", "600")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    urls = {}
    for line in result.stdout.splitlines():
        key, _, value = line.strip().partition(": ")
        if value.startswith("http"):
            urls[key] = value
    return urls


def test_rag_service_as_a_compose_stack_is_answered_and_leaves_nothing(tmp_path):
    out = tmp_path / "rag.yaml"
    rendered = lazyllm("run", "rag", "--documents", str(DOCS), "--name", "lazyllm-test-crag", "--auth-token",
                       "tok-compose-1", "--target", "compose", "-o", str(out))
    assert rendered.returncode == 0, rendered.stderr[-4000:]
    text = out.read_text()
    assert "tok-compose-1" not in text                       # the token is a compose secret, not in the file
    doc = yaml.safe_load(text)
    assert set(doc["services"]) == {"lazyllm-test-crag-embed", "lazyllm-test-crag-rag", "lazyllm-test-crag-chat"}
    assert doc["services"]["lazyllm-test-crag-rag"]["depends_on"]["lazyllm-test-crag-embed"] == {
        "condition": "service_healthy"}
    folder = tmp_path / "rag.secrets"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    try:
        urls = up(out)
        assert set(urls) == {"embed", "rag", "chat"}
        ask = {"model": "lazyllm-rag", "messages": [{"role": "user", "content": "how are layers tagged?"}]}
        refused = httpx.post(urls["rag"] + "/chat/completions", json=ask, timeout=60)
        assert refused.status_code == 401                    # the token reached the service through its secret
        answer = httpx.post(urls["rag"] + "/chat/completions", json=ask, timeout=60,
                            headers={"Authorization": "Bearer tok-compose-1"})
        assert answer.status_code == 200, answer.text
        assert "layers.md" in answer.json()["choices"][0]["message"]["content"]
        rag = docker.from_env().containers.get("lazyllm-test-crag-rag")
        assert "tok-compose-1" not in json.dumps(rag.attrs)
        listed = lazyllm("stack", "ps", str(out), "--json")
        assert listed.returncode == 0 and json.loads(listed.stdout)[0]["name"] == "lazyllm-test-crag"
        seen = json.loads(lazyllm("ps", "--json").stdout)        # 'lazyllm ps' sees the stack like a launch
        assert any(r["name"] == "lazyllm-test-crag" and r["urls"]["rag"] == urls["rag"] for r in seen)
    finally:
        down = lazyllm("stack", "down", str(out))
    assert down.returncode == 0, down.stderr[-2000:]
    assert leftovers("lazyllm-test-crag") == []


def test_mcp_bridge_as_a_compose_stack_gets_its_env_through_the_secret(tmp_path):
    from mcp import ClientSession
    from mcp.client.sse import sse_client
    out = tmp_path / "mcp.yaml"
    secret = "s3cr3t-" + os.urandom(6).hex()
    rendered = lazyllm("deploy", "mcp_server", "--name", "lazyllm-test-cmcp", "-e", "FIXTURE_SECRET", secret,
                       "--compose", str(out), "python3", "--", "-c", FIXTURE)
    assert rendered.returncode == 0, rendered.stderr[-4000:]
    assert secret not in out.read_text()

    async def env_tool(url: str) -> str:
        async with sse_client(url) as streams:
            async with ClientSession(streams[0], streams[1]) as session:
                await session.initialize()
                return (await session.call_tool("env", {"name": "FIXTURE_SECRET"})).content[0].text

    try:
        urls = up(out)
        assert asyncio.run(env_tool(urls["sse"])) == secret
        container = docker.from_env().containers.get("lazyllm-test-cmcp-mcp")
        assert secret not in json.dumps(container.attrs)
    finally:
        lazyllm("stack", "down", str(out))
    assert leftovers("lazyllm-test-cmcp") == []


def test_an_edited_invalid_stack_file_is_one_error(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("services:\n  x:\n    image: 1\n    portz: [1]\nx-lazyllm: {target: compose, service: lazyllm-t-bad}\n")
    result = lazyllm("stack", "up", str(bad))
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("error: ") and "not a valid compose file" in lines[0]
    assert lines[1].startswith("hint: ") and len(lines) == 2
    foreign = tmp_path / "foreign.yaml"
    foreign.write_text("services:\n  x:\n    image: busybox\n")
    result = lazyllm("stack", "up", str(foreign))
    assert result.returncode == 2 and "not written by lazyllm" in result.stderr


def test_vllm_cpu_with_its_chat_page_as_a_compose_stack(tmp_path, tiny_llama):
    """``deploy MODEL --framework vllm-cpu --chat=true --compose F``: the model folder bound read-only, the chat
    page after the server is healthy; a chat completion through the stack's server."""
    out = tmp_path / "llm.yaml"
    rendered = lazyllm("deploy", str(tiny_llama), "--framework", "vllm-cpu", "--chat=true", "--name",
                       "lazyllm-test-cllm", "--compose", str(out))
    assert rendered.returncode == 0, rendered.stderr[-4000:]
    doc = yaml.safe_load(out.read_text())
    model = doc["services"]["lazyllm-test-cllm-model"]
    assert {"type": "bind", "source": str(tiny_llama), "target": "/model", "read_only": True} in model["volumes"]
    assert doc["services"]["lazyllm-test-cllm-chat"]["depends_on"] == {
        "lazyllm-test-cllm-model": {"condition": "service_healthy"}}
    try:
        urls = up(out)
        assert set(urls) == {"api", "chat"}
        served = httpx.get(urls["api"] + "/models", timeout=30).json()["data"][0]["id"]
        answer = httpx.post(urls["api"] + "/chat/completions", timeout=120, json={
            "model": served, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4})
        assert answer.status_code == 200, answer.text
        assert answer.json()["choices"][0]["message"]["content"] is not None
        assert httpx.get(urls["chat"] + "healthz", timeout=30).status_code == 200
    finally:
        down = lazyllm("stack", "down", str(out))
    assert down.returncode == 0, down.stderr[-2000:]
    assert leftovers("lazyllm-test-cllm") == []


def test_a_graph_with_code_and_an_embedding_as_a_compose_stack(tmp_path):
    """``run G.json --target compose``: the graph runner, its Code sandbox (no network, a socket folder beside the
    file shared by the two) and the embedding server, served; the graph answers through the stack."""
    graph = {"nodes": [
        {"id": "e", "kind": "LocalEmbedding", "name": "vec", "args": {"base_model": "all-MiniLM-L6-v2"}},
        {"id": "n", "kind": "Code", "name": "dims",
         "args": {"code": "def dims(v):\n    return [len(v), round(sum(x * x for x in v), 3)]\n"}}],
        "edges": [{"iid": "__start__", "oid": "e"}, {"iid": "e", "oid": "n"}, {"iid": "n", "oid": "__end__"}]}
    path = tmp_path / "g.json"
    path.write_text(json.dumps(graph))
    out = tmp_path / "g.yaml"
    rendered = lazyllm("run", str(path), "--name", "lazyllm-test-cgraph", "--target", "compose", "-o", str(out))
    assert rendered.returncode == 0, rendered.stderr[-4000:]
    doc = yaml.safe_load(out.read_text())
    assert doc["services"]["lazyllm-test-cgraph-sandbox"]["network_mode"] == "none"
    assert stat.S_IMODE((tmp_path / "g.files" / "sandbox").stat().st_mode) == 0o777
    try:
        urls = up(out)
        done = httpx.post(urls["graph"] + "/run", json={"args": ["lazyllm builds layered images"]}, timeout=120)
        assert done.status_code == 200 and done.json() == {"ok": True, "result": [384, 1.0]}, done.text
    finally:
        lazyllm("stack", "down", str(out))
    assert leftovers("lazyllm-test-cgraph") == []
    inputs = lazyllm("run", str(path), "--input", "some input", "--target", "compose", "-o", str(out))
    assert inputs.returncode == 2 and "writes the graph as a service" in inputs.stderr


def test_the_inference_controller_as_a_compose_stack(tmp_path):
    """``run infer_service --target compose``: the controller (it drives this engine through its socket) as a
    one-unit stack; its token is the one the CLI keeps per state volume (printed where), reaching the controller as
    a compose secret; the API answers with it and refuses without."""
    out = tmp_path / "infer.yaml"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    rendered = lazyllm("run", "infer_service", "--name", "lazyllm-test-cinfer", "--port", str(port),
                       "--target", "compose", "-o", str(out))
    assert rendered.returncode == 0, rendered.stderr[-4000:]
    where = next(line.split("kept in ", 1)[1].split(" ")[0] for line in rendered.stdout.splitlines()
                 if "token: kept in" in line)
    token = Path(where).read_text().strip()
    assert token and token not in out.read_text()
    try:
        urls = up(out)
        api = urls["api"]
        assert httpx.get(api, timeout=30).status_code == 401
        listed = httpx.get(api, timeout=30, headers={"token": token})
        assert listed.status_code == 200, listed.text
    finally:
        lazyllm("stack", "down", str(out))
        docker.from_env().volumes.get("lazyllm-test-cinfer-state").remove(force=True)
        Path(where).unlink(missing_ok=True)
    assert leftovers("lazyllm-test-cinfer") == []
