"""A controller killed while its models run, then started again on the same records: what still runs is adopted
(still Ready, same endpoint, its GPU still held), what was removed meanwhile is Failed with the reason, what
nobody owns any more is removed."""

from __future__ import annotations

import signal
import sqlite3
import sys
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures"))
from infer_harness import URL, InferController, alive, kill_model, make_model, wait_for, wait_status


def chat(endpoint: str) -> str:
    resp = httpx.post(endpoint + "chat/completions", timeout=10,
                      json={"model": "lazyllm", "messages": [{"role": "user", "content": "still there?"}]})
    return resp.json()["choices"][0]["message"]["content"]


def handle_of(ctl: InferController, endpoint: str) -> dict:
    (handle,) = [v["handle"] for v in ctl.labels().values() if v["handle"]["endpoint"] == endpoint]
    return handle


def test_kill_the_controller_and_start_it_again(tmp_path) -> None:
    ctl = InferController(tmp_path, "--gpus", "1")
    for name in ("kept", "removed", "forgotten"):
        make_model(ctl.models, name)
    try:
        ctl.start()
        with ctl.client() as c:
            for name, framework, gpus in (("kept", "vllm", 1), ("removed", "vllm-cpu", 0),
                                          ("forgotten", "vllm-cpu", 0), ("queued", "vllm", 1)):
                assert c.post(URL, json={"service_name": name, "model_name": "kept" if name == "queued" else name,
                                         "framework": framework, "num_gpus": gpus}).is_success
            kept = wait_status(c, "kept", ("Ready",))
            removed = wait_status(c, "removed", ("Ready",))
            forgotten = wait_status(c, "forgotten", ("Ready",))
            assert c.get(f"{URL}/queued").json()["status"] == "Pending"
        ctl.kill(signal.SIGKILL)                                   # no clean shutdown: nothing stops the models
        assert chat(kept["endpoint"]) == "echo: still there?"
        gone = handle_of(ctl, removed["endpoint"])                 # removed behind the controller's back
        kill_model(gone)
        (ctl.state / f"{gone['container']}.json").unlink()
        orphan = handle_of(ctl, forgotten["endpoint"])             # its record vanished: nobody owns it
        with sqlite3.connect(ctl.db) as db:
            db.execute("DELETE FROM records WHERE name = 'forgotten'")
        ctl.start()
        with ctl.client() as c:
            again = c.get(f"{URL}/kept").json()
            assert (again["status"], again["endpoint"]) == ("Ready", kept["endpoint"])
            assert again["hyperparameters"]["devices"] == kept["hyperparameters"]["devices"] == [0]
            assert chat(again["endpoint"]) == "echo: still there?"
            failed = c.get(f"{URL}/removed").json()
            assert failed["status"] == "Failed" and "gone when the controller restarted" in failed["reason"]
            assert c.get(f"{URL}/forgotten").status_code == 404
            assert wait_for(lambda: not alive(orphan["pid"]), 10)
            assert c.get(f"{URL}/queued").json()["status"] == "Pending"     # the GPU is still kept's
            assert "Application startup complete" in c.get(f"{URL}/kept/events").json()["log"]
            c.delete(f"{URL}/kept")
            assert wait_status(c, "queued", ("Ready",))["hyperparameters"]["devices"] == [0]
            c.delete(f"{URL}/queued")
        assert ctl.labels() == {}
    finally:
        ctl.close()


def test_a_generated_token_persists_beside_the_records(tmp_path) -> None:
    ctl = InferController(tmp_path, tokens=())
    ctl.token_file.unlink(missing_ok=True)
    try:
        ctl.start()
        token = ctl.token_file.read_text().strip()
        assert f"generated into {ctl.token_file}" in ctl.output() and token not in ctl.output()
        make_model(ctl.models, "m")
        with ctl.client(token) as c:
            assert c.post(URL, json={"service_name": "s", "model_name": "m", "framework": "vllm-cpu"}).is_success
        ctl.kill(signal.SIGTERM)
        ctl.start()
        assert "tokens: 1 from" in ctl.output()
        with ctl.client(token) as c:
            assert c.get(f"{URL}/s").json()["status"] in ("Running", "Ready")
            c.delete(f"{URL}/s")
    finally:
        ctl.close()
