"""What the training API does, on the shared controller (``Controller(kind="train", server=False)``): jobs
created from a checked request and checked rows, paused with a checkpoint, resumed from it, cancelled or
forgotten (their volume and rows too), exported as a model folder under a model root. Blocking: the HTTP layer
calls these from worker threads.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import string
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

from ..controller import http
from ..controller.core import ApiError, Controller
from ..controller.launcher import ListStream, LogStream
from ..controller.modelpaths import ModelRoots, Root
from ..controller.records import DONE, LAUNCHED, SUSPENDED, Record
from .datasets import DataStore
from .request import parse_create

_EXPORT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
EXPORT_TIMEOUT_S = 1800.0


def new_job_id() -> str:
    """Upstream's form: ft-<%y%m%d%H%M%S%f>-<5 hex>."""
    return f"ft-{datetime.now().strftime('%y%m%d%H%M%S%f')}-{uuid.uuid4().hex[:5]}"


def model_id(name: str) -> str:
    return f"{name}_{''.join(secrets.choice(string.ascii_letters + string.digits) for _ in range(7))}"


@dataclass
class TrainService:
    controller: Controller
    roots: ModelRoots
    data: DataStore
    export_root: Root | None = None
    max_body: int = http.DEFAULT_MAX_BODY
    lock: threading.Lock = field(default_factory=threading.Lock)
    exporting: set = field(default_factory=set)

    @property
    def launcher(self):
        return self.controller.launcher

    # ------------------------------------------------------------------ create
    def create(self, owner: str, body: dict, key: str | None = None) -> Record:
        """A job from BODY; with KEY (the ``finetune_task_id`` query) the job of this owner made with that key,
        when there is one."""
        if key is not None and not (0 < len(key) <= 256):
            raise ApiError(400, "bad_query", "?finetune_task_id= takes 1-256 characters")
        with self.lock if key else contextlib.nullcontext():
            found = self._by_key(owner, key) if key else None
            if found is not None:
                return found
            request = parse_create(body, self.roots, self.controller.pool.total)
            job_id = new_job_id()
            prepared = self.data.prepare(owner, job_id, request)
            spec = {**request.spec(), **prepared, "model_id": model_id(request.name), "idempotency_key": key}
            try:
                return self.controller.create(owner, job_id, spec, request.gpus)
            except BaseException:
                self.data.forget(job_id)
                raise

    def _by_key(self, owner: str, key: str) -> Record | None:
        return next((r for r in self.controller.list(owner) if r.spec.get("idempotency_key") == key), None)

    # ------------------------------------------------------------------ pause, resume, delete
    def pause(self, owner: str, job_id: str) -> Record:
        record = self.controller.get(owner, job_id)
        if not record.active:
            raise ApiError(404, "not_active", f"Job is ended or not found: {job_id} is {record.status}")
        self.controller.suspend(owner, job_id)
        return self.refresh(owner, job_id)

    def refresh(self, owner: str, job_id: str) -> Record:
        """The record with the progress its volume holds now (after the trainer's last write)."""
        record = self.controller.get(owner, job_id)
        raw = self.launcher.read(record, "progress.json")
        try:
            progress = json.loads(raw) if raw else None
        except ValueError:
            progress = None
        if isinstance(progress, dict):
            with self.controller.lock:
                current = self.controller.store.by_uid(record.uid)
                if current is not None and current.status not in LAUNCHED:
                    current.extra["progress"] = progress
                    self.controller.store.save(current)
        return self.controller.get(owner, job_id)

    def resume(self, owner: str, job_id: str, checkpoint: object = None) -> tuple[Record, str]:
        """The job queued again; ("resume" from a checkpoint | "restart" without one)."""
        record = self.controller.get(owner, job_id)
        if record.status != SUSPENDED:
            raise ApiError(400, "not_suspended", f"Job is not suspended (current status: {record.status})")
        marks = checkpoints(record)
        chosen = None
        if checkpoint not in (None, ""):
            chosen = next((c for c in marks if checkpoint in (c["path"], c["step"], str(c["step"]))), None)
            if chosen is None:
                raise ApiError(400, "unknown_checkpoint", f"checkpoint {checkpoint!r} is not one of this job's: "
                                                          f"{', '.join(str(c['step']) for c in marks) or 'none'}")
        with self.controller.lock:
            current = self.controller.store.by_uid(record.uid)
            current.spec["resume_from"] = chosen["path"] if chosen else None
            self.controller.store.save(current)
        resumed = self.controller.resume(owner, job_id)
        return resumed, "resume" if marks else "restart"

    def delete(self, owner: str, job_id: str) -> tuple[Record, bool]:
        record, removed = self.controller.delete(owner, job_id)
        if removed:                         # a finished, failed or suspended job: its files go with its record
            try:
                self.launcher.discard(record)
            finally:
                self.data.forget(job_id)
        return record, removed

    # ------------------------------------------------------------------ logs
    def log_lines(self, owner: str, job_id: str, follow: bool) -> NonBlank:
        """The job's log (every run's), following a running one with FOLLOW; blank lines left out (upstream)."""
        record = self.controller.get(owner, job_id)
        if follow and record.active and not record.handle:          # queued or starting: follow once it runs
            return NonBlank(WhenLaunched(self, owner, job_id))
        if record.handle and record.status in LAUNCHED:
            return NonBlank(self.controller.logs(owner, job_id, follow=follow))
        raw = self.launcher.read(record, "train.log") if record.started_at else None
        if raw is None and not record.log_tail:
            raise ApiError(404, "log_not_found", f"log file not found: {job_id} has not started ({record.status})")
        text = raw.decode(errors="replace") if raw is not None else record.log_tail
        return NonBlank(ListStream(text.splitlines()))

    # ------------------------------------------------------------------ export
    def export(self, owner: str, job_id: str, body: dict) -> dict:
        missing = [k for k in ("name", "model_display_name", "model_id") if k not in body]
        if missing:
            raise ApiError(422, "invalid_request", f"missing {', '.join(missing)} (upstream's export body: name, "
                                                   "model_display_name, model_id)")
        record = self.controller.get(owner, job_id)
        name = body["model_display_name"]
        if not isinstance(name, str) or not _EXPORT_NAME.match(name):
            raise ApiError(400, "bad_name", "'model_display_name' names a folder: 1-128 letters, digits, '_', '.', "
                                            "'-', starting with a letter or digit")
        if record.status != DONE:
            raise ApiError(400, "not_finished", f"{job_id} is {record.status}: only a finished (Done) job exports")
        root = self.export_root
        if root is None:
            raise ApiError(409, "no_model_root", "the service has no --models folder to export into")
        with self.lock:
            if name in self.exporting or _exists(root, name):
                raise ApiError(409, "target_exists", f"target dir already exists: {root.host}/{name}")
            self.exporting.add(name)
        try:
            done = self.launcher.export(record, root, name, EXPORT_TIMEOUT_S)
        finally:
            with self.lock:
                self.exporting.discard(name)
        if done.code == 73:
            raise ApiError(409, "target_exists", f"target dir already exists: {root.host}/{name}")
        if done.code != 0:
            tail = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()][-1:]
            raise ApiError(500, "export_failed", f"the export exited with code {done.code}: {' '.join(tail)}")
        made = {"model": name, "path": f"{root.host.rstrip('/')}/{name}", "merged": True}
        with self.controller.lock:
            current = self.controller.store.by_uid(record.uid)
            current.extra.setdefault("exports", []).append(made)
            self.controller.store.save(current)
        return {"status": "Done", "model_display_name": name, "fine_tuned_model": name, "model_path": made["path"]}


