"""One thread owns the model; requests queue up and are merged into batches while it is busy.

The event loop never runs the model: it submits texts and awaits a future. A request that arrives while a batch
is being encoded waits in the queue and joins the next batch with the others that arrived meanwhile, up to
``batch_size`` texts (a single request larger than that still goes in one call; the encoder splits it).
"""

from __future__ import annotations

import concurrent.futures
import logging
import queue
import threading
from dataclasses import dataclass, field
from typing import Callable

log = logging.getLogger("lazyllm.embed")

# texts -> (one vector per text, one token count per text)
Encoder = Callable[[list[str]], tuple[list[list[float]], list[int]]]


@dataclass
class Result:
    vectors: list[list[float]]
    tokens: int


@dataclass
class _Job:
    texts: list[str]
    future: concurrent.futures.Future = field(default_factory=concurrent.futures.Future)


class EmbedWorker:
    def __init__(self, encode: Encoder, batch_size: int = 32) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self._encode = encode
        self._batch_size = batch_size
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="embed-worker", daemon=True)
        self.batches = 0  # how many encoder calls ran (for logs and tests)

    def start(self) -> "EmbedWorker":
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._queue.put(None)
        self._thread.join(timeout)

    def submit(self, texts: list[str]) -> concurrent.futures.Future:
        job = _Job(list(texts))
        self._queue.put(job)
        return job.future

    def _gather(self, first: _Job) -> tuple[list[_Job], bool]:
        """The first job plus whatever else is waiting, up to the batch size; True when told to stop."""
        jobs, count = [first], len(first.texts)
        while count < self._batch_size:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job is None:
                return jobs, True
            jobs.append(job)
            count += len(job.texts)
        return jobs, False

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            jobs, stop = self._gather(first)
            self._process(jobs)
            if stop:
                return

    def _process(self, jobs: list[_Job]) -> None:
        jobs = [j for j in jobs if j.future.set_running_or_notify_cancel()]
        if not jobs:
            return
        texts = [t for j in jobs for t in j.texts]
        try:
            vectors, tokens = self._encode(texts)
        except Exception as exc:  # the error goes to every request of the batch
            log.exception("encoding a batch of %d texts failed", len(texts))
            for job in jobs:
                job.future.set_exception(exc)
            return
        self.batches += 1
        start = 0
        for job in jobs:
            end = start + len(job.texts)
            job.future.set_result(Result(vectors[start:end], sum(tokens[start:end])))
            start = end
