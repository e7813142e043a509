"""Upstream's clients, their exact requests: LazyLLM's ``test_infer_server`` (reference §2.3: POST, poll GET until
Ready, build the client from ``deploy_method`` and ``endpoint``, call it, DELETE) and LazyCraft's calls (the list
as a dict, the class name sent back as ``framework``), with ``requests`` as they use it."""

from __future__ import annotations

import sys
import time
import uuid
from pathlib import Path

import pytest
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures"))
from infer_harness import ALICE, InferController, make_model

LAZYLLM_DEPLOY_CLASSES = ("Vllm", "LMDeploy", "Lightllm", "Infinity", "Mindie")   # getattr(lazyllm.deploy, ...)


@pytest.fixture(scope="module")
def ctl(tmp_path_factory):
    c = InferController(tmp_path_factory.mktemp("upstream"), "--gpus", "1")
    make_model(c.models, "internlm2-chat-7b")
    c.start()
    yield c
    c.close()


def client_call(deploy_method: str, url: str, prompt: str) -> str:
    """What ``TrainableModule(m).deploy_method(getattr(lazyllm.deploy, deploy_method), url=url)(prompt)`` sends:
    a URL ending in /v1/ goes to the OpenAI client, ``POST <url>chat/completions`` with model "lazyllm"."""
    assert deploy_method in LAZYLLM_DEPLOY_CLASSES and url.endswith("/v1/")
    resp = requests.post(f"{url}chat/completions", json={"model": "lazyllm", "stream": False,
                                                         "messages": [{"role": "user", "content": prompt}]})
    assert resp.status_code == 200, resp.text
    return resp.json()["choices"][0]["message"]["content"]


def test_upstream_test_infer_server(ctl) -> None:
    token = ALICE
    service_name = f"test_engine_infer_{uuid.uuid4().hex}"
    data = dict(service_name=service_name, model_name="internlm2-chat-7b", framework="auto", num_gpus=1)
    response = requests.post(f"{ctl.base}/v1/inference_services", json=data, headers={"token": token})
    assert response.status_code == 200 and response.json()["lwsName"] == service_name
    headers = {"token": token}
    for _ in range(300):
        response = requests.get(f"{ctl.base}/v1/inference_services/{service_name}", headers=headers)
        assert response.status_code == 200
        status = response.json()["status"]
        if status == "Ready":
            break
        if status in ("Invalid", "Cancelled", "Failed"):
            raise RuntimeError(f"deploy failed: {response.json()}")
        time.sleep(0.1)
    record = response.json()
    assert status == "Ready"
    assert client_call(record["deploy_method"], record["endpoint"], "你好") == "echo: 你好"
    response = requests.delete(f"{ctl.base}/v1/inference_services/{service_name}", headers=headers)
    assert response.status_code == 200 and response.json()["status"] == "Cancelled"


def test_lazycraft_style_calls(ctl) -> None:
    headers = {"token": ALICE}
    base = f"{ctl.base}/v1/inference_services"
    body = {"service_name": "craft-svc", "model_name": "internlm2-chat-7b", "framework": "Vllm", "num_gpus": "1"}
    assert requests.post(base, json=body, headers=headers).status_code == 200
    listing = requests.get(base, headers=headers).json()
    assert isinstance(listing, dict) and listing["craft-svc"]["lwsName"] == "craft-svc"
    assert listing["craft-svc"]["status"] in ("Pending", "Running", "Ready")
    assert set(listing["craft-svc"]) >= {"status", "service_name", "model_name", "created_at", "started_at",
                                         "log_path", "cost", "endpoint", "hyperparameters", "deploy_method"}
    duplicate = requests.post(base, json=body, headers=headers)
    assert duplicate.status_code == 400 and "already exists" in duplicate.json()["detail"]
    unknown = requests.get(f"{base}/nobody", headers=headers)
    assert unknown.status_code == 404 and unknown.json()["detail"]
    assert requests.get(base, headers={"token": "default_token"}).status_code == 401   # upstream's default: no
    assert requests.delete(f"{base}/craft-svc", headers=headers).json()["status"] == "Cancelled"
