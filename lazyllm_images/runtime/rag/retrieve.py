"""Hybrid retrieval over an immutable in-memory snapshot: cosine over unit vectors and BM25, fused by reciprocal
rank fusion, then optionally reordered by a reranker."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import logging

import numpy as np

from .bm25 import BM25
from .embeddings import Embedder
from .store import ChunkRow

RRF_K = 60
log = logging.getLogger("lazyllm.rag")


@dataclass(frozen=True)
class Passage:
    path: str
    text: str
    score: float
    chunk_id: str

    def as_source(self) -> dict:
        return {"path": self.path, "text": self.text, "score": round(float(self.score), 6)}


class Reranker(Protocol):
    def rerank(self, query: str, texts: list[str]) -> list[float]: ...


class Snapshot:
    """What a query searches: chunk texts and paths, their (n, dim) unit vectors, a BM25 index. Never mutated:
    the indexer builds a new one and swaps it in."""

    def __init__(self, rows: list[ChunkRow]) -> None:
        self.ids = [r.id for r in rows]
        self.paths = [r.path for r in rows]
        self.texts = [r.text for r in rows]
        self.matrix = np.stack([r.vector for r in rows]).astype(np.float32) if rows else np.zeros((0, 0), np.float32)
        self.bm25 = BM25(self.texts)

    def __len__(self) -> int:
        return len(self.ids)


def top_indices(scores: np.ndarray, n: int, positive_only: bool = False) -> list[int]:
    """Indices of the ``n`` highest scores, best first (ties by index, so results are deterministic)."""
    if positive_only:
        candidates = np.flatnonzero(scores > 0)
    else:
        candidates = np.arange(len(scores))
    if len(candidates) > n:
        part = np.argpartition(-scores[candidates], n - 1)[:n]
        candidates = candidates[part]
    order = np.lexsort((candidates, -scores[candidates]))
    return [int(i) for i in candidates[order]]


def reciprocal_rank_fusion(rankings: list[list[int]], k: int = RRF_K) -> list[tuple[int, float]]:
    """RRF: each item scores sum(1 / (k + rank)) over the rankings it appears in (rank from 1); best first."""
    fused: dict[int, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            fused[item] = fused.get(item, 0.0) + 1.0 / (k + rank)
    return sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))


class Retriever:
    def __init__(self, embedder: Embedder, reranker: Reranker | None = None, candidates: int = 50) -> None:
        self.embedder = embedder
        self.reranker = reranker
        self.candidates = candidates

    def search(self, snapshot: Snapshot, query: str, top_k: int) -> list[Passage]:
        if not len(snapshot) or not query.strip() or top_k <= 0:
            return []
        pool = max(self.candidates, top_k)
        qvec = self.embedder.embed([query], kind="query")[0]
        dense = top_indices(snapshot.matrix @ qvec, pool)
        sparse = top_indices(snapshot.bm25.scores(query), pool, positive_only=True)
        fused = reciprocal_rank_fusion([dense, sparse])
        if self.reranker is not None:
            fused = self._rerank(snapshot, query, fused[:max(4 * top_k, 20)])
        return [Passage(snapshot.paths[i], snapshot.texts[i], score, snapshot.ids[i]) for i, score in fused[:top_k]]

    def _rerank(self, snapshot: Snapshot, query: str, fused: list[tuple[int, float]]) -> list[tuple[int, float]]:
        items = [i for i, _ in fused]
        try:
            scores = self.reranker.rerank(query, [snapshot.texts[i] for i in items])
        except Exception as exc:  # a failing reranker degrades to the fused order, it does not fail the query
            log.warning("reranker failed, keeping the fused order: %s", exc)
            return fused
        return sorted(zip(items, scores), key=lambda kv: (-kv[1], kv[0]))
