"""The controller's logic with an in-memory launcher: statuses from probes, the GPU queue, delete, re-adoption
after a restart, and the SQLite store and tokens under it."""

from __future__ import annotations

import os
import stat
import sys
import threading
from pathlib import Path

import pytest

from lazyllm_images.runtime.controller import launcher as L
from lazyllm_images.runtime.controller import tokens
from lazyllm_images.runtime.controller.core import ApiError, Controller
from lazyllm_images.runtime.controller.gpus import GpuPool, parse_devices
from lazyllm_images.runtime.controller.records import Record
from lazyllm_images.runtime.controller.store import Store

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures"))
from fake_launcher import MemoryLauncher

A, B = "owner-a", "owner-b"


def settle() -> None:
    for t in threading.enumerate():
        if t.name.startswith("launch-"):
            t.join(5)


def make(tmp_path, gpus: int = 2, launcher: MemoryLauncher | None = None, **kw) -> Controller:
    return Controller(Store(tmp_path / "r.db"), launcher or MemoryLauncher(), GpuPool(tuple(range(gpus))), "infer",
                      poll_interval=0.05, ready_interval=0, **kw)


def create(c: Controller, name: str, gpus: int = 1, owner: str = A, model: str = "m") -> Record:
    c.create(owner, name, {"model": model, "framework": "vllm"}, gpus)
    settle()
    return c.get(owner, name)


def set_state(c: Controller, name: str, probe: L.Probe, owner: str = A) -> Record:
    c.launcher.states[c.get(owner, name).uid] = probe
    c.poll_once()
    settle()
    return c.get(owner, name)


def test_created_running_then_ready_from_the_health_probe(tmp_path) -> None:
    c = make(tmp_path)
    record = create(c, "s1")
    assert record.status == "Running" and record.handle and record.devices == [0]
    assert record.facts["deploy_method"] == "Vllm"
    assert set_state(c, "s1", L.Probe(L.READY)).status == "Ready"


def test_each_service_gets_its_own_devices_and_the_queue_waits_in_order(tmp_path) -> None:
    c = make(tmp_path, gpus=3)
    assert create(c, "a", 2).devices == [0, 1]
    b = create(c, "b", 2)
    assert b.status == "Pending" and "waiting for 2 GPUs: 1 of 3 free" in b.reason
    cpu = create(c, "cpu", 0)                        # no GPU: never queued behind GPU requests
    assert cpu.status == "Running" and cpu.devices == []
    d = create(c, "d", 1)                            # fits, but b came first
    assert d.status == "Pending" and "1 request ahead" in d.reason
    c.delete(A, "a")
    settle()
    assert c.get(A, "b").devices == [0, 1] and c.get(A, "b").status == "Running"
    assert c.get(A, "d").devices == [2]


def test_more_gpus_than_the_pool_is_409_and_nothing_is_stored(tmp_path) -> None:
    c = make(tmp_path, gpus=2)
    with pytest.raises(ApiError) as err:
        c.create(A, "big", {"model": "m"}, 3)
    assert err.value.status == 409 and "asks for 3 GPUs and this controller has 2 GPUs" in err.value.message
    with pytest.raises(ApiError) as none:
        make(tmp_path / "x", gpus=0).create(A, "one", {"model": "m"}, 1)
    assert "has no GPU" in none.value.message
    assert c.list(A) == []


def test_a_launcher_refusal_is_its_status_and_nothing_is_stored(tmp_path) -> None:
    c = make(tmp_path)
    with pytest.raises(ApiError) as err:
        c.create(A, "s", {"model": "needs-missing-stack", "framework": "vllm"}, 1)
    assert (err.value.status, err.value.code) == (409, "stack_missing")
    assert c.list(A) == []


def test_duplicates_while_active_and_a_finished_name_given_back(tmp_path) -> None:
    c = make(tmp_path)
    create(c, "s1")
    with pytest.raises(ApiError) as err:
        create(c, "s1")
    assert (err.value.status, err.value.code) == (400, "duplicate")
    create(c, "s1", owner=B)                         # another owner's namespace
    c.delete(A, "s1")
    assert create(c, "s1").status == "Running"       # the Cancelled record gave way


