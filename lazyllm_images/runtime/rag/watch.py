"""The watch loop: an indexing pass at start, then every ``interval`` seconds (never, for 0), and whenever
``request()`` asks."""

from __future__ import annotations

import math
import threading
from concurrent.futures import Future

from .indexer import Indexer


class Watcher:
    """Runs passes in a background thread: at start, every ``interval`` seconds, and when ``request()`` asks.
    ``interval`` 0 means no rescans: one pass at start, then only on request."""

    def __init__(self, indexer: Indexer, interval: float) -> None:
        if not math.isfinite(interval) or interval < 0:
            raise ValueError(f"the watch interval must be a finite number of seconds >= 0, not {interval}")
        self.indexer = indexer
        self.interval = interval or None          # None: Event.wait without a timeout
        self.ready = threading.Event()  # set after the first successful pass
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._waiters: list[Future] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="rag-indexer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=30)

    def request(self) -> Future:
        """Ask for a pass now; the future resolves with the summary of a pass that started after this call."""
        future: Future = Future()
        with self._lock:
            self._waiters.append(future)
        self._wake.set()
        return future

    def _loop(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                waiters, self._waiters = self._waiters, []
            self._wake.clear()
            try:
                summary = self.indexer.run_pass()
                self.ready.set()
            except Exception:
                summary = self.indexer.last
            for w in waiters:
                w.set_result(summary)
            self._wake.wait(self.interval)
