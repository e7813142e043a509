"""Hybrid retrieval's logic on a hand-made snapshot: dense and BM25 fused by RRF, reranker ordering and fallback,
and the HTTP clients' URL handling and failures (a closed port, not a mock server)."""

from __future__ import annotations

import socket

import numpy as np
import pytest

from lazyllm_images.runtime.rag.embeddings import EmbeddingClient, EmbeddingError, endpoint
from lazyllm_images.runtime.rag.rerank import RerankError, parse_scores
from lazyllm_images.runtime.rag.retrieve import Retriever, Snapshot
from lazyllm_images.runtime.rag.store import ChunkRow


class FixedQuery:
    """The query vector is given; the snapshot's vectors are set by hand below."""
    model = "fixed"

    def __init__(self, vector: list[float]) -> None:
        self.vector = np.array([vector], dtype=np.float32)

    def embed(self, texts: list[str], kind: str = "index") -> np.ndarray:
        return self.vector


def snapshot() -> Snapshot:
    rows = [("a.txt", "kiwi fruit salad", [1, 0]), ("b.txt", "banana bread recipe", [0.6, 0.8]),
            ("c.txt", "kiwi birds of new zealand", [0, 1])]
    return Snapshot([ChunkRow(f"id{i}", p, 0, t, "", np.array(v, np.float32)) for i, (p, t, v) in enumerate(rows)])


def test_dense_and_bm25_fused() -> None:
    # dense ranks a, b, c; BM25 ("kiwi") ranks a, c: fused a (1/61+1/61), c (1/63+1/62), b (1/62)
    found = Retriever(FixedQuery([1, 0])).search(snapshot(), "kiwi", 3)
    assert [p.path for p in found] == ["a.txt", "c.txt", "b.txt"]
    assert found[0].score == pytest.approx(2 / 61)
    assert Retriever(FixedQuery([1, 0])).search(snapshot(), "kiwi", 1)[0].as_source() == {
        "path": "a.txt", "text": "kiwi fruit salad", "score": pytest.approx(2 / 61, abs=1e-6)}


class ReverseReranker:
    model = "reverse"

    def rerank(self, query: str, texts: list[str]) -> list[float]:
        return [float(i) for i in range(len(texts))]  # the last candidate scores highest


class BrokenReranker:
    model = "broken"

    def rerank(self, query: str, texts: list[str]) -> list[float]:
        raise RerankError("down")


def test_reranker_reorders_and_a_broken_one_falls_back() -> None:
    reranked = Retriever(FixedQuery([1, 0]), ReverseReranker()).search(snapshot(), "kiwi", 3)
    assert [p.path for p in reranked] == ["b.txt", "c.txt", "a.txt"] and reranked[0].score == 2.0
    fallback = Retriever(FixedQuery([1, 0]), BrokenReranker()).search(snapshot(), "kiwi", 3)
    assert [p.path for p in fallback] == ["a.txt", "c.txt", "b.txt"]


def test_empty_snapshot_or_query() -> None:
    assert Retriever(FixedQuery([1, 0])).search(Snapshot([]), "kiwi", 3) == []
    assert Retriever(FixedQuery([1, 0])).search(snapshot(), "  ", 3) == []


def test_parse_rerank_scores() -> None:
    body = {"results": [{"index": 1, "relevance_score": 0.9}, {"index": 0, "relevance_score": 0.1}]}
    assert parse_scores(body, 2) == [0.1, 0.9]
    with pytest.raises(RerankError):
        parse_scores({"data": []}, 2)


def test_endpoint_joining() -> None:
    assert endpoint("http://h:1", "/v1/embeddings") == "http://h:1/v1/embeddings"
    assert endpoint("http://h:1/v1/", "/v1/embeddings") == "http://h:1/v1/embeddings"
    assert endpoint("http://h:1/v1/embeddings", "/v1/embeddings") == "http://h:1/v1/embeddings"


def test_unreachable_embedding_server_is_a_clear_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again when the block ends: nothing listens there
    client = EmbeddingClient(f"http://127.0.0.1:{port}", "m", retries=1)
    with pytest.raises(EmbeddingError, match=rf"unreachable at http://127.0.0.1:{port}/v1/embeddings after 2"):
        client.embed(["text"])
    assert client.counters() == {}