def test_delete_stops_then_forgets(tmp_path) -> None:
    c = make(tmp_path)
    uid = create(c, "s1").uid
    record, removed = c.delete(A, "s1")
    assert (record.status, removed, record.reason) == ("Cancelled", False, "deleted by its owner")
    assert c.launcher.stopped == [uid] and c.get(A, "s1").devices == []
    assert c.get(A, "s1").log_tail == "starting s1"          # kept: /events still answers
    record, removed = c.delete(A, "s1")
    assert removed and record.status == "Cancelled"
    with pytest.raises(ApiError) as err:
        c.get(A, "s1")
    assert err.value.status == 404


def test_another_owner_sees_nothing(tmp_path) -> None:
    c = make(tmp_path)
    create(c, "mine")
    for call in (lambda: c.get(B, "mine"), lambda: c.delete(B, "mine"), lambda: c.logs(B, "mine")):
        with pytest.raises(ApiError) as err:
            call()
        assert err.value.status == 404
    assert c.list(B) == [] and [r.name for r in c.list(A)] == ["mine"]


def test_exits_and_disappearances_are_failed_with_a_reason(tmp_path) -> None:
    c = make(tmp_path, gpus=3)
    create(c, "crash")
    c.launcher.lines[c.get(A, "crash").uid] = ["loading", "RuntimeError: CUDA out of memory", ""]
    crashed = set_state(c, "crash", L.Probe(L.EXITED, exit_code=3))
    assert crashed.status == "Failed" and crashed.devices == []
    assert crashed.reason == "the server exited with code 3; last log line: RuntimeError: CUDA out of memory"
    assert "loading" in crashed.log_tail and crashed.uid in c.launcher.stopped
    create(c, "clean")
    assert set_state(c, "clean", L.Probe(L.EXITED, exit_code=0)).status == "Done"
    create(c, "gone")
    c.launcher.units.pop(c.get(A, "gone").uid)
    gone = c.poll_once() or c.get(A, "gone")
    assert gone.status == "Failed" and "container is gone" in gone.reason


def test_not_healthy_in_time_is_failed_and_a_ready_server_that_stops_answering_is_running(tmp_path) -> None:
    c = make(tmp_path, ready_timeout=0.01, unhealthy_after=2)
    create(c, "slow")
    threading.Event().wait(0.05)
    slow = set_state(c, "slow", L.Probe(L.RUNNING, detail="HTTP 503"))
    assert slow.status == "Failed" and slow.reason.startswith("not healthy within 0s: HTTP 503")
    c.ready_timeout = 60
    create(c, "flaky")
    set_state(c, "flaky", L.Probe(L.READY))
    assert set_state(c, "flaky", L.Probe(L.RUNNING, detail="refused")).status == "Ready"     # one miss
    flaky = set_state(c, "flaky", L.Probe(L.RUNNING, detail="refused"))
    assert flaky.status == "Running" and flaky.reason == "its health check fails: refused"
    assert set_state(c, "flaky", L.Probe(L.READY)).status == "Ready"


def test_a_failed_launch_frees_its_gpus(tmp_path) -> None:
    launcher = MemoryLauncher()
    launcher.fail_launch = "image lazyllm/vllm:abc is not here"
    c = make(tmp_path, gpus=1, launcher=launcher)
    failed = create(c, "s1")
    assert failed.status == "Failed" and failed.reason == "the launch failed: image lazyllm/vllm:abc is not here"
    launcher.fail_launch = None
    assert create(c, "s2").devices == [0]


def test_a_restarted_controller_adopts_what_runs_and_fails_what_is_gone(tmp_path) -> None:
    launcher = MemoryLauncher()
    first = make(tmp_path, gpus=2, launcher=launcher)
    create(first, "kept")
    set_state(first, "kept", L.Probe(L.READY))
    create(first, "removed")
    create(first, "queued", 2)
    half = first.store.get(A, "infer", "kept")
    starting = Record("infer", A, "starting", {"model": "m"}, 0, status="Running")   # died mid-launch
    first.store.insert(starting)
    orphan = {"container": "orphan-uid"}
    launcher.units.pop(first.get(A, "removed").uid)
    launcher.units["orphan-uid"] = orphan
    second = make(tmp_path, gpus=2, launcher=launcher)
    counts = second.adopt()
    settle()
    assert counts == {"adopted": 2, "failed": 1, "requeued": 1, "removed": 1}
    kept = second.get(A, "kept")
    assert (kept.status, kept.handle, kept.devices) == ("Ready", half.handle, half.devices)
    removed = second.get(A, "removed")
    assert removed.status == "Failed" and "gone when the controller restarted" in removed.reason
    assert second.get(A, "queued").status == "Pending"        # kept's device is still held
    assert second.get(A, "starting").status == "Running" and second.get(A, "starting").handle
    assert "orphan-uid" in launcher.stopped


