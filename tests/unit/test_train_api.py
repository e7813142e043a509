"""The training API in-process (an in-memory launcher): upstream's routes and shapes, the idempotency key, the
statuses through pause, resume, cancel and delete, logs as SSE, export, tokens, and every refusal's status."""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from lazyllm_images.runtime.controller import launcher as L
from lazyllm_images.runtime.controller.core import Controller
from lazyllm_images.runtime.controller.gpus import GpuPool
from lazyllm_images.runtime.controller.modelpaths import ModelRoots, Root
from lazyllm_images.runtime.controller.store import Store
from lazyllm_images.runtime.controller.tokens import TokenRing
from lazyllm_images.runtime.train.app import create_app
from lazyllm_images.runtime.train.datasets import DataStore
from lazyllm_images.runtime.train.service import TrainService

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures"))
from fake_train_launcher import MemoryTrainLauncher

ALICE, BOB = "alice-token-0123456789abcdef", "bob-token-0123456789abcdef"
URL = "/v1/finetuneTasks"
ROWS = [{"instruction": f"Add {a} and {b}.", "input": "", "output": f"The answer is {a + b}."}
        for a in range(5) for b in range(5)]


class Env:
    def __init__(self, tmp: Path, gpus: tuple[int, ...] = ()) -> None:
        models, data = tmp / "models", tmp / "data"
        (models / "tiny").mkdir(parents=True)
        (models / "tiny" / "config.json").write_text("{}")
        (models / "no-config").mkdir()
        data.mkdir()
        (data / "add.json").write_text(json.dumps(ROWS))
        self.models, self.data = models, data
        self.launcher = MemoryTrainLauncher()
        self.controller = Controller(Store(tmp / "r.db"), self.launcher, GpuPool(gpus), "train", server=False,
                                     poll_interval=0.05, cpu_slots=1)
        service = TrainService(self.controller, ModelRoots([Root.parse(str(models))], allow_hub=False),
                               DataStore(tmp / "state", [Root.parse(str(data))]), Root.parse(str(models)),
                               max_body=64 * 1024)
        self.service = service
        self.app = create_app(service, TokenRing([ALICE, BOB]), start_controller=False)

    def call(self, *requests: tuple) -> list[httpx.Response]:
        async def main() -> list[httpx.Response]:
            out = []
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://t") as client:
                for method, path, kwargs in requests:
                    out.append(await client.request(method, path, **kwargs))
                    for t in threading.enumerate():
                        if t.name.startswith("launch-"):
                            t.join(5)
            return out
        return anyio.run(main)

    def one(self, method: str, path: str, token: str | None = ALICE, **kwargs: Any) -> httpx.Response:
        headers = {"token": token} if token else {}
        return self.call((method, path, {"headers": headers, **kwargs}))[0]

    def record(self, job_id: str, owner_token: str = ALICE):
        owner = TokenRing([owner_token]).owner_of(owner_token)
        return self.controller.get(owner, job_id)


def body(**over: Any) -> dict:
    out = {"name": "my_sft_model", "model": "tiny", "stage": "SFT",
           "training_args": {"learning_rate": "1e-4", "max_steps": "100", "ngpus": 1},
           "training_dataset": [{"dataset_download_uri": "add.json", "format": 1, "dataset_id": "add"}]}
    out.update(over)
    return out


@pytest.fixture
def env(tmp_path) -> Env:
    return Env(tmp_path)


def error(resp: httpx.Response, status: int, code: str) -> dict:
    assert resp.status_code == status, resp.text
    found = resp.json()["error"]
    assert found["code"] == code and found["message"] and resp.json()["detail"] == found["message"], resp.text
    return found


