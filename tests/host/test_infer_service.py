"""The inference controller as a real process, each "model" a real HTTP server process (the tests' launcher):
Ready from health, the endpoint answering, events followed as SSE, delete, crashes, the GPU queue, bad input and
tokens."""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures"))
from infer_harness import ALICE, BOB, URL, InferController, alive, make_model, wait_for, wait_status


@pytest.fixture(scope="module")
def ctl(tmp_path_factory):
    c = InferController(tmp_path_factory.mktemp("infer"), "--gpus", "2")
    for name in ("tiny", "crashy", "g1", "g2", "g3"):
        make_model(c.models, name, **({"exit_after": 1.0, "exit_code": 3} if name == "crashy" else {}))
    c.start()
    yield c
    c.close()


def follow(client: httpx.Client, name: str, out: list[str]) -> threading.Thread:
    def run() -> None:
        with client.stream("GET", f"{URL}/{name}/events", params={"follow": "true"}) as resp:
            assert resp.headers["content-type"].startswith("text/event-stream")
            for line in resp.iter_lines():
                if line.startswith("data: "):
                    out.append(line[6:])
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_create_ready_call_follow_events_delete(ctl) -> None:
    with ctl.client() as c:
        made = c.post(URL, json={"service_name": "chat", "model_name": "tiny", "framework": "vllm-cpu",
                                 "num_gpus": 1})
        assert made.status_code == 200 and made.json()["lwsName"] == "chat"
        record = wait_status(c, "chat", ("Ready",))
        assert record["endpoint"].startswith("http://127.0.0.1:") and record["endpoint"].endswith("/v1/")
        assert record["deploy_method"] == "Vllm" and record["num_gpus"] == 0      # a CPU framework holds no GPU
        answer = httpx.post(record["endpoint"] + "chat/completions", timeout=10, json={
            "model": "lazyllm", "messages": [{"role": "user", "content": "hello"}]})
        assert answer.json()["choices"][0]["message"]["content"] == "echo: hello"
        (pid,) = [v["handle"]["pid"] for v in ctl.labels().values() if v["handle"]["endpoint"] == record["endpoint"]]
        lines: list[str] = []
        thread = follow(ctl.client(), "chat", lines)
        assert wait_for(lambda: any("Application startup complete" in x for x in lines), 10)
        httpx.get(record["endpoint"].replace("/v1/", "/v1/models"))
        assert wait_for(lambda: any("GET /v1/models" in x for x in lines), 10)    # new lines arrive as they come
        deleted = c.delete(f"{URL}/chat")
        assert deleted.json() == {"status": "Cancelled", "deleted": False}
        thread.join(10)
        assert not thread.is_alive() and lines[-1] == "[DONE]"                    # the stream ends with the server
        assert json.loads(lines[0])["result"]["log_data"].startswith("fake model server")
        assert not alive(pid) and all(v["handle"]["pid"] != pid for v in ctl.labels().values())
        kept = c.get(f"{URL}/chat/events").json()["log"]
        assert "Application startup complete" in kept
        assert c.get(f"{URL}/chat").json()["status"] == "Cancelled"
        assert c.delete(f"{URL}/chat").json()["deleted"] is True
        assert c.get(f"{URL}/chat").status_code == 404


def test_a_crash_is_failed_with_its_last_log_line(ctl) -> None:
    with ctl.client() as c:
        assert c.post(URL, json={"service_name": "crash", "model_name": "crashy", "framework": "vllm-cpu"}).is_success
        record = wait_status(c, "crash", ("Failed",))
        assert record["reason"].startswith("the server exited with code 3")
        assert "fatal: the fake model" in record["reason"]
        assert "fatal: the fake model" in c.get(f"{URL}/crash/events").json()["log"]
        events = c.get(f"{URL}/crash/events", params={"follow": "true"}).text
        assert events.rstrip().endswith("data: [DONE]") and "fatal: the fake model" in events
        assert c.delete(f"{URL}/crash").json() == {"status": "Failed", "deleted": True}


