"""The controller: records in, containers out, statuses from what the launcher sees.

- ``create`` checks the GPU count against the pool (409 when it can never fit), asks the launcher to ``prepare``
  (its refusal is a 4xx), stores a ``Pending`` record and schedules: records that fit get devices and are launched
  on a thread of their own; GPU requests that do not fit wait first come first served, with the reason.
- The poll loop probes every launched record: ``Ready`` once a server's health answers, ``Failed`` (with the last
  log line) when its container exits or is gone or a server is not healthy within ``ready_timeout``; a job's exit
  0 is ``Done``. A finished record keeps its last log lines; its container is removed.
- ``adopt`` (at start) re-attaches the records to the containers the launcher finds by label; launched records
  whose container is gone become ``Failed`` with the reason, containers nobody owns are removed.

Blocking calls (the launcher, SQLite) run on the caller's thread: the HTTP layer calls in from worker threads.
"""

from __future__ import annotations

import logging
import threading
import time

from . import launcher as L
from .gpus import GpuPool
from .launcher import Launcher, ListStream, LogStream, Refused
from .records import CANCELLED, DONE, FAILED, LAUNCHED, PENDING, READY, RUNNING, SUSPENDED, Record
from .store import Duplicate, Store

log = logging.getLogger("lazyllm.controller")
TAIL_LINES = 200


class ApiError(Exception):
    """A failure the API answers with ``{"error": {"code", "message"}}`` and STATUS."""

    def __init__(self, status: int, code: str, message: str, **details: object) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.details = details                  # more fields of the error object (a bad dataset's row number)


def last_line(text: str, limit: int = 300) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:limit] if lines else ""


