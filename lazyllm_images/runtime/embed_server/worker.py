"""One thread owns the model; requests queue up and are merged into batches while it is busy.

The event loop never runs the model: it submits items and awaits a future. A request that arrives while a batch
is being encoded waits in the queue and joins the next batch with the others that arrived meanwhile, up to
``batch_size`` items (a single request larger than that still goes in one call; the encoder splits it). Items are
texts for an embedding model (one vector each) and (query, document) pairs for a reranker (one score each).
"""

from __future__ import annotations

import concurrent.futures
import logging
import queue
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

log = logging.getLogger("lazyllm.embed")

# items -> (one output per item, one token count per item)
Encoder = Callable[[list[Any]], tuple[list[Any], list[int]]]


@dataclass
class Result:
    outputs: list[Any]          # vectors (embedding) or scores (reranker), in the order of the items
    tokens: int


@dataclass
class _Job:
    items: list[Any]
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

    def submit(self, items: list[Any]) -> concurrent.futures.Future:
        job = _Job(list(items))
        self._queue.put(job)
        return job.future

    def _gather(self, first: _Job) -> tuple[list[_Job], bool]:
        """The first job plus whatever else is waiting, up to the batch size; True when told to stop."""
        jobs, count = [first], len(first.items)
        while count < self._batch_size:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job is None:
                return jobs, True
            jobs.append(job)
            count += len(job.items)
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
        items = [t for j in jobs for t in j.items]
        try:
            outputs, tokens = self._encode(items)
        except Exception as exc:  # the error goes to every request of the batch
            log.exception("encoding a batch of %d items failed", len(items))
            for job in jobs:
                job.future.set_exception(exc)
            return
        self.batches += 1
        start = 0
        for job in jobs:
            end = start + len(job.items)
            job.future.set_result(Result(outputs[start:end], sum(tokens[start:end])))
            start = end


def token_groups(lengths: list[int], budget: int, most: int) -> list[list[int]]:
    """The items of one encoder call in groups for the model: by length, longest first; a group, padded to its
    longest item, holds at most ``budget`` tokens and ``most`` items (an item longer than the budget goes alone).
    Texts of alike length pad little, and a group's activations stay in the CPU's caches: on 2 cores, 32 texts of
    about 200 tokens encode faster as groups of 4-8 than as one padded batch of 32."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    groups: list[list[int]] = []
    current: list[int] = []
    for i in order:
        if current and (len(current) >= most or lengths[current[0]] * (len(current) + 1) > budget):
            groups.append(current)
            current = []
        current.append(i)
    if current:
        groups.append(current)
    return groups