def test_create_then_watch_progress_then_done(env) -> None:
    made = env.one("POST", URL, json=body())
    assert made.status_code == 200 and made.json()["status"] == "Running"
    job = made.json()["finetune_task_id"]
    assert job.startswith("ft-") and len(job.split("-")) == 3
    record = env.record(job)
    assert record.gpus == 0 and record.facts["device"] == "cpu"            # a CPU controller trains on the CPU
    env.launcher.set_progress(record, step=40, loss=5.5, checkpoints=(20, 40))
    env.controller.poll_once()
    seen = env.one("GET", f"{URL}/{job}").json()
    assert (seen["status"], seen["progress_percent"], seen["progress"]["step"], seen["progress"]["loss"]) == \
        ("Running", 40.0, 40, 5.5)
    assert seen["checkpoint_step"] == 40 and seen["checkpoint_path"].endswith("checkpoint-40")
    assert seen["base_model"] == "tiny" and seen["stage"] == "sft" and seen["train_rows"] == 25
    assert seen["hyperparameters"]["learning_rate"] == 1e-4 and seen["hyperparameters"]["save_steps"] == 500
    assert seen["model_id"].startswith("my_sft_model_") and seen["log_path"] == f"{URL}/{job}/log"
    assert any("ngpus ignored" in w for w in seen["warnings"])
    env.launcher.states[record.uid] = L.Probe(L.EXITED, exit_code=0, info={"error": None})
    env.controller.poll_once()
    done = env.one("GET", f"{URL}/jobs").json()[job]
    assert done["status"] == "Done" and done["progress_percent"] == 100.0 and done["error"] is None
    assert done["cost"] is not None and done["finished_at"]


def test_the_idempotency_key_answers_the_same_job(env) -> None:
    first, again = env.call(("POST", URL, {"headers": {"token": ALICE}, "params": {"finetune_task_id": "k1"},
                                           "json": body()}),
                            ("POST", URL, {"headers": {"token": ALICE}, "params": {"finetune_task_id": "k1"},
                                           "json": body(name="other")}))
    assert first.json()["finetune_task_id"] == again.json()["finetune_task_id"]
    other_owner = env.one("POST", URL, BOB, params={"finetune_task_id": "k1"}, json=body())
    assert other_owner.json()["finetune_task_id"] != first.json()["finetune_task_id"]
    assert len(env.one("GET", f"{URL}/jobs").json()) == 1


def test_pause_saves_a_checkpoint_and_resume_goes_on(env) -> None:
    job = env.one("POST", URL, json=body()).json()["finetune_task_id"]
    record = env.record(job)
    env.launcher.set_progress(record, step=33, checkpoints=(20,))
    env.controller.poll_once()
    paused = env.one("POST", f"{URL}/{job}:pause", json={"name": "my_sft_model"})
    assert paused.status_code == 200, paused.text
    assert paused.json()["status"] == "Suspended" and paused.json()["checkpoint_step"] == 33
    assert paused.json()["checkpoint_path"].endswith("checkpoint-33") and paused.json()["cost"] >= 0
    assert env.launcher.halted == [record.uid] and record.uid in env.launcher.stopped
    assert env.one("GET", f"{URL}/{job}").json()["progress"]["phase"] == "paused"
    error(env.one("POST", f"{URL}/{job}:pause"), 404, "not_active")
    error(env.one("POST", f"{URL}/{job}:resume", json={"checkpoint_path": "checkpoint-999"}), 400,
          "unknown_checkpoint")
    resumed = env.one("POST", f"{URL}/{job}:resume", json={"name": "x", "checkpoint_path": 20})
    assert resumed.json() == {"status": "Running", "resume_type": "resume"}
    job_file = json.loads(env.launcher.volumes[record.uid]["job.json"])
    assert job_file["resume_from"].endswith("checkpoint-20")
    again = error(env.one("POST", f"{URL}/{job}:resume"), 400, "not_suspended")
    assert again["message"] == "Job is not suspended (current status: Running)"


def test_resume_without_a_checkpoint_restarts(env) -> None:
    job = env.one("POST", URL, json=body()).json()["finetune_task_id"]
    env.one("POST", f"{URL}/{job}:pause")
    assert env.one("POST", f"{URL}/{job}:resume").json()["resume_type"] == "restart"


def test_cpu_jobs_queue_for_a_slot(env) -> None:
    first = env.one("POST", URL, json=body()).json()["finetune_task_id"]
    second = env.one("POST", URL, json=body(name="second"))
    assert second.json()["status"] == "Pending"
    waiting = env.one("GET", f"{URL}/{second.json()['finetune_task_id']}").json()
    assert "waiting for a CPU slot" in waiting["reason"]
    env.one("DELETE", f"{URL}/{first}")
    assert env.one("GET", f"{URL}/{second.json()['finetune_task_id']}").json()["status"] == "Running"