def test_gpus_are_given_out_once_and_requests_wait_their_turn(ctl) -> None:
    with ctl.client() as c:
        too_big = c.post(URL, json={"service_name": "big", "model_name": "g1", "framework": "vllm", "num_gpus": 3})
        assert too_big.status_code == 409 and too_big.json()["error"]["code"] == "gpus_never_fit"
        for name in ("g1", "g2", "g3"):
            assert c.post(URL, json={"service_name": name, "model_name": name, "framework": "vllm",
                                     "num_gpus": 1}).is_success
        one, two = wait_status(c, "g1", ("Ready",)), wait_status(c, "g2", ("Ready",))
        assert sorted(one["hyperparameters"]["devices"] + two["hyperparameters"]["devices"]) == [0, 1]
        waiting = c.get(f"{URL}/g3").json()
        assert waiting["status"] == "Pending" and waiting["reason"].startswith("waiting for 1 GPU: 0 of 2 free")
        assert waiting["endpoint"] == "unknown"
        c.delete(f"{URL}/g1")
        three = wait_status(c, "g3", ("Ready",))
        assert three["hyperparameters"]["devices"] == one["hyperparameters"]["devices"]
        models = c.get("/v1/models").json()["data"]
        assert sorted(m["id"] for m in models) == ["g2", "g3"]
        for name in ("g1", "g2", "g3"):
            c.delete(f"{URL}/{name}")


def test_bad_input_leaves_nothing_running(ctl) -> None:
    before = set(ctl.labels())
    base = {"service_name": "bad", "model_name": "tiny", "framework": "vllm-cpu", "num_gpus": 0}
    cases = [({k: v for k, v in base.items() if k != "service_name"}, 400, "missing_field"),
             ({**base, "framework": "ollama"}, 400, "unknown_framework"),
             ({**base, "model_name": "../../../etc"}, 400, "outside_roots"),
             ({**base, "model_name": str(ctl.tmp / "tokens")}, 400, "outside_roots"),
             ({**base, "model_name": "missing-folder_"}, 400, "model_not_found"),
             ({**base, "image": "ubuntu:22.04"}, 400, "field_not_allowed"),
             ({**base, "volumes": {"/": {"bind": "/host"}}}, 400, "field_not_allowed"),
             ({**base, "framework": "vllm", "num_gpus": 8}, 409, "gpus_never_fit")]
    with ctl.client() as c:
        for body, status, code in cases:
            resp = c.post(URL, json=body)
            assert (resp.status_code, resp.json()["error"]["code"]) == (status, code), body
        malformed = c.post(URL, content=b'{"service_name": ', headers={"content-type": "application/json"})
        assert (malformed.status_code, malformed.json()["error"]["code"]) == (400, "invalid_json")
        huge = c.post(URL, content=b'{"service_name": "' + b"x" * 200_000 + b'"}')
        assert (huge.status_code, huge.json()["error"]["code"]) == (413, "body_too_large")
        assert "bad" not in c.get(URL).json()
    assert set(ctl.labels()) == before


def test_tokens_no_token_wrong_token_another_owner(ctl) -> None:
    with ctl.client(ALICE) as alice, ctl.client(BOB) as bob, ctl.client(None) as nobody, \
            ctl.client(ALICE[:-1] + "x") as wrong:
        assert alice.post(URL, json={"service_name": "private", "model_name": "tiny",
                                     "framework": "vllm-cpu"}).is_success
        assert nobody.get(URL).status_code == 401 and nobody.get(f"{URL}/private").status_code == 401
        assert wrong.get(URL).status_code == 401 and wrong.delete(f"{URL}/private").status_code == 401
        for call in (bob.get(f"{URL}/private"), bob.get(f"{URL}/private/events"), bob.delete(f"{URL}/private")):
            assert call.status_code == 404 and call.json()["error"]["code"] == "not_found"
        assert "private" not in bob.get(URL).json()
        assert bob.post(URL, json={"service_name": "private", "model_name": "tiny",
                                   "framework": "vllm-cpu"}).is_success        # names are per owner
        wait_status(alice, "private", ("Ready",))
        alice.delete(f"{URL}/private")
        bob.delete(f"{URL}/private")
    stored = ctl.db.read_bytes() + b"".join(p.read_bytes() for p in ctl.db.parent.glob("*"))
    for token in (ALICE, BOB):
        assert token not in ctl.output() and token.encode() not in stored
        assert all(token not in json.dumps(v) for v in ctl.labels().values())
