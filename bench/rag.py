"""RAG indexing throughput and query latency at about 1,000 chunks, next to a straightforward reference pipeline
measured in the same run against the same embedding server.

  ours:      sentence-aware chunks, batched embedding requests (identical chunk texts embedded once), sqlite index,
             cosine over a normalised matrix + BM25 over an inverted index, fused by reciprocal rank
             (lazyllm_images.runtime.rag in-process, and the service as a process queried over HTTP);
  reference: fixed-size character chunks, one embedding request per chunk, brute-force cosine recomputing every
             norm per query, rank_bm25's BM25Okapi scored per query, the two top-k lists concatenated.

Query latencies are measured interleaved (ours, ours over HTTP, reference for each query in turn) so that load
from other processes falls on all of them alike; "scoring only" leaves the query's embedding request out.
Corpus: the Python documentation topics shipped with the interpreter (pydoc_data), one .txt file per topic.
Queries: one per topic ("How does <topic> work in Python?"); the top-1 source hit rate (expected file: the
topic's own) is reported for both pipelines as a side metric.

Run (needs rank_bm25 next to numpy and httpx, e.g. the scratch venv of the embedding server):
    PYTHONPATH=. PY bench/rag.py --embed-url http://127.0.0.1:PORT --embed-model NAME
Results: bench/results/rag.json.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(REPO))
from common import record  # noqa: E402

from lazyllm_images.runtime.rag.embeddings import EmbeddingClient  # noqa: E402
from lazyllm_images.runtime.rag.indexer import Indexer  # noqa: E402
from lazyllm_images.runtime.rag.retrieve import Retriever  # noqa: E402
from lazyllm_images.runtime.rag.store import Store  # noqa: E402

CHUNK_SIZE, CHUNK_OVERLAP, TOP_K = 512, 64, 5
Query = tuple[str, str]  # (question, expected file)


def write_corpus(folder: Path) -> list[Query]:
    from pydoc_data.topics import topics

    folder.mkdir(parents=True)
    for key in sorted(topics):
        (folder / f"{key}.txt").write_text(topics[key])
    return [(f"How does {key.replace('-', ' ')} work in Python?", f"{key}.txt") for key in sorted(topics)]


def percentiles(samples: list[float]) -> dict:
    s = sorted(samples)
    return {"p50_ms": round(1000 * statistics.median(s), 2), "p95_ms": round(1000 * s[int(0.95 * (len(s) - 1))], 2),
            "mean_ms": round(1000 * statistics.fmean(s), 2), "n": len(s)}


def interleaved(fns: dict[str, Callable[[str], str]], queries: list[Query], warmup: int = 3) -> dict:
    """For each query, every ``fn(query) -> top-1 path`` in turn (rotating who goes first): latency percentiles
    and top-1 hit rate per name."""
    names = list(fns)
    samples: dict[str, list[float]] = {n: [] for n in names}
    hits = dict.fromkeys(names, 0)
    for i, (q, expected) in enumerate(queries[:warmup] + queries):
        for name in names[i % len(names):] + names[:i % len(names)]:
            start = time.perf_counter()
            top = fns[name](q)
            if i >= warmup:
                samples[name].append(time.perf_counter() - start)
                hits[name] += top == expected
    return {n: {**percentiles(samples[n]), "top1_hit_rate": round(hits[n] / len(queries), 3)} for n in names}


class Ours:
    def __init__(self, docs: Path, index: Path, url: str, model: str) -> None:
        self.embedder = EmbeddingClient(url, model)
        self.indexer = Indexer(docs, Store(index), self.embedder, CHUNK_SIZE, CHUNK_OVERLAP)
        self.retriever = Retriever(self.embedder)

    def index(self) -> dict:
        start = time.perf_counter()
        summary = self.indexer.run_pass()
        seconds = time.perf_counter() - start
        chunks = len(self.indexer.snapshot)
        return {"chunks": chunks, "chunks_embedded": summary.chunks_embedded, "index_s": round(seconds, 3),
                "chunks_per_s": round(chunks / seconds, 1),
                "embedding_requests": self.embedder.counters()["index"]["calls"]}

    def top1(self, query: str, retriever: Retriever | None = None) -> str:
        return (retriever or self.retriever).search(self.indexer.snapshot, query, TOP_K)[0].path

    def reindex_one_changed_file(self) -> dict:
        first = sorted(self.indexer.root.iterdir())[0]
        first.write_text(first.read_text() + "\n\nA sentence added to one file.")
        start = time.perf_counter()
        again = self.indexer.run_pass()
        return {"seconds": round(time.perf_counter() - start, 3), "chunks_embedded": again.chunks_embedded}


class CachedQueries:
    """Query vectors computed beforehand: isolates the local scoring cost from the embedding request."""
    model = "cached"

    def __init__(self, vectors: dict[str, np.ndarray]) -> None:
        self.vectors = vectors

    def embed(self, texts: list[str], kind: str = "index") -> np.ndarray:
        return np.array([self.vectors[texts[0]]], dtype=np.float32)


class Reference:
    """The straightforward pipeline: what a first version usually looks like."""

    def __init__(self, url: str, model: str) -> None:
        self.url = url.rstrip("/") + "/v1/embeddings"
        self.model = model
        self.http = httpx.Client(timeout=120)
        self.paths: list[str] = []
        self.texts: list[str] = []
        self.vectors: list[list[float]] = []
        self.bm25 = None

    def embed_one(self, text: str) -> list[float]:
        body = self.http.post(self.url, json={"model": self.model, "input": text}).json()
        return body["data"][0]["embedding"]

    def index(self, docs: Path) -> dict:
        from rank_bm25 import BM25Okapi

        start = time.perf_counter()
        step = CHUNK_SIZE - CHUNK_OVERLAP
        for path in sorted(docs.iterdir()):
            text = path.read_text()
            for i in range(0, max(len(text) - CHUNK_OVERLAP, 1), step):
                self.paths.append(path.name)
                self.texts.append(text[i:i + CHUNK_SIZE])
                self.vectors.append(self.embed_one(self.texts[-1]))  # one request per chunk
        self.bm25 = BM25Okapi([t.lower().split() for t in self.texts])
        seconds = time.perf_counter() - start
        return {"chunks": len(self.texts), "index_s": round(seconds, 3),
                "chunks_per_s": round(len(self.texts) / seconds, 1), "embedding_requests": len(self.texts)}

    def top1(self, query: str, qvec: list[float] | None = None) -> str:
        q = np.array(qvec if qvec is not None else self.embed_one(query))
        matrix = np.array(self.vectors)
        cosine = matrix @ q / (np.linalg.norm(matrix, axis=1) * np.linalg.norm(q))  # norms recomputed per query
        dense = list(np.argsort(-cosine)[:TOP_K])
        sparse = list(np.argsort(-self.bm25.get_scores(query.lower().split()))[:TOP_K])
        return [self.paths[i] for i in dense + [j for j in sparse if j not in dense]][0]


@contextmanager
def service(docs: Path, index: Path, url: str, model: str) -> Iterator[tuple[Callable[[str], str], float]]:
    """The service as a process on the index built in-process (nothing to embed at start): (top1 over HTTP,
    seconds until /healthz answered 200)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    argv = [sys.executable, "-m", "lazyllm_images.runtime.rag", "--documents", str(docs), "--index", str(index),
            "--embed-url", url, "--embed-model", model, "--chunk-size", str(CHUNK_SIZE), "--chunk-overlap",
            str(CHUNK_OVERLAP), "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    start = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(timeout=60) as http:
            _wait(http, base, proc)
            ready = time.perf_counter() - start

            def top1(q: str) -> str:
                return http.post(f"{base}/v1/query", json={"query": q, "top_k": TOP_K}).json()["sources"][0]["path"]
            yield top1, ready
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def _wait(http: httpx.Client, base: str, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the RAG service exited with {proc.returncode}")
        try:
            if http.get(f"{base}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError("the RAG service did not become healthy in 120 s")


def run(work: Path, url: str, model: str) -> dict:
    queries = write_corpus(work / "docs-ours")
    write_corpus(work / "docs-ref")
    ref, ours = Reference(url, model), Ours(work / "docs-ours", work / "index", url, model)
    load = {"before": round(os.getloadavg()[0], 2)}
    indexing = {"reference": ref.index(work / "docs-ref"), "ours": ours.index()}
    load["after_indexing"] = round(os.getloadavg()[0], 2)
    with service(work / "docs-ours", work / "index", url, model) as (http_top1, ready_s):
        latency = interleaved({"ours": ours.top1, "ours_http": http_top1, "reference": ref.top1}, queries)
    qvecs = {q: ref.embed_one(q) for q, _ in queries}
    cached = Retriever(CachedQueries({q: np.array(v, np.float32) for q, v in qvecs.items()}))
    scoring = interleaved({"ours": lambda q: ours.top1(q, cached), "reference": lambda q: ref.top1(q, qvecs[q])},
                          queries)
    load["after_queries"] = round(os.getloadavg()[0], 2)
    return {"indexing": indexing, "query_latency": latency, "scoring_only_latency": scoring,
            "ours_http_ready_s_on_existing_index": round(ready_s, 2),
            "ours_reindex_one_changed_file": ours.reindex_one_changed_file(),
            "reference_reindex_one_changed_file": "full rebuild (no incremental path)",
            "load_average_1min": load, "queries": len(queries)}


def report(url: str, model: str, results: dict) -> Path:
    idx, lat, sc = results["indexing"], results["query_latency"], results["scoring_only_latency"]
    ratios = {
        "indexing_chunks_per_s_ours_over_reference": round(idx["ours"]["chunks_per_s"] / idx["reference"]["chunks_per_s"], 2),
        "query_p50_reference_over_ours": round(lat["reference"]["p50_ms"] / lat["ours"]["p50_ms"], 2),
        "query_p95_reference_over_ours": round(lat["reference"]["p95_ms"] / lat["ours"]["p95_ms"], 2),
        "scoring_p50_reference_over_ours": round(sc["reference"]["p50_ms"] / sc["ours"]["p50_ms"], 2),
    }
    path = record("rag", {"embedding_server": {"url": url, "model": model}, "corpus": "pydoc_data topics",
                          "chunk_size": CHUNK_SIZE, "chunk_overlap": CHUNK_OVERLAP, "top_k": TOP_K, **results,
                          "ratios": ratios})
    for name in ("ours", "reference"):
        print(f"{name:<10} indexing: {idx[name]['chunks']} chunks in {idx[name]['index_s']:.1f} s = "
              f"{idx[name]['chunks_per_s']:.1f} chunks/s ({idx[name]['embedding_requests']} embedding requests)")
    for name, row in lat.items():
        print(f"{name:<10} query p50 {row['p50_ms']:7.2f} ms  p95 {row['p95_ms']:7.2f} ms  top-1 {row['top1_hit_rate']}")
    for name, row in sc.items():
        print(f"{name:<10} scoring only p50 {row['p50_ms']:7.3f} ms  p95 {row['p95_ms']:7.3f} ms")
    print(f"ours: one changed file re-indexed: {results['ours_reindex_one_changed_file']}; load {results['load_average_1min']}")
    print(f"ratios: {ratios} -> {path}")
    return path


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--embed-url", default=os.environ.get("LAZYLLM_BENCH_EMBED_URL"))
    p.add_argument("--embed-model", default=os.environ.get("LAZYLLM_BENCH_EMBED_MODEL", "all-minilm-l6-v2"))
    args = p.parse_args()
    if not args.embed_url:
        p.error("--embed-url (or LAZYLLM_BENCH_EMBED_URL) is required: an OpenAI-compatible embedding server")
    try:
        import rank_bm25  # noqa: F401
    except ImportError:
        p.error("the reference pipeline needs rank_bm25: pip install rank_bm25")
    with tempfile.TemporaryDirectory(prefix="rag-bench-") as tmp:
        results = run(Path(tmp), args.embed_url, args.embed_model)
    report(args.embed_url, args.embed_model, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