def test_gpu_jobs_take_devices_and_wait_for_them(tmp_path) -> None:
    env = Env(tmp_path, gpus=(0, 1))
    jobs = [env.one("POST", URL, json=body(training_args={"learning_rate": 1e-4, "ngpus": n})).json()
            for n in (2, 1)]
    assert [j["status"] for j in jobs] == ["Running", "Pending"]
    assert env.one("GET", f"{URL}/{jobs[0]['finetune_task_id']}").json()["devices"] == [0, 1]
    error(env.one("POST", URL, json=body(training_args={"ngpus": 3})), 409, "gpus_never_fit")


def test_delete_cancels_a_running_job_then_forgets_it_with_its_files(env) -> None:
    job = env.one("POST", URL, json=body()).json()["finetune_task_id"]
    record = env.record(job)
    rows = Path(record.spec["data_dir"])
    cancelled = env.one("DELETE", f"{URL}/{job}")
    assert cancelled.json() == {"status": "Cancelled", "deleted": False}
    assert env.launcher.halted == [record.uid] and record.uid in env.launcher.volumes      # checkpoint kept
    gone = env.one("DELETE", f"{URL}/{job}")
    assert gone.json() == {"status": "Cancelled", "deleted": True}
    assert record.uid not in env.launcher.volumes and not rows.exists()
    error(env.one("GET", f"{URL}/{job}"), 404, "not_found")


def test_log_is_sse_then_done(env) -> None:
    job = env.one("POST", URL, json=body()).json()["finetune_task_id"]
    error(env.one("GET", f"{URL}/{job}/log", params={"follow": "maybe"}), 400, "bad_query")
    record = env.record(job)
    env.launcher.lines[record.uid] = ["step 1", "", "step 2"]
    text = env.one("GET", f"{URL}/{job}/log").text
    assert text.split("\n\n")[:-1] == ['data: {"result": {"log_data": "step 1"}}',
                                       'data: {"result": {"log_data": "step 2"}}', "data: [DONE]"]
    env.one("POST", f"{URL}/{job}:pause")                         # no container: the volume's file
    text = env.one("GET", f"{URL}/{job}/log").text
    assert '"log_data": "run of ' in text and '"log_data": "paused"' in text and text.endswith("data: [DONE]\n\n")
    env.one("POST", URL, json=body(name="q"))                     # takes the CPU slot
    queued = env.one("POST", URL, json=body(name="r")).json()
    assert queued["status"] == "Pending"
    error(env.one("GET", f"{URL}/{queued['finetune_task_id']}/log"), 404, "log_not_found")


def test_export_writes_the_model_once(env) -> None:
    job = env.one("POST", URL, json=body()).json()["finetune_task_id"]
    export_body = {"name": "x", "model_display_name": "add-tuned", "model_id": "m"}
    error(env.one("POST", f"{URL}/{job}/model:export", json=export_body), 400, "not_finished")
    env.launcher.states[env.record(job).uid] = L.Probe(L.EXITED, exit_code=0)
    env.controller.poll_once()
    error(env.one("POST", f"{URL}/{job}/model:export", json={"model_display_name": "x"}), 422, "invalid_request")
    error(env.one("POST", f"{URL}/{job}/model:export", json={**export_body, "model_display_name": "../up"}), 400,
          "bad_name")
    done = env.one("POST", f"{URL}/{job}/model:export", json=export_body)
    assert done.status_code == 200 and done.json()["fine_tuned_model"] == "add-tuned"
    assert (env.models / "add-tuned" / "config.json").is_file()
    assert env.one("GET", f"{URL}/{job}").json()["fine_tuned_model"] == "add-tuned"
    error(env.one("POST", f"{URL}/{job}/model:export", json=export_body), 409, "target_exists")
    env.launcher.export_code = 1
    failed = error(env.one("POST", f"{URL}/{job}/model:export", json={**export_body, "model_display_name": "b"}),
                   500, "export_failed")
    assert "disk full" in failed["message"]


def test_metrics_carry_the_loss_history(env) -> None:
    job = env.one("POST", URL, json=body()).json()["finetune_task_id"]
    env.launcher.set_progress(env.record(job), step=30, checkpoints=(30,))
    env.controller.poll_once()
    seen = env.one("GET", f"{URL}/{job}/runningMetrics").json()
    assert seen["losses"] == [[10, 5.9], [20, 5.8], [30, 5.7]] and seen["checkpoints"][0]["step"] == 30


