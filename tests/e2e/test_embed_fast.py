"""The embedding server's faster CPU modes (``--dtype``), with the real all-MiniLM-L6-v2 weights: the deployed server
(default ``--dtype auto``) answers in the mode it chose and stays within cosine 0.99 of fp32; the bf16 and int8
modes run in its image. No timings are asserted: bench/embed.py holds the figures."""

from __future__ import annotations

import json

import docker
import httpx
import numpy as np
import pytest
from e2e_cli import deployment

pytestmark = pytest.mark.e2e

TEXTS = [
    "How do I rotate the credentials of a service account?",
    "A man is eating a piece of bread.",
    "The with statement wraps the execution of a block with methods defined by a context manager: __enter__ is "
    "called on entry and __exit__ on exit, even when the block raises an exception.",
    "Layered container images let a team rebuild only the part of a model-serving stack that changed, each layer "
    "cached and shared between the images that use them, so a settings change rebuilds one thin layer.",
]

# run inside the server's container: the same texts through the server's own loader in each mode
IN_IMAGE = """
import json, sys
from lazyllm_images.runtime.embed_server import model as M
path, texts = sys.argv[1], json.loads(sys.argv[2])
out = {}
for mode in ("fp32", "bf16", "int8"):
    loaded = M.load(path, "cpu", 32, True, False, "embed", mode)
    out[mode] = {"dtype": loaded.dtype, "vectors": loaded.encode(texts)[0]}
print(json.dumps(out))
"""


def unit(rows: list[list[float]]) -> np.ndarray:
    a = np.array(rows, dtype=np.float64)
    return a / np.linalg.norm(a, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def auto_server():
    """Its own deployment (a name of its own: no clash with the shared ``embed_server`` of another run)."""
    with deployment("all-MiniLM-L6-v2", "--framework", "embedding", "--name", "lazyllm-test-embed-fast",
                    "--pass-unknown", "--dtype=auto") as info:
        yield info


def test_auto_answers_in_its_chosen_mode_within_cosine_099_of_fp32(auto_server):
    v1 = auto_server["endpoint"].rstrip("/").removesuffix("/v1") + "/v1"
    entry = httpx.get(v1 + "/models", timeout=30).json()["data"][0]
    assert entry["dtype"] in ("fp32", "bf16", "int8")
    choice = entry["dtype_choice"]
    assert choice["mode"] == entry["dtype"] and choice["reason"]
    assert any(p["mode"] == "fp32" and p["seconds"] > 0 for p in choice["probes"])
    r = httpx.post(v1 + "/embeddings", json={"model": entry["id"], "input": TEXTS}, timeout=60)
    assert r.status_code == 200, r.text
    served = unit([d["embedding"] for d in sorted(r.json()["data"], key=lambda d: d["index"])])

    container = docker.from_env().containers.get(f"{auto_server['service']}-model")
    argv = container.attrs["Config"]["Cmd"]
    path = argv[argv.index("--model") + 1]
    code, output = container.exec_run(["python3", "-c", IN_IMAGE, path, json.dumps(TEXTS)], demux=True,
                                      environment={"HOME": "/tmp"})
    assert code == 0, (output[1] or b"").decode()[-3000:]
    modes = json.loads(output[0].decode().strip().splitlines()[-1])
    assert {m: modes[m]["dtype"] for m in modes} == {"fp32": "fp32", "bf16": "bf16", "int8": "int8"}
    fp32 = unit(modes["fp32"]["vectors"])
    assert (served * fp32).sum(axis=1).min() >= 0.99                    # what auto serves
    assert (unit(modes["bf16"]["vectors"]) * fp32).sum(axis=1).min() >= 0.99
    assert unit(modes["int8"]["vectors"]).shape == fp32.shape            # runs; auto judges its quality
    if entry["dtype"] == "fp32":
        assert (served * fp32).sum(axis=1).min() > 0.9999