class WhenLaunched:
    """A followed log of a job that has no container yet: nothing until it has one, then its log followed (or,
    when it ended without one, what its record kept)."""

    def __init__(self, service: TrainService, owner: str, job_id: str, interval: float = 0.5) -> None:
        self.service, self.owner, self.job_id, self.interval = service, owner, job_id, interval
        self.closed = threading.Event()
        self.inner: LogStream | None = None

    def __iter__(self) -> Iterator[str]:
        while not self.closed.is_set():
            try:
                record = self.service.controller.get(self.owner, self.job_id)
            except ApiError:
                return                                  # deleted meanwhile
            if record.handle and record.status in LAUNCHED:
                self.inner = self.service.controller.logs(self.owner, self.job_id, follow=True)
                yield from self.inner
                return
            if not record.active:
                yield from record.log_tail.splitlines()
                return
            self.closed.wait(self.interval)

    def close(self) -> None:
        self.closed.set()
        if self.inner is not None:
            self.inner.close()


class NonBlank:
    """A LogStream without its blank lines."""

    def __init__(self, stream: LogStream) -> None:
        self.stream = stream

    def __iter__(self) -> Iterator[str]:
        return (line for line in self.stream if line.strip())

    def close(self) -> None:
        self.stream.close()


def _exists(root: Root, name: str) -> bool:
    return os.path.lexists(os.path.join(root.inner, name))


def checkpoints(record: Record) -> list[dict]:
    return list((record.extra.get("progress") or {}).get("checkpoints") or [])