def test_tokens(env) -> None:
    job = env.one("POST", URL, json=body()).json()["finetune_task_id"]
    for method, path in (("GET", f"{URL}/jobs"), ("GET", f"{URL}/{job}/log"), ("POST", f"{URL}/{job}:pause"),
                         ("POST", URL)):
        error(env.one(method, path, token=None), 401, "unauthorized")
        error(env.one(method, path, token="not-a-known-token-at-all"), 401, "unauthorized")
    for method, path in (("GET", f"{URL}/{job}"), ("GET", f"{URL}/{job}/log"), ("POST", f"{URL}/{job}:pause"),
                         ("DELETE", f"{URL}/{job}")):
        error(env.one(method, path, token=BOB), 404, "not_found")
    assert env.one("GET", f"{URL}/jobs", token=BOB).json() == {}
    assert env.one("GET", f"{URL}/{job}").json()["status"] == "Running"
    assert env.one("GET", "/healthz", token=None).status_code == 200


@pytest.mark.parametrize("changes, status, code", [
    ({"stage": "ppo"}, 400, "bad_stage"),
    ({"training_dataset": [{"dataset_download_uri": "add.json", "format": 1, "dataset_id": "a"}] * 2}, 400,
     "one_dataset"),
    ({"training_dataset": []}, 400, "one_dataset"),
    ({"model": "no-such-model"}, 404, "model_not_found"),
    ({"model": "/etc"}, 400, "outside_roots"),
    ({"model": "no-config"}, 400, "not_a_model"),
    ({"name": None}, 422, "invalid_request"),
    ({"training_dataset": None}, 422, "invalid_request"),
    ({"training_dataset": [{"dataset_download_uri": "add.json", "format": 1}]}, 422, "invalid_request"),
    ({"training_dataset": [{"dataset_download_uri": "add.json", "format": 9, "dataset_id": "a"}]}, 400,
     "bad_format"),
    ({"training_dataset": [{"dataset_download_uri": "nope.json", "format": 1, "dataset_id": "a"}]}, 404,
     "dataset_not_found"),
    ({"training_dataset": [{"dataset_download_uri": "/etc/passwd", "format": 1, "dataset_id": "a"}]}, 400,
     "outside_roots"),
    ({"training_dataset": [{"dataset_download_uri": "../r.db", "format": 1, "dataset_id": "a"}]}, 400,
     "outside_roots"),
    ({"training_args": {"learning_rate": "fast"}}, 400, "bad_training_args"),
    ({"image": "alpine"}, 400, "field_not_allowed"),
    ({"ref_model": "missing"}, 404, "model_not_found"),
])
def test_bad_requests_start_nothing(env, changes, status, code) -> None:
    error(env.one("POST", URL, json=body(**changes)), status, code)
    assert env.launcher.units == {} and env.one("GET", f"{URL}/jobs").json() == {}
    assert not list((env.data.parent / "state").glob("jobs/*"))


def test_a_bad_row_is_a_400_naming_the_row(env) -> None:
    (env.data / "bad.jsonl").write_text("\n".join(json.dumps(r) for r in ROWS[:3] + [{"instruction": "x"}]) + "\n")
    found = error(env.one("POST", URL, json=body(training_dataset=[{"dataset_download_uri": "bad.jsonl",
                                                                    "format": 1, "dataset_id": "b"}])),
                  400, "bad_dataset_row")
    assert found["row"] == 4 and "row 4: 'output' is missing" in found["message"]
    assert found["dataset"] == "training_dataset" and env.launcher.units == {}


def test_uploads_are_datasets_of_their_owner(env) -> None:
    raw = "\n".join(json.dumps(r) for r in ROWS).encode()
    uploaded = env.one("POST", "/v1/files", files={"file": ("add.jsonl", raw)}, data={"purpose": "fine-tune"})
    meta = uploaded.json()
    assert meta["id"].startswith("file-") and meta["bytes"] == len(raw) and meta["filename"] == "add.jsonl"
    plain = env.one("POST", "/v1/files", params={"filename": "b.jsonl"}, content=raw).json()
    assert plain["bytes"] == len(raw)
    assert [f["id"] for f in env.one("GET", "/v1/files").json()["data"]] == sorted([meta["id"], plain["id"]])
    ref = [{"dataset_download_uri": meta["id"], "format": 0, "dataset_id": "u"}]
    assert env.one("POST", URL, json=body(training_dataset=ref)).status_code == 200
    error(env.one("POST", URL, BOB, json=body(training_dataset=ref)), 404, "dataset_not_found")


