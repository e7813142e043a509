"""The trainer's progress file (runtime.trainer.progress, fed by its TrainerCallback), the checkpoints a resume may
use, how a run's failure is typed, and what the controller reads back from a job's volume (tar archives, the log
followed, the typed exit reason). No torch here: the callback's logic is the Progress object's."""

from __future__ import annotations

import io
import json
import tarfile
from types import SimpleNamespace

import pytest

from lazyllm_images.runtime.train import job_launcher as J
from lazyllm_images.runtime.train import volumes as V
from lazyllm_images.runtime.trainer import progress as P
from lazyllm_images.runtime.trainer import train as T


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_progress_rises_with_steps_and_logs(tmp_path) -> None:
    clock = Clock()
    path = tmp_path / "progress.json"
    p = P.Progress(path, clock)
    assert json.loads(path.read_text())["phase"] == "starting"
    p.begin(0, 40, 2.0)
    p.logged(1, 0.05, {"loss": "6.02", "learning_rate": 0.005, "grad_norm": 1.2})   # transformers 5: strings
    clock.now += 2
    p.stepped(10, 0.5)
    seen = json.loads(path.read_text())
    assert (seen["phase"], seen["step"], seen["max_steps"], seen["percent"]) == ("training", 10, 40, 25.0)
    assert seen["loss"] == 6.02 and seen["learning_rate"] == 0.005 and seen["losses"] == [[1, 6.02]]
    p.stepped(11, 0.55)                                     # within a second of the last write: not yet on disk
    assert json.loads(path.read_text())["step"] == 10
    p.logged(20, 1.0, {"loss": 5.1, "eval_loss": float("nan")})     # a NaN is not kept
    p.saved(20, str(tmp_path / "checkpoint-20"))
    seen = json.loads(path.read_text())
    assert seen["percent"] == 50.0 and seen["eval_loss"] is None and seen["losses"] == [[1, 6.02], [20, 5.1]]
    assert [c["step"] for c in seen["checkpoints"]] == [20] and seen["checkpoints"][0]["loss"] == 5.1


def test_a_resumed_run_goes_on_from_the_file(tmp_path) -> None:
    path = tmp_path / "progress.json"
    first = P.Progress(path)
    first.begin(0, 100, 1.0)
    for step, loss in ((10, 6.0), (20, 5.5), (30, 5.2)):
        first.logged(step, step / 100, {"loss": loss})
    first.saved(30, str(tmp_path / "checkpoint-30"))
    first.phase("paused")
    again = P.Progress(path)                               # the next run: the step and history stay
    assert (again.data["phase"], again.data["step"], again.data["runs"]) == ("starting", 30, 1)
    again.begin(30, 100, 1.0)
    again.logged(20, 0.2, {"loss": 5.4})                   # a step logged again replaces what followed it
    assert again.data["losses"] == [[10, 6.0], [20, 5.4]] and again.data["runs"] == 2
    assert [c["step"] for c in again.data["checkpoints"]] == [30]


def test_the_history_is_bounded(tmp_path) -> None:
    p = P.Progress(tmp_path / "p.json")
    p.begin(0, 10_000, 1.0)
    for step in range(1, 2001):
        p.logged(step, 0.0, {"loss": 1.0 / step})
    assert len(p.data["losses"]) <= P.HISTORY and p.data["losses"][-1][0] == 2000


def test_checkpoints_a_deleted_one_is_forgotten(tmp_path) -> None:
    p = P.Progress(tmp_path / "p.json")
    for step in (10, 20):
        (tmp_path / f"checkpoint-{step}").mkdir()
        p.saved(step, str(tmp_path / f"checkpoint-{step}"))
    (tmp_path / "checkpoint-10").rmdir()                   # the save limit removed it
    p.forget_missing()
    assert [c["step"] for c in p.data["checkpoints"]] == [20]


def test_only_complete_checkpoints_are_resumed_from(tmp_path) -> None:
    for step, files in ((10, ("adapter_config.json", "trainer_state.json")), (20, ("adapter_config.json",)),
                        (5, ("adapter_config.json", "trainer_state.json")), (30, ("config.json", "trainer_state.json"))):
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        for name in files:
            (folder / name).write_text("{}")
    (tmp_path / "checkpoint-x").mkdir()
    assert [f.name for f in T.complete_checkpoints(tmp_path, full=False)] == ["checkpoint-5", "checkpoint-10"]
    assert [f.name for f in T.complete_checkpoints(tmp_path, full=True)] == ["checkpoint-30"]


