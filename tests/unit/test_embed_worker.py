"""Embedding server: the single model thread, batching of queued requests, errors."""

from __future__ import annotations

import threading

import pytest

from lazyllm_images.runtime.embed_server.worker import EmbedWorker


class GatedEncoder:
    """Encodes a text as [len(text)]; the first call waits for ``gate`` so that requests pile up meanwhile."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.threads: set[str] = set()

    def __call__(self, texts):
        self.threads.add(threading.current_thread().name)
        self.calls.append(list(texts))
        self.entered.set()
        self.gate.wait(5)
        return [[float(len(t))] for t in texts], [len(t) for t in texts]


def test_requests_waiting_while_busy_join_one_batch():
    enc = GatedEncoder()
    worker = EmbedWorker(enc, batch_size=8).start()
    try:
        first = worker.submit(["a"])
        assert enc.entered.wait(5)
        waiting = [worker.submit(["bb", "ccc"]), worker.submit(["dddd"]), worker.submit(["e" * 5])]
        enc.gate.set()
        assert first.result(5).outputs == [[1.0]]
        results = [f.result(5) for f in waiting]
        assert [r.outputs for r in results] == [[[2.0], [3.0]], [[4.0]], [[5.0]]]
        assert [r.tokens for r in results] == [5, 4, 5]
        assert enc.calls == [["a"], ["bb", "ccc", "dddd", "eeeee"]]
        assert enc.threads == {"embed-worker"}
    finally:
        worker.stop()


def test_batches_stop_growing_at_batch_size():
    enc = GatedEncoder()
    worker = EmbedWorker(enc, batch_size=2).start()
    try:
        worker.submit(["x"])
        assert enc.entered.wait(5)
        futures = [worker.submit([str(i)]) for i in range(5)]
        enc.gate.set()
        for f in futures:
            f.result(5)
        assert [len(c) for c in enc.calls] == [1, 2, 2, 1]
    finally:
        worker.stop()


def test_an_encoder_error_reaches_every_request_of_the_batch():
    def broken(texts):
        raise RuntimeError("out of memory")

    worker = EmbedWorker(broken).start()
    try:
        f = worker.submit(["a"])
        with pytest.raises(RuntimeError, match="out of memory"):
            f.result(5)
        ok = EmbedWorker(lambda t: ([[0.0]] * len(t), [1] * len(t))).start()
        assert ok.submit(["a", "b"]).result(5).tokens == 2
        ok.stop()
    finally:
        worker.stop()


def test_batch_size_must_be_positive():
    with pytest.raises(ValueError):
        EmbedWorker(lambda t: ([], []), batch_size=0)
