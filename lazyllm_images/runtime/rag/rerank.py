"""Client for an infinity/Cohere-style ``/rerank`` endpoint: ``{"query", "documents"}`` -> relevance per document."""

from __future__ import annotations

import httpx

from .embeddings import EmbeddingError, endpoint


class RerankError(EmbeddingError):
    """The reranker could not be reached or answered something unusable."""


class RerankClient:
    def __init__(self, base_url: str, model: str, timeout: float = 60.0) -> None:
        base = base_url.rstrip("/")
        self.url = base if base.endswith("/rerank") else endpoint(base, "/rerank")
        self.model = model
        self._http = httpx.Client(timeout=timeout)

    def rerank(self, query: str, texts: list[str]) -> list[float]:
        """One relevance score per text, in the order given."""
        if not texts:
            return []
        try:
            response = self._http.post(self.url, json={"model": self.model, "query": query, "documents": texts,
                                                       "return_documents": False})
        except httpx.HTTPError as exc:
            raise RerankError(f"reranker unreachable at {self.url}: {exc}") from exc
        if response.status_code != 200:
            raise RerankError(f"reranker {self.url} answered HTTP {response.status_code}: {response.text[:300]}")
        return parse_scores(response.json(), len(texts))

    def close(self) -> None:
        self._http.close()


def parse_scores(body: dict, n: int) -> list[float]:
    """``{"results": [{"index": i, "relevance_score": s}, ...]}`` (infinity, Cohere, Jina, vLLM) -> scores."""
    scores = [float("-inf")] * n
    try:
        for item in body["results"]:
            score = item.get("relevance_score", item.get("score"))
            scores[int(item["index"])] = float(score)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise RerankError(f"reranker gave an unexpected answer: {exc}") from exc
    return scores