def test_a_validation_set_or_a_split(env) -> None:
    val = [{"dataset_download_uri": "add.json", "format": 1, "dataset_id": "v"}]
    job = env.one("POST", URL, json=body(validation_dataset=val)).json()["finetune_task_id"]
    seen = env.one("GET", f"{URL}/{job}").json()
    assert (seen["train_rows"], seen["eval_rows"]) == (25, 25)
    error(env.one("POST", URL, json=body(validation_dataset=val * 2)), 400, "one_dataset")
    split = env.one("POST", URL, json=body(name="s", validate_dataset_split_percent=20)).json()["finetune_task_id"]
    seen = env.one("GET", f"{URL}/{split}").json()
    assert (seen["train_rows"], seen["eval_rows"]) == (20, 5)


def test_a_followed_log_of_a_queued_job_waits_for_its_container(env) -> None:
    from lazyllm_images.runtime.train.service import WhenLaunched
    first = env.one("POST", URL, json=body()).json()["finetune_task_id"]
    queued = env.one("POST", URL, json=body(name="q")).json()["finetune_task_id"]
    owner = TokenRing([ALICE]).owner_of(ALICE)
    stream = env.service.log_lines(owner, queued, follow=True)
    assert isinstance(stream.stream, WhenLaunched)
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.extend(stream), daemon=True)
    reader.start()
    reader.join(0.3)
    assert reader.is_alive() and got == []                       # queued: nothing yet, still following
    env.controller.delete(owner, first)                           # its CPU slot frees: the queued job starts
    for t in threading.enumerate():
        if t.name.startswith("launch-"):
            t.join(5)
    reader.join(5)
    assert not reader.is_alive() and got == [f"starting {queued}"]


# ---------------------------------------------------------------------- the OpenAI-shaped aliases

OPENAI = "/v1/fine_tuning/jobs"


def test_openai_create_list_get_and_pause(env) -> None:
    raw = "\n".join(json.dumps(r) for r in ROWS).encode()
    file_id = env.one("POST", "/v1/files", params={"filename": "a.jsonl"}, content=raw).json()["id"]
    made = env.one("POST", OPENAI, json={"model": "tiny", "training_file": file_id, "suffix": "add",
                                         "method": {"type": "supervised", "supervised": {"hyperparameters": {
                                             "n_epochs": 2, "batch_size": "auto",
                                             "learning_rate_multiplier": 50}}}})
    assert made.status_code == 200, made.text
    job = made.json()
    assert job["object"] == "fine_tuning.job" and job["status"] == "running" and job["training_file"] == file_id
    assert job["hyperparameters"]["n_epochs"] == 2 and job["hyperparameters"]["learning_rate_multiplier"] == 50
    same = env.one("GET", f"{URL}/{job['id']}").json()                      # the same job, upstream's shape
    assert same["hyperparameters"]["learning_rate"] == pytest.approx(5e-3) and same["name"] == "add"
    listed = env.one("GET", OPENAI).json()
    assert listed["object"] == "list" and [j["id"] for j in listed["data"]] == [job["id"]]
    env.launcher.set_progress(env.record(job["id"]), step=20, checkpoints=(10, 20))
    env.controller.poll_once()
    assert env.one("POST", f"{OPENAI}/{job['id']}/pause").json()["status"] == "paused"
    points = env.one("GET", f"{OPENAI}/{job['id']}/checkpoints").json()["data"]
    assert [p["step_number"] for p in points] == [20, 10] and points[0]["fine_tuning_job_id"] == job["id"]
    events = env.one("GET", f"{OPENAI}/{job['id']}/events").json()["data"]
    assert events[0]["type"] == "message" and "paused" in events[0]["message"]
    assert [e["data"]["step"] for e in events[1:]] == [20, 10] and events[1]["type"] == "metrics"
    assert env.one("POST", f"{OPENAI}/{job['id']}/resume").json()["status"] == "running"
    assert env.one("POST", f"{OPENAI}/{job['id']}/cancel").json()["status"] == "cancelled"
    error(env.one("POST", f"{OPENAI}/{job['id']}/cancel"), 400, "not_active")


def test_openai_bad_creates(env) -> None:
    error(env.one("POST", OPENAI, json={"model": "tiny"}), 422, "invalid_request")
    error(env.one("POST", OPENAI, json={"model": "tiny", "training_file": "add.json",
                                        "method": {"type": "reinforcement"}}), 400, "bad_method")
    error(env.one("POST", OPENAI, json={"model": "nope", "training_file": "add.json"}), 404, "model_not_found")