def test_failures_are_typed() -> None:
    from lazyllm_images.runtime.trainer.data import DatasetError
    oom = type("OutOfMemoryError", (RuntimeError,), {})
    assert T._classify(oom("CUDA out of memory")).code == "out_of_memory"
    assert T._classify(MemoryError()).exit_code == T.EXIT_OOM
    bad = T._classify(DatasetError("row 3: x", 3))
    assert (bad.code, bad.exit_code, bad.extra) == ("bad_dataset_row", T.EXIT_DATA, {"row": 3})
    other = T._classify(ValueError("boom"))
    assert (other.code, other.message, other.exit_code) == ("trainer_error", "ValueError: boom", T.EXIT_FAILED)


def test_cpu_settings_turn_half_precision_off(monkeypatch) -> None:
    import sys
    fake_torch = SimpleNamespace(cuda=SimpleNamespace(is_available=lambda: False))
    monkeypatch.setitem(sys.modules, "torch", fake_torch)
    from lazyllm_images.runtime.trainer.config import normalize
    args, _, _ = normalize({"fp16": True, "learning_rate": 1e-4, "max_steps": 5, "save_steps": 0})
    settings = T._settings(args, __import__("pathlib").Path("/w"), has_eval=False)
    assert settings["use_cpu"] and not settings["fp16"] and not settings["bf16"]
    assert settings["save_strategy"] == "no" and settings["eval_strategy"] == "no" and settings["report_to"] == "none"
    assert settings["max_length"] == 1024 and settings["dataloader_num_workers"] == 0


# ---------------------------------------------------------------------- the controller's side of the volume

def test_tar_round_trip_owned_by_the_containers_user() -> None:
    data = V.tar_of({"job.json": b"{}", "data/train.jsonl": b"row\n"})
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert set(members) == {"data", "job.json", "data/train.jsonl"} and members["data"].isdir()
    assert {m.uid for m in members.values()} == {V.OWNER_UID}
    one = io.BytesIO()
    with tarfile.open(fileobj=one, mode="w") as tar:
        info = tarfile.TarInfo("train.log")
        info.size = 5
        tar.addfile(info, io.BytesIO(b"hello"))
    assert V.untar_one([one.getvalue()[:100], one.getvalue()[100:]]) == b"hello"


@pytest.mark.parametrize("code, state, result, want", [
    (137, {"OOMKilled": True}, None, "out_of_memory"),
    (137, {}, None, "killed"),
    (65, {}, {"status": "failed", "code": "bad_dataset_row", "message": "row 4: x", "row": 4}, "bad_dataset_row"),
    (1, {}, {"status": "failed", "code": "trainer_error", "message": "ValueError: x"}, "trainer_error"),
    (2, {}, None, "trainer_exit"),
])
def test_exit_reasons(code, state, result, want) -> None:
    error = J.exit_error(code, state, result)
    assert error["code"] == want and error["message"]
    if result and "row" in result:
        assert error["row"] == 4


class FakeContainer:
    """A job container whose train.log grows and which stops after some reads."""

    def __init__(self, chunks: list[bytes], running_reads: int) -> None:
        self.chunks, self.running_reads, self.reads = chunks, running_reads, 0

    @property
    def attrs(self) -> dict:
        return {"State": {"Status": "running" if self.reads < self.running_reads else "exited"}}

    def get_archive(self, path: str):
        data = b"".join(self.chunks[:self.reads + 1])
        self.reads += 1
        out = io.BytesIO()
        with tarfile.open(fileobj=out, mode="w") as tar:
            info = tarfile.TarInfo(path.rsplit("/", 1)[1])
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        return [out.getvalue()], {}


def test_the_log_is_followed_line_by_line_until_the_job_stops() -> None:
    container = FakeContainer([b"one\ntw", b"o\nthree\n", b"four (no newline yet", b")\nfive"], running_reads=3)
    launcher = SimpleNamespace(_container=lambda name: container)
    lines = list(J.LogLines(launcher, "job", follow=True, tail=None, interval=0.001))
    assert lines == ["one", "two", "three", "four (no newline yet)", "five"]


def test_the_log_without_follow_is_what_is_there() -> None:
    container = FakeContainer([b"a\nb\nc\nd"], running_reads=5)
    launcher = SimpleNamespace(_container=lambda name: container)
    assert list(J.LogLines(launcher, "job", follow=False, tail=2)) == ["c", "d"]
    gone = SimpleNamespace(_container=lambda name: None)
    assert list(J.LogLines(gone, "job", follow=True, tail=None)) == []
