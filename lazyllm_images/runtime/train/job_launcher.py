"""The real launcher of training jobs: each job is a container from the finetune stack (``lazyllm install
finetune``) running ``python -m lazyllm_images.runtime.trainer``, described as a ``launch.unit.Unit`` with
``job=True`` and started like every unit (``backends.docker.up``: hardened defaults, GPU flags, labels).

- its volume (``<unit>-work``, labelled with the controller and the record) holds the job's files at
  ``volumes.WORK``: the rows and job.json (written before each launch), checkpoints, progress, result and log;
- the base model is a read-only bind mount of its folder on the engine's host; the job has no network;
- the GPUs are the devices the controller assigned (none: the CPU);
- a probe reads progress.json (the trainer's own state) and, once the job has ended, result.json and the
  engine's OOM flag for a typed reason; a pause is SIGTERM with a grace period (the trainer saves a checkpoint
  and exits), then the unit goes;
- an export is a one-shot container of the same stack that merges the adapter into the base and writes the model
  folder under a model root.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from ..controller import launcher as L
from ..controller.containers import ContainerLauncher
from ..controller.launcher import Refused
from ..controller.modelpaths import Root
from ..controller.records import Record
from . import volumes as V

log = logging.getLogger("lazyllm.train")
MODEL_TARGET = "/model"
OUT_TARGET = "/out"
LOG_FILE, PROGRESS_FILE, RESULT_FILE = "train.log", "progress.json", "result.json"
TRAINER = ("python3", "-m", "lazyllm_images.runtime.trainer")
JOB_ENV = {"HOME": "/tmp", "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1", "HF_HOME": "/tmp/hf"}
EXITS = {  # the trainer's exit codes (trainer/train.py) and the kernel's, in words
    64: ("bad_training_args", "the trainer refused its training_args"),
    65: ("bad_dataset", "the trainer could not read its dataset"),
    66: ("model_not_loadable", "the trainer could not load the model"),
    70: ("out_of_memory", "out of memory"),
    75: ("stopped", "stopped from outside the controller (its checkpoint is kept)"),
    137: ("killed", "killed (SIGKILL): out of memory, or stopped from outside the controller"),
    143: ("stopped", "stopped (SIGTERM) from outside the controller"),
}


def exit_error(code: int, state: dict, result: dict | None) -> dict:
    """The typed reason of a job that ended with CODE: {"code", "message"(, "row")}."""
    if state.get("OOMKilled"):
        return {"code": "out_of_memory", "message": "out of memory: the kernel killed the trainer (lower "
                                                    "per_device_train_batch_size or cutoff_len, or give it more memory)"}
    if result and result.get("status") == "failed" and result.get("code"):
        found = {"code": result["code"], "message": str(result.get("message") or result["code"])}
        if result.get("row") is not None:
            found["row"] = result["row"]
        return found
    known = EXITS.get(code)
    if known:
        return {"code": known[0], "message": known[1]}
    return {"code": "trainer_exit", "message": f"the trainer exited with code {code}"}


def gpu_request(devices: list[int]):
    from ...launch.spec import GpuRequest
    return GpuRequest("devices", devices=tuple(str(d) for d in devices)) if devices else GpuRequest.none()


class LogLines:
    """The job's train.log (in its volume, through its container) as lines: the last TAIL; with FOLLOW, new ones
    (polled) until the container stops. ``close()`` from another thread ends a follow."""

    def __init__(self, launcher: TrainLauncher, container: str, follow: bool, tail: int | None,
                 interval: float = 1.0) -> None:
        self.launcher, self.name, self.follow, self.tail, self.interval = launcher, container, follow, tail, interval
        self.closed = threading.Event()

    def _read(self) -> tuple[bytes, bool]:
        container = self.launcher._container(self.name)
        if container is None:
            return b"", False
        running = (container.attrs.get("State") or {}).get("Status") == "running"
        return V.get(container, LOG_FILE) or b"", running

    def __iter__(self) -> Iterator[str]:
        data, running = self._read()
        following = self.follow and running
        offset = data.rfind(b"\n") + 1 if following else len(data)      # a line being written waits
        lines = data[:offset].decode(errors="replace").splitlines()
        yield from (lines[-self.tail:] if self.tail else lines)
        while following and not self.closed.wait(self.interval):
            data, following = self._read()
            if len(data) < offset:                          # a new file: read it from its start
                offset = 0
            end = data.rfind(b"\n", offset) + 1 if following else len(data)
            if end > offset:
                yield from data[offset:end].decode(errors="replace").splitlines()
                offset = end

    def close(self) -> None:
        self.closed.set()


class TrainLauncher(ContainerLauncher):
    def __init__(self, instance: str, *, image: str | None = None, build=None, grace_s: float = 120.0) -> None:
        super().__init__(instance)
        self._image, self.build, self.grace_s = image, build, grace_s

    # ------------------------------------------------------------------ what to start
    @property
    def image(self) -> str:
        """The finetune stack's image, as the CLI plans it (the CLI builds it before the controller starts)."""
        if self._image is None:
            from ...host import host_facts
            from ...requests import BuildOptions
            from ...resolve import resolve
            self._image = resolve(("finetune",), self.build or BuildOptions(), host=host_facts()).top.ref
        return self._image

    @staticmethod
    def volume(record: Record) -> str:
        return f"{record.unit_name}-work"

    @staticmethod
    def job_files(record: Record) -> dict[str, bytes]:
        spec = record.spec
        job = {"stage": spec["stage"], "training_args": spec["training_args"], "name": spec["name"],
               "model": spec["model"], "job_id": record.name, "resume_from": spec.get("resume_from")}
        files = {"job.json": json.dumps(job, indent=1).encode()}
        folder = Path(spec["data_dir"])
        for name in ("train.jsonl", "eval.jsonl"):
            if (folder / name).is_file():
                files[f"data/{name}"] = (folder / name).read_bytes()
        return files

    def describe(self, record: Record):
        """(the one-unit Service, the handle) of RECORD's run."""
        from ...launch.spec import LaunchSpec, MountSpec, scratch_mount, service_labels
        from ...launch.unit import Service, Unit
        from ...services.start import gpu_mode
        handle = {"service": record.unit_name, "container": record.unit_name, "volume": self.volume(record)}
        spec = LaunchSpec(
            name=record.unit_name, image=self.image, role="training",
            command=(*TRAINER, "--work", V.WORK, "--model", MODEL_TARGET), env=dict(JOB_ENV),
            mounts=(MountSpec("volume", V.WORK, self.volume(record), purpose="train-work"),
                    MountSpec("bind", MODEL_TARGET, record.spec["model_host"], read_only=True, purpose="model"),
                    scratch_mount()),
            gpus=gpu_request(record.devices), network="none", read_only_rootfs=True,
            labels=service_labels(record.unit_name, "training", framework="trainer", model=record.spec["model"],
                                  gpus=",".join(map(str, record.devices)) or None))
        spec = replace(spec, labels={**spec.labels, **self.labels(record, handle)})
        unit = Unit(spec, job=True)
        return Service(record.unit_name, (unit,), gpu_mode([unit])), handle

    # ------------------------------------------------------------------ the protocol
    def prepare(self, record: Record) -> dict:
        from ... import engine
        from ...errors import EngineError
        try:
            present = engine.image_exists(self.image)
        except EngineError as exc:
            raise Refused(f"the engine does not answer: {exc.message}", "engine_unavailable", 503) from None
        if not present:
            raise Refused(f"the finetune stack is not built on this host (image {self.image}); the operator builds "
                          "it with 'lazyllm install finetune' (run training_service builds it at start)",
                          "stack_missing", 409)
        return {"image": self.image, "device": "gpu" if record.gpus else "cpu"}

    def launch(self, record: Record) -> dict:
        V.ensure(self.volume(record), self.instance, record.uid)
        with V.Helper(self.image, self.volume(record)) as helper:       # the rows and job.json, every launch
            V.put(helper, self.job_files(record))
        service, handle = self.describe(record)
        self.start_service(service)
        return handle

    def probe(self, handle: dict) -> L.Probe:
        seen = self.observe(handle)
        if seen is None:
            return L.Probe(L.MISSING, detail="no such container")
        container, state, status = seen
        info = {}
        progress = V.get_json(container, PROGRESS_FILE)
        if progress is not None:
            info["progress"] = progress
        if status in ("exited", "dead"):
            code = int(state.get("ExitCode") or 0)
            error = None if code == 0 else exit_error(code, state, V.get_json(container, RESULT_FILE))
            info["error"] = error
            return L.Probe(L.EXITED, exit_code=code, detail=error["message"] if error else "", info=info)
        return L.Probe(L.RUNNING if status == "running" else L.STARTING, detail=status, info=info)

    def halt(self, handle: dict) -> None:
        """SIGTERM, then up to the grace period for the trainer to save its checkpoint and exit."""
        container = self._container(handle["container"])
        if container is not None and container.status == "running":
            container.stop(timeout=int(self.grace_s))

    def logs(self, handle: dict, follow: bool = False, tail: int | None = None) -> L.LogStream:
        return LogLines(self, handle["container"], follow, tail)

    # ------------------------------------------------------------------ the volume, without a job container
    def read(self, record: Record, name: str) -> bytes | None:
        """NAME from RECORD's volume (its container's when there is one)."""
        container = self._container(record.handle["container"]) if record.handle else None
        if container is not None:
            return V.get(container, name)
        if not V.exists(self.volume(record)):          # never made (a helper would make it, unlabelled)
            return None
        with V.Helper(self.image, self.volume(record), read_only=True) as helper:
            return V.get(helper, name)

    def discard(self, record: Record) -> None:
        V.remove(self.volume(record))

    def export(self, record: Record, root: Root, name: str, timeout: float = 1800.0):
        """The merged model written to ROOT/NAME by a one-shot container; the JobResult."""
        from ...backends.jobs import run_job
        from ...launch.spec import LaunchSpec, MountSpec, scratch_mount, service_labels
        from ...launch.unit import Unit
        unit_name = f"{record.unit_name}-export"
        spec = LaunchSpec(
            name=unit_name, image=self.image, role="training",
            command=(*TRAINER, "export", "--work", V.WORK, "--model", MODEL_TARGET, "--out", f"{OUT_TARGET}/{name}"),
            env=dict(JOB_ENV),
            mounts=(MountSpec("volume", V.WORK, self.volume(record), read_only=True, purpose="train-work"),
                    MountSpec("bind", MODEL_TARGET, record.spec["model_host"], read_only=True, purpose="model"),
                    MountSpec("bind", OUT_TARGET, root.host, purpose="export"), scratch_mount()),
            network="none", read_only_rootfs=True,
            labels=service_labels(unit_name, "training", framework="trainer-export", model=record.spec["model"]))
        return run_job(Unit(spec, job=True), timeout)
