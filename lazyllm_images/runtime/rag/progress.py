"""Progress of the current indexing pass: counts and percentage, logged and shown in /v1/status."""

from __future__ import annotations

import logging
import threading
import time

log = logging.getLogger("lazyllm.rag")


class Progress:
    """Thread-safe counters; the indexer updates them, /v1/status reads ``as_dict()``."""

    LOG_EVERY_S = 2.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.state = "starting"
        self.files_total = self.files_done = 0
        self.chunks_total = self.chunks_done = 0
        self.error: str | None = None
        self._last_log = 0.0

    def start(self, files_total: int) -> None:
        with self._lock:
            self.state = "indexing"
            self.files_total, self.files_done = files_total, 0
            self.chunks_total = self.chunks_done = 0
            self.error = None
        if files_total:
            log.info("indexing: %d new or modified files to look at", files_total)

    def set_chunks(self, total: int) -> None:
        with self._lock:
            self.chunks_total = total
        if total:
            log.info("indexing: %d chunks to embed", total)

    def file_done(self) -> None:
        with self._lock:
            self.files_done += 1

    def chunks_embedded(self, n: int) -> None:
        with self._lock:
            self.chunks_done += n
            now = time.monotonic()
            due = now - self._last_log >= self.LOG_EVERY_S or self.chunks_done >= self.chunks_total
            if due:
                self._last_log = now
        if due:
            log.info("indexing: %d/%d chunks embedded (%.0f%%)", self.chunks_done, self.chunks_total, self.percent())

    def finish(self, error: str | None) -> None:
        with self._lock:
            self.state = "error" if error else "idle"
            self.error = error

    def percent(self) -> float:
        if self.chunks_total:
            return 100.0 * self.chunks_done / self.chunks_total
        return 100.0 * self.files_done / self.files_total if self.files_total else 100.0

    def as_dict(self) -> dict:
        with self._lock:
            return {"state": self.state, "files_total": self.files_total, "files_done": self.files_done,
                    "chunks_total": self.chunks_total, "chunks_done": self.chunks_done,
                    "percent": round(self.percent(), 1) if self.state == "indexing" else 100.0,
                    "error": self.error}