def test_store_survives_reopening_and_keeps_its_instance_id(tmp_path) -> None:
    store = Store(tmp_path / "db" / "r.db")
    instance = store.instance_id()
    store.insert(Record("infer", A, "s", {"model": "m"}, 1, devices=[3], handle={"x": 1}))
    store.close()
    again = Store(tmp_path / "db" / "r.db")
    assert again.instance_id() == instance
    record = again.get(A, "infer", "s")
    assert (record.devices, record.handle, record.status) == ([3], {"x": 1}, "Pending")
    assert stat.S_IMODE(os.stat(tmp_path / "db" / "r.db").st_mode) == 0o600


def test_tokens_generated_hashed_and_per_owner(tmp_path) -> None:
    path = tmp_path / "t" / "tokens"
    ring, generated = tokens.load(path)
    token = path.read_text().strip()
    assert generated and len(token) >= 40 and stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert ring.owner_of(token) and token not in ring.owner_of(token)
    assert ring.owner_of(token + "x") is None and ring.owner_of("") is None and ring.owner_of(None) is None
    assert not tokens.load(path)[1]                              # read back, not regenerated
    path.write_text("# two users\n" + "a" * 20 + "\n\n" + "b" * 20 + "\n")
    two, _ = tokens.load(path)
    assert len(two) == 2 and two.owner_of("a" * 20) != two.owner_of("b" * 20)
    for text, why in (("short\n", "at least 16"), ("a" * 20 + " " + "b" * 20, "no spaces"), ("# none\n", "no token")):
        path.write_text(text)
        with pytest.raises(tokens.TokenError, match=why):
            tokens.load(path)


def test_token_from_headers() -> None:
    assert tokens.from_headers({"token": "t1"}) == "t1"
    assert tokens.from_headers({"authorization": "Bearer t2"}) == "t2"
    assert tokens.from_headers({"authorization": "Basic t3"}) is None


def test_gpu_flag_forms() -> None:
    assert parse_devices("none") == () and parse_devices("0") == ()
    assert parse_devices("4") == (0, 1, 2, 3)
    assert parse_devices("1,3") == (1, 3) and parse_devices("device=2") == (2,)
    for bad in ("1,1", "a", "0,x"):
        with pytest.raises(ValueError):
            parse_devices(bad)


def test_suspend_and_resume_for_jobs(tmp_path) -> None:
    """What the training service reuses: a job ends by its exit code, reports progress, pauses and resumes."""
    c = make(tmp_path, gpus=1, server=False)
    job = create(c, "ft-1")
    first = job.started_at
    c.launcher.states[job.uid] = L.Probe(L.RUNNING, info={"step": 5, "percent": 25.0})
    c.poll_once()
    job = c.get(A, "ft-1")
    assert job.status == "Running" and job.extra == {"step": 5, "percent": 25.0}
    paused = c.suspend(A, "ft-1")
    assert (paused.status, paused.devices, paused.handle) == ("Suspended", [], None)
    assert job.uid in c.launcher.stopped
    other = create(c, "ft-2")                           # the freed GPU goes to the next one
    assert other.devices == [0]
    with pytest.raises(ApiError) as err:
        c.suspend(A, "ft-1")
    assert err.value.code == "not_active"
    assert c.resume(A, "ft-1").status == "Pending"      # queued behind ft-2
    c.delete(A, "ft-2")
    settle()
    resumed = c.get(A, "ft-1")
    assert resumed.status == "Running" and resumed.started_at == first and resumed.launched_at > first
    c.launcher.states[resumed.uid] = L.Probe(L.EXITED, exit_code=0)
    c.poll_once()
    assert c.get(A, "ft-1").status == "Done"
    with pytest.raises(ApiError) as err:
        c.resume(A, "ft-1")
    assert err.value.message == "ft-1 is not suspended (current status: Done)"


def test_a_probe_that_raises_skips_only_that_record(tmp_path) -> None:
    c = make(tmp_path)
    create(c, "a")
    create(c, "b")
    c.launcher.states[c.get(A, "b").uid] = L.Probe(L.READY)
    broken = c.get(A, "a").uid
    real = c.launcher.probe
    c.launcher.probe = lambda h: (_ for _ in ()).throw(OSError("engine hiccup")) if h["container"] == broken \
        else real(h)
    c.poll_once()
    assert c.get(A, "a").status == "Running" and c.get(A, "b").status == "Ready"
