"""Client for an OpenAI-compatible ``/v1/embeddings`` endpoint: batched, retried, counted, L2-normalised."""

from __future__ import annotations

import logging
import threading
import time
from typing import Protocol

import httpx
import numpy as np

log = logging.getLogger("lazyllm.rag")


class EmbeddingError(RuntimeError):
    """The embedding server could not be reached or answered something unusable."""


class Embedder(Protocol):
    def embed(self, texts: list[str], kind: str = "index") -> np.ndarray: ...


def endpoint(base_url: str, path: str) -> str:
    """``http://h:p`` or ``http://h:p/v1`` (or the full endpoint) + ``/v1/embeddings`` -> the endpoint URL."""
    base = base_url.rstrip("/")
    if base.endswith(path):
        return base
    if base.endswith("/v1") and path.startswith("/v1/"):
        return base + path[3:]
    return base + path


def normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.where(norms == 0, 1.0, norms)


class EmbeddingClient:
    """``embed(texts)`` -> (len(texts), dim) float32 unit vectors. Counts requests and texts per kind ("index" for
    document chunks, "query" for questions) for /v1/status: tests prove incremental updates with them."""

    def __init__(self, base_url: str, model: str, batch_size: int = 32, retries: int = 3,
                 timeout: float = 120.0, api_key: str | None = None) -> None:
        self.url = endpoint(base_url, "/v1/embeddings")
        self.model = model
        self.batch_size = batch_size
        self.retries = retries
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(timeout=timeout, headers=headers)
        self._lock = threading.Lock()
        self._counts: dict[str, dict[str, int]] = {}

    def counters(self) -> dict[str, dict[str, int]]:
        """``{"index": {"calls": N, "texts": M}, "query": {...}}``."""
        with self._lock:
            return {kind: dict(c) for kind, c in self._counts.items()}

    def embed(self, texts: list[str], kind: str = "index") -> np.ndarray:
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        parts = [self._request(texts[i:i + self.batch_size], kind) for i in range(0, len(texts), self.batch_size)]
        return normalise(np.concatenate(parts))

    def _request(self, batch: list[str], kind: str) -> np.ndarray:
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(min(0.5 * 2 ** (attempt - 1), 4.0))
            try:
                response = self._http.post(self.url, json={"model": self.model, "input": batch})
            except httpx.HTTPError as exc:
                last = exc
                log.warning("embedding server %s: %s (attempt %d/%d)", self.url, exc, attempt + 1, self.retries + 1)
                continue
            if response.status_code >= 500 or response.status_code == 429:
                last = EmbeddingError(f"HTTP {response.status_code}: {response.text[:200]}")
                continue
            with self._lock:
                counts = self._counts.setdefault(kind, {"calls": 0, "texts": 0})
                counts["calls"] += 1
                counts["texts"] += len(batch)
            return self._parse(response, len(batch))
        raise EmbeddingError(f"embedding server unreachable at {self.url} after {self.retries + 1} attempts: {last}")

    def _parse(self, response: httpx.Response, expected: int) -> np.ndarray:
        if response.status_code != 200:
            raise EmbeddingError(f"embedding server {self.url} answered HTTP {response.status_code}: "
                                 f"{response.text[:300]}")
        try:
            data = sorted(response.json()["data"], key=lambda d: d.get("index", 0))
            vectors = np.array([d["embedding"] for d in data], dtype=np.float32)
        except (ValueError, KeyError, TypeError) as exc:
            raise EmbeddingError(f"embedding server {self.url} gave an unexpected answer: {exc}") from exc
        if vectors.ndim != 2 or len(vectors) != expected:
            raise EmbeddingError(f"embedding server {self.url} returned {len(vectors)} vectors for {expected} texts")
        return vectors

    def close(self) -> None:
        self._http.close()