class Controller:
    def __init__(self, store: Store, launcher: Launcher, pool: GpuPool, kind: str, *, server: bool = True,
                 poll_interval: float = 2.0, ready_interval: float | None = None, ready_timeout: float = 1800.0,
                 unhealthy_after: int = 3, cpu_slots: int | None = None) -> None:
        self.store, self.launcher, self.pool, self.kind = store, launcher, pool, kind
        self.server = server                    # servers become Ready by health; jobs end with an exit code
        self.cpu_slots = cpu_slots              # at most this many records without GPUs launched at once (None: any)
        self.poll_interval, self.ready_timeout, self.unhealthy_after = poll_interval, ready_timeout, unhealthy_after
        # a Ready server is probed less often: each probe is a line in its access log
        self.ready_interval = max(poll_interval, 10.0) if ready_interval is None else ready_interval
        self.lock = threading.RLock()
        self.wake, self.stopping = threading.Event(), threading.Event()
        self.fails: dict[str, int] = {}
        self.probed: dict[str, float] = {}
        self.thread: threading.Thread | None = None

    # ------------------------------------------------------------------ the API's verbs
    def create(self, owner: str, name: str, spec: dict, gpus: int) -> Record:
        why = self.pool.never_fits(gpus)
        if why:
            raise ApiError(409, "gpus_never_fit", f"{name}: {why}")
        record = Record(self.kind, owner, name, spec, gpus)
        self._check_free_name(owner, name)
        try:
            record.facts = self.launcher.prepare(record)
        except Refused as exc:
            raise ApiError(exc.status, exc.code, str(exc)) from None
        with self.lock:
            self._check_free_name(owner, name, replace=True)
            try:
                self.store.insert(record)
            except Duplicate:
                raise ApiError(400, "duplicate", f"Service name already exists: {name}") from None
            self._schedule()
        log.info("%s %s (%s) created for owner %s", self.kind, name, record.uid, owner[:8])
        return self.store.by_uid(record.uid) or record

    def _check_free_name(self, owner: str, name: str, replace: bool = False) -> None:
        """An active record of that name is a 400 (upstream's rule); a finished one gives way to the new one."""
        old = self.store.get(owner, self.kind, name)
        if old is None:
            return
        if not old.final:
            raise ApiError(400, "duplicate", f"Service name already exists: {name} ({old.status}); "
                                             "DELETE it first or choose another name")
        if replace:
            self.store.delete(old.uid)

    def get(self, owner: str, name: str) -> Record:
        found = self.store.get(owner, self.kind, name)
        if found is None:                       # another owner's name is unknown here, never a 403
            raise ApiError(404, "not_found", f"no {self.kind} record named {name!r}")
        return found

    def list(self, owner: str) -> list[Record]:
        return self.store.list(self.kind, owner)

    def delete(self, owner: str, name: str) -> tuple[Record, bool]:
        """An active record: stopped, kept as Cancelled (False). A finished or suspended one: removed (True)."""
        with self.lock:
            record = self.get(owner, name)
            if not record.active:
                self.store.delete(record.uid)
                return record, True
            handle = record.handle
            record.finish(CANCELLED, "deleted by its owner")
            self.store.save(record)
        if handle:
            self._halt(handle)
            self._keep_tail(record, handle)
            self._stop(handle)
        with self.lock:
            self._schedule()                    # its GPUs are free
        return record, False

    def suspend(self, owner: str, name: str, reason: str = "suspended by its owner") -> Record:
        """Stop an active record's unit and keep the record as Suspended (its GPUs freed); a job's pause."""
        with self.lock:
            record = self.get(owner, name)
            if not record.active:
                raise ApiError(400, "not_active", f"{name} is {record.status}, not running")
            handle = record.handle
            record.status, record.reason, record.devices, record.handle = SUSPENDED, reason, [], None
            if record.launched_at is not None:  # the seconds it ran so far (its cost goes on at the next launch)
                record.extra["ran_s"] = record.extra.get("ran_s", 0.0) + max(0.0, time.time() - record.launched_at)
                record.launched_at = None
            self.store.save(record)
        if handle:
            self._halt(handle)                  # a job saves its checkpoint before its unit goes
            self._keep_tail(record, handle)
            self._stop(handle)
        with self.lock:
            self._schedule()
        return self.get(owner, name)

    def resume(self, owner: str, name: str) -> Record:
        """A Suspended record back in the queue: launched again when its GPUs are free."""
        with self.lock:
            record = self.get(owner, name)
            if record.status != SUSPENDED:
                raise ApiError(400, "not_suspended", f"{name} is not suspended (current status: {record.status})")
            record.status, record.reason = PENDING, "resumed"
            self.store.save(record)
            self._schedule()
        return self.get(owner, name)

    def logs(self, owner: str, name: str, follow: bool = False, tail: int | None = None) -> LogStream:
        record = self.get(owner, name)
        if record.handle and record.status in LAUNCHED:
            return self.launcher.logs(record.handle, follow=follow, tail=tail)
        lines = record.log_tail.splitlines()
        return ListStream(lines[-tail:] if tail else lines)

    # ------------------------------------------------------------------ scheduling
    def _schedule(self) -> None:
        """Give devices to the pending records that fit (first come first served among GPU requests) and launch
        them; tell the others why they wait. Call with the lock held."""
        active = self.store.active(self.kind)
        holders = [r for r in active if r.status in LAUNCHED]
        ahead = 0
        for record in (r for r in active if r.status == PENDING):
            devices = [] if not record.gpus else (None if ahead else self.pool.take(record.gpus, holders))
            reason = self._cpu_wait(holders) if not record.gpus else None
            if devices is None or reason:
                if devices is None:
                    reason = self.pool.waiting_reason(record.gpus, holders, ahead)
                    ahead += 1
                if reason != record.reason:
                    record.reason = reason
                    self.store.save(record)
                continue
            record.devices, record.status, record.reason = devices, RUNNING, "starting its container"
            record.launched_at = time.time()
            record.started_at = record.started_at or record.launched_at
            self.store.save(record)
            holders.append(record)
            threading.Thread(target=self._launch, args=(record.uid,), name=f"launch-{record.uid}",
                             daemon=True).start()

    def _cpu_wait(self, holders: list[Record]) -> str | None:
        """Why a record without GPUs waits: every CPU slot is taken (None: it may start)."""
        if self.cpu_slots is None:
            return None
        busy = sum(1 for r in holders if not r.gpus)
        if busy < self.cpu_slots:
            return None
        return f"waiting for a CPU slot: {busy} of {self.cpu_slots} {self.kind} runs without a GPU are running"

    def _launch(self, uid: str) -> None:
        record = self.store.by_uid(uid)
        if record is None:
            return
        try:
            handle = self.launcher.launch(record)
        except Exception as exc:  # noqa: BLE001 - any failure is the record's, in words
            message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
            hint = getattr(exc, "hint", None)
            log.warning("%s %s: the launch failed: %s", self.kind, record.name, message)
            with self.lock:
                current = self.store.by_uid(uid)
                if current is not None and current.status in LAUNCHED:
                    current.finish(FAILED, f"the launch failed: {message}" + (f" ({hint})" if hint else ""))
                    self.store.save(current)
                    self._schedule()
            return
        with self.lock:
            current = self.store.by_uid(uid)
            if current is None or current.status not in LAUNCHED:      # deleted while it started
                self._stop(handle)
                return
            current.handle = handle
            current.reason = "waiting for its health check" if self.server else ""
            self.store.save(current)
        self.wake.set()

    # ------------------------------------------------------------------ the poll loop
    def poll_once(self, force: bool = False) -> None:
        """Probe the launched records (a Ready one every ``ready_interval``; FORCE: all), then schedule."""
        now = time.monotonic()
        for record in self.store.active(self.kind):
            if record.status not in LAUNCHED or not record.handle:
                continue
            if not force and record.status == READY and now - self.probed.get(record.uid, 0) < self.ready_interval:
                continue
            self.probed[record.uid] = now
            try:
                probe = self.launcher.probe(record.handle)
            except Exception as exc:  # noqa: BLE001 - the engine hiccuped: this record waits for the next pass
                log.warning("cannot probe %s %s: %s", self.kind, record.name, exc)
                continue
            self._check(record, probe)
        with self.lock:
            self._schedule()

    def _check(self, seen: Record, probe: L.Probe) -> None:
        with self.lock:
            record = self.store.by_uid(seen.uid)
            if record is None or record.status not in LAUNCHED or record.handle != seen.handle:
                return
            ending = self._transition(record, probe)
            if probe.info:                      # what the unit reports about itself (a job's progress)
                record.extra.update(probe.info)
            self.store.save(record)
        if ending:
            self._keep_tail(record, ending)
            self._stop(ending)
            with self.lock:
                self._schedule()

    def _transition(self, record: Record, probe: L.Probe) -> dict | None:
        """Apply PROBE to RECORD; the handle to remove when it has ended."""
        now = time.time()
        if probe.state == L.READY and self.server:
            self.fails.pop(record.uid, None)
            if record.status != READY:
                record.status, record.reason, record.ready_at = READY, "", record.ready_at or now
                log.info("%s %s is ready", self.kind, record.name)
            return None
        if probe.state in (L.RUNNING, L.STARTING, L.READY):
            return self._not_ready(record, probe, now)
        handle = record.handle
        if probe.state == L.EXITED:
            code = probe.exit_code
            status = DONE if code == 0 else FAILED
            what = "the server" if self.server else "the job"
            record.finish(status, "" if code == 0 else f"{what} exited with code {code}"
                          + (f": {probe.detail}" if probe.detail else ""))
        else:
            record.finish(FAILED, "its container is gone (removed outside the controller)")
        return handle

    def _not_ready(self, record: Record, probe: L.Probe, now: float) -> dict | None:
        if not self.server:
            return None
        if record.status == READY:
            fails = self.fails[record.uid] = self.fails.get(record.uid, 0) + 1
            if fails >= self.unhealthy_after:
                record.status, record.reason = RUNNING, f"its health check fails: {probe.detail or 'no answer'}"
            return None
        launched = record.launched_at or record.started_at or now
        if (record.ready_at or 0) < launched and now - launched > self.ready_timeout:
            record.finish(FAILED, f"not healthy within {self.ready_timeout:.0f}s"
                                  + (f": {probe.detail}" if probe.detail else ""))
            return record.handle or None
        return None

    def _keep_tail(self, record: Record, handle: dict) -> None:
        """The last log lines kept with the record (its container goes), and the last one in a failure reason."""
        try:
            stream = self.launcher.logs(handle, follow=False, tail=TAIL_LINES)
            text = "\n".join(stream)
        except Exception as exc:  # noqa: BLE001 - logs are a courtesy; the record's state is what matters
            log.debug("no logs for %s: %s", record.name, exc)
            return
        with self.lock:
            current = self.store.by_uid(record.uid)
            if current is None:
                return
            current.log_tail = text
            line = last_line(text)
            if current.status == FAILED and line and line not in current.reason:
                current.reason = f"{current.reason}; last log line: {line}"
            self.store.save(current)

    def _halt(self, handle: dict) -> None:
        """A launcher that can stop a unit gracefully first (a job saving its checkpoint) does so."""
        halt = getattr(self.launcher, "halt", None)
        if halt is None:
            return
        try:
            halt(handle)
        except Exception as exc:  # noqa: BLE001 - the stop that follows removes it anyway
            log.warning("could not stop %s gracefully: %s", handle, exc)

    def _stop(self, handle: dict) -> None:
        try:
            self.launcher.stop(handle)
        except Exception as exc:  # noqa: BLE001 - logged; the next adopt removes what remains
            log.warning("could not remove %s: %s", handle, exc)

    # ------------------------------------------------------------------ start, restart, stop
    def adopt(self) -> dict[str, int]:
        """Re-attach to what the launcher finds; returns counts (adopted, failed, requeued, removed)."""
        found = self.launcher.list_running()
        counts = {"adopted": 0, "failed": 0, "requeued": 0, "removed": 0}
        with self.lock:
            active = self.store.active(self.kind)
            for record in active:
                counts[self._adopt_one(record, found.get(record.uid))] += 1
            mine = {r.uid for r in active}
            leftovers = [h for uid, h in found.items() if uid not in mine]
        for handle in leftovers:
            log.info("removing a container no active record owns: %s", handle)
            self._stop(handle)
            counts["removed"] += 1
        self.poll_once(force=True)
        return counts

    def _adopt_one(self, record: Record, found: dict | None) -> str:
        if record.status == PENDING:
            return "adopted"
        if found is not None:
            record.handle = record.handle or found
            self.store.save(record)
            return "adopted"
        if record.handle is None:               # the controller stopped while starting it: start it again
            record.status, record.devices, record.started_at = PENDING, [], None
            record.reason = "requeued: the controller restarted while starting it"
            self.store.save(record)
            return "requeued"
        record.finish(FAILED, "its container was gone when the controller restarted "
                              "(removed or crashed while the controller was down)")
        self.store.save(record)
        return "failed"

    def start(self) -> dict[str, int]:
        counts = self.adopt()
        self.thread = threading.Thread(target=self._loop, name=f"{self.kind}-poll", daemon=True)
        self.thread.start()
        return counts

    def _loop(self) -> None:
        while not self.stopping.is_set():
            try:
                self.poll_once()
            except Exception:
                log.exception("poll pass failed")
            self.wake.wait(self.poll_interval)
            self.wake.clear()

    def close(self) -> None:
        self.stopping.set()
        self.wake.set()
        if self.thread is not None:
            self.thread.join(timeout=10)
