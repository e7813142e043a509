"""The training controller as a real process (``train_controller_fake.py``: the real controller, HTTP server and
SQLite, with the tests' process launcher: each job a ``fake_trainer.py`` process writing progress with the real
Progress class). A job's whole life over HTTP, pause and resume from the checkpoint, a killed job, and the
controller killed during a job then started again on the same records. No engine."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures"))
from infer_harness import free_port, wait_for

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tests" / "fixtures" / "train_controller_fake.py"
URL = "/v1/finetuneTasks"
ALICE = "alice-0c1e2d5f7a9b8c6d4e3f"
ROWS = [{"instruction": f"Add {a} and {b}.", "output": f"{a + b}"} for a in range(4) for b in range(4)]


class TrainController:
    def __init__(self, tmp: Path) -> None:
        self.tmp, self.port = tmp, free_port()
        self.models, self.data, self.state = tmp / "models", tmp / "data", tmp / "state"
        (self.models / "tiny").mkdir(parents=True)
        (self.models / "tiny" / "config.json").write_text("{}")
        self.data.mkdir()
        (self.data / "add.json").write_text(json.dumps(ROWS))
        (tmp / "tokens").write_text(ALICE + "\n")
        self.proc: subprocess.Popen | None = None
        self.runs = 0

    def start(self) -> TrainController:
        self.runs += 1
        out = open(self.tmp / f"controller-{self.runs}.log", "wb")
        argv = [sys.executable, str(SCRIPT), "--fake-state", str(self.state), "--db", str(self.tmp / "db" / "t.db"),
                "--token-file", str(self.tmp / "tokens"), "--port", str(self.port), "--models", str(self.models),
                "--data", str(self.data), "--poll-interval", "0.1"]
        self.proc = subprocess.Popen(argv, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        out.close()
        assert wait_for(self._healthy, 30), self.output()
        return self

    def _healthy(self) -> bool:
        assert self.proc.poll() is None, self.output()
        try:
            return httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def output(self) -> str:
        return "".join(p.read_text(errors="replace") for p in sorted(self.tmp.glob("controller-*.log")))

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=f"http://127.0.0.1:{self.port}", headers={"token": ALICE}, timeout=30)

    def trainers(self) -> list[int]:
        return [json.loads(p.read_text())["handle"]["pid"] for p in self.state.glob("*.json")]


@pytest.fixture
def ctl(tmp_path):
    c = TrainController(tmp_path).start()
    yield c
    c.kill()
    for pid in c.trainers():
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass


def create(api: httpx.Client, steps: int) -> str:
    made = api.post(URL, json={"name": "add", "model": "tiny", "training_args": {"max_steps": steps},
                               "training_dataset": [{"dataset_download_uri": "add.json", "format": 1,
                                                     "dataset_id": "a"}]})
    assert made.status_code == 200, made.text
    return made.json()["finetune_task_id"]


def until(api: httpx.Client, job: str, check, timeout: float = 30) -> dict:
    seen: dict = {}

    def look() -> bool:
        seen.update(api.get(f"{URL}/{job}").json())
        return check(seen)
    assert wait_for(look, timeout, 0.05), seen
    return seen


def test_pause_resume_then_done(ctl: TrainController) -> None:
    with ctl.client() as api:
        job = create(api, 60)
        until(api, job, lambda r: (r["progress"]["step"] or 0) >= 15)
        paused = api.post(f"{URL}/{job}:pause", json={"name": "add"}).json()
        step = paused["checkpoint_step"]
        assert paused["status"] == "Suspended" and step >= 15, paused
        time.sleep(0.3)
        assert api.get(f"{URL}/{job}").json()["progress"]["step"] == step          # nothing runs while paused
        assert api.post(f"{URL}/{job}:resume").json() == {"status": "Running", "resume_type": "resume"}
        done = until(api, job, lambda r: r["status"] == "Done")
        assert done["progress"]["resumed_from"] == step and done["progress"]["step"] == 60
        steps = [s for s, _ in api.get(f"{URL}/{job}/runningMetrics").json()["losses"]]
        assert steps == list(range(1, 61))                                          # one history, no step twice
        log = api.get(f"{URL}/{job}/log").text
        assert f"paused at step {step}" in log and "resuming from" in log and "done after 60 steps" in log


def test_a_killed_trainer_is_failed_with_a_reason(ctl: TrainController) -> None:
    with ctl.client() as api:
        job = create(api, 1000)
        until(api, job, lambda r: (r["progress"]["step"] or 0) >= 3)
        (pid,) = ctl.trainers()
        os.killpg(pid, signal.SIGKILL)
        failed = until(api, job, lambda r: r["status"] == "Failed")
    assert failed["error"]["code"] == "killed" and "137" in failed["reason"]


def test_a_killed_controller_finds_its_running_job_again(ctl: TrainController) -> None:
    with ctl.client() as api:
        job = create(api, 80)
        until(api, job, lambda r: (r["progress"]["step"] or 0) >= 5)
    ctl.kill()                                                  # no clean shutdown: the trainer goes on
    time.sleep(0.5)
    ctl.start()
    with ctl.client() as api:
        assert api.get(f"{URL}/{job}").json()["status"] == "Running"
        with api.stream("GET", f"{URL}/{job}/log", params={"follow": "true"}) as stream:
            lines = [json.loads(line[6:])["result"]["log_data"] for line in stream.iter_lines()
                     if line.startswith("data: {")]
        assert lines[0] == "starting" and lines[-1] == "done after 80 steps"
        done = until(api, job, lambda r: r["status"] == "Done")
    assert done["progress"]["step"] == 80 and done["progress"]["resumed_from"] is None
