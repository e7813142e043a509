"""RAG indexing throughput and query latency at about 1,000 chunks: our RAG service next to LlamaIndex's in-memory
pipeline (llama-index-core: VectorStoreIndex over its SimpleVectorStore), what a user would pick instead, measured
in the same run against the same embedding server.

Both pipelines, alike:
  embedding server  the project's (`lazyllm deploy all-MiniLM-L6-v2 --framework embedding`, OpenAI-style
                    /v1/embeddings), deployed by this script unless --embed-url names one; both send batches of
                    BATCH texts, one request at a time (LlamaIndex through a BaseEmbedding subclass that posts to
                    that endpoint: its default batch is 10, set to ours);
  chunking          sentence-aware, at most CHUNK_SIZE characters with up to CHUNK_OVERLAP characters of overlap:
                    ours counts characters; LlamaIndex's SentenceSplitter is given a character tokenizer
                    (tokenizer=list) and the file name is left out of both the chunk size and the embedded text
                    (include_metadata=False, excluded_embed_metadata_keys), so both embed the chunk text alone;
  corpus            the Python documentation topics shipped with the interpreter (pydoc_data), one .txt file per
                    topic, read from disk by each pipeline inside its timed indexing;
  queries           one per topic ("How does <topic> work in Python?"), top-k TOP_K, concurrency 1 from this one
                    process, ROUNDS rounds over the queries after WARMUP warm-up queries (not counted); the
                    pipelines are interleaved (each query asked of each in turn, rotating who goes first), so
                    load from other processes falls on all alike.

Ours: sentence-aware chunks, identical chunk texts embedded once, sqlite index, cosine over a normalised matrix +
BM25, fused by reciprocal rank, in-process (lazyllm_images.runtime.rag) and as the service process over HTTP.
LlamaIndex: dense retrieval only (its default VectorStoreIndex retriever; a BM25 retriever is a separate package).
"Scoring only" leaves the query's embedding request out (query vectors computed beforehand and handed to both).
The top-1 source hit rate (expected file: the topic's own) is a side metric, not a quality benchmark.

Run: .venv/bin/python bench/rag.py [--embed-url URL --embed-model NAME]   (or make bench; needs the `bench`
extra: llama-index-core). Results: bench/results/rag.json.
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
from typing import Any, Callable, Iterator

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(REPO))
from common import package_version, record  # noqa: E402

from lazyllm_images.runtime.rag.embeddings import EmbeddingClient, normalise  # noqa: E402
from lazyllm_images.runtime.rag.indexer import Indexer  # noqa: E402
from lazyllm_images.runtime.rag.retrieve import Retriever  # noqa: E402
from lazyllm_images.runtime.rag.store import Store  # noqa: E402

CHUNK_SIZE, CHUNK_OVERLAP, TOP_K, BATCH = 512, 64, 5, 32
WARMUP, ROUNDS = 5, 3
MODEL = "all-MiniLM-L6-v2"
SERVICE = "lazyllm-bench-rag-embed"
Query = tuple[str, str]  # (question, expected file)


def write_corpus(folder: Path) -> list[Query]:
    from pydoc_data.topics import topics

    folder.mkdir(parents=True)
    for key in sorted(topics):
        (folder / f"{key}.txt").write_text(topics[key])
    return [(f"How does {key.replace('-', ' ')} work in Python?", f"{key}.txt") for key in sorted(topics)]


def percentiles(samples: list[float]) -> dict:
    s = sorted(samples)

    def pick(q: float) -> float:
        return round(1000 * s[min(len(s) - 1, int(round(q * (len(s) - 1))))], 2)
    return {"p50_ms": round(1000 * statistics.median(s), 2), "p95_ms": pick(0.95), "p99_ms": pick(0.99),
            "mean_ms": round(1000 * statistics.fmean(s), 2), "n": len(s)}


def interleaved(fns: dict[str, Callable[[str], str]], queries: list[Query], rounds: int = ROUNDS,
                warmup: int = WARMUP) -> dict:
    """WARMUP queries (not counted), then ROUNDS rounds over ``queries``; for each query every ``fn(query) -> top-1
    path`` in turn, rotating who goes first: latency percentiles and top-1 hit rate (first round) per name."""
    names = list(fns)
    samples: dict[str, list[float]] = {n: [] for n in names}
    hits = dict.fromkeys(names, 0)
    plan = queries[:warmup] + queries * rounds
    for i, (q, expected) in enumerate(plan):
        for name in names[i % len(names):] + names[:i % len(names)]:
            start = time.perf_counter()
            top = fns[name](q)
            elapsed = time.perf_counter() - start
            if i >= warmup:
                samples[name].append(elapsed)
                if i < warmup + len(queries):
                    hits[name] += top == expected
    return {n: {**percentiles(samples[n]), "top1_hit_rate": round(hits[n] / len(queries), 3)} for n in names}


class Ours:
    def __init__(self, docs: Path, index: Path, url: str, model: str) -> None:
        self.embedder = EmbeddingClient(url, model, batch_size=BATCH)
        self.indexer = Indexer(docs, Store(index), self.embedder, CHUNK_SIZE, CHUNK_OVERLAP, batch_size=BATCH)
        self.retriever = Retriever(self.embedder)

    def index(self) -> dict:
        start = time.perf_counter()
        summary = self.indexer.run_pass()
        seconds = time.perf_counter() - start
        chunks = len(self.indexer.snapshot)
        counts = self.embedder.counters()["index"]
        return {"chunks": chunks, "texts_embedded": counts["texts"], "index_s": round(seconds, 3),
                "chunks_per_s": round(chunks / seconds, 1), "embedding_requests": counts["calls"],
                "chunks_embedded": summary.chunks_embedded}

    def top1(self, query: str, retriever: Retriever | None = None) -> str:
        return (retriever or self.retriever).search(self.indexer.snapshot, query, TOP_K)[0].path

    def reindex_one_changed_file(self) -> dict:
        first = sorted(self.indexer.root.iterdir())[0]
        first.write_text(first.read_text() + "\n\nA sentence added to one file.")
        before = self.embedder.counters()["index"]["texts"]
        start = time.perf_counter()
        again = self.indexer.run_pass()
        return {"seconds": round(time.perf_counter() - start, 3), "chunks_embedded": again.chunks_embedded,
                "texts_embedded": self.embedder.counters()["index"]["texts"] - before}


class CachedQueries:
    """Query vectors computed beforehand: isolates the local scoring cost from the embedding request."""
    model = "cached"

    def __init__(self, vectors: dict[str, np.ndarray]) -> None:
        self.vectors = vectors

    def embed(self, texts: list[str], kind: str = "index") -> np.ndarray:
        return normalise(np.array([self.vectors[texts[0]]], dtype=np.float32))


def server_embedding(url: str, model: str) -> Any:
    """A LlamaIndex embedding class for an OpenAI-compatible /v1/embeddings server (the "custom embeddings" of
    LlamaIndex's documentation), counting its requests and texts."""
    from llama_index.core.bridge.pydantic import PrivateAttr
    from llama_index.core.embeddings import BaseEmbedding

    class ServerEmbedding(BaseEmbedding):
        _url: str = PrivateAttr()
        _http: httpx.Client = PrivateAttr()
        _counts: dict = PrivateAttr()

        def __init__(self, url: str, model: str, **kwargs: Any) -> None:
            super().__init__(model_name=model, **kwargs)
            self._url = url.rstrip("/").removesuffix("/v1") + "/v1/embeddings"
            self._http = httpx.Client(timeout=120)
            self._counts = {"index": {"calls": 0, "texts": 0}, "query": {"calls": 0, "texts": 0}}

        def _post(self, texts: list[str], kind: str) -> list[list[float]]:
            response = self._http.post(self._url, json={"model": self.model_name, "input": texts})
            response.raise_for_status()
            self._counts[kind]["calls"] += 1
            self._counts[kind]["texts"] += len(texts)
            return [d["embedding"] for d in sorted(response.json()["data"], key=lambda d: d.get("index", 0))]

        def counters(self) -> dict:
            return {k: dict(v) for k, v in self._counts.items()}

        def _get_query_embedding(self, query: str) -> list[float]:
            return self._post([query], "query")[0]

        def _get_text_embedding(self, text: str) -> list[float]:
            return self._post([text], "index")[0]

        def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
            return self._post(texts, "index")

        async def _aget_query_embedding(self, query: str) -> list[float]:
            return self._get_query_embedding(query)

    return ServerEmbedding(url, model, embed_batch_size=BATCH)


class LlamaIndexPipeline:
    """LlamaIndex's in-memory pipeline: Documents -> SentenceSplitter -> VectorStoreIndex (SimpleVectorStore),
    retrieved with index.as_retriever(similarity_top_k=TOP_K)."""

    def __init__(self, docs: Path, url: str, model: str) -> None:
        self.docs = docs
        self.embed_model = server_embedding(url, model)
        self.index_ = None
        self.retriever = None

    def documents(self) -> list:
        from llama_index.core import Document

        return [Document(id_=p.name, text=p.read_text(), metadata={"path": p.name},
                         excluded_embed_metadata_keys=["path"], excluded_llm_metadata_keys=["path"])
                for p in sorted(self.docs.iterdir())]

    def splitter(self) -> Any:
        from llama_index.core.node_parser import SentenceSplitter

        return SentenceSplitter(chunk_size=CHUNK_SIZE, chunk_overlap=CHUNK_OVERLAP, tokenizer=list,
                                include_metadata=False)

    def index(self) -> dict:
        from llama_index.core import VectorStoreIndex

        start = time.perf_counter()
        self.index_ = VectorStoreIndex.from_documents(self.documents(), transformations=[self.splitter()],
                                                      embed_model=self.embed_model)
        seconds = time.perf_counter() - start
        self.retriever = self.index_.as_retriever(similarity_top_k=TOP_K)
        chunks = len(self.index_.index_struct.nodes_dict)
        counts = self.embed_model.counters()["index"]
        return {"chunks": chunks, "texts_embedded": counts["texts"], "index_s": round(seconds, 3),
                "chunks_per_s": round(chunks / seconds, 1), "embedding_requests": counts["calls"]}

    def top1(self, query: str, qvec: list[float] | None = None) -> str:
        from llama_index.core import QueryBundle

        bundle = QueryBundle(query_str=query, embedding=qvec) if qvec is not None else query
        return self.retriever.retrieve(bundle)[0].node.ref_doc_id  # the Document id: its file name

    def reindex_one_changed_file(self) -> dict:
        """LlamaIndex's incremental path: refresh_ref_docs re-embeds the documents whose hash changed."""
        first = sorted(self.docs.iterdir())[0]
        first.write_text(first.read_text() + "\n\nA sentence added to one file.")
        before = self.embed_model.counters()["index"]["texts"]
        start = time.perf_counter()
        refreshed = self.index_.refresh_ref_docs(self.documents())
        return {"seconds": round(time.perf_counter() - start, 3), "documents_refreshed": sum(refreshed),
                "texts_embedded": self.embed_model.counters()["index"]["texts"] - before}


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


@contextmanager
def embedding_server(url: str | None) -> Iterator[str]:
    """URL given: that server. Else the project's embedding server, deployed for this run and stopped after."""
    if url:
        yield url
        return
    env = {**os.environ, "LAZYLLM_BASE": os.environ.get("LAZYLLM_BASE", "offline")}
    lazyllm = [sys.executable, "-m", "lazyllm_images"]
    subprocess.run([*lazyllm, "stop", SERVICE], capture_output=True, env=env)
    out = subprocess.run([*lazyllm, "deploy", MODEL, "--framework", "embedding", "--name", SERVICE],
                         capture_output=True, text=True, env=env)
    try:
        if out.returncode:
            raise SystemExit(f"lazyllm deploy failed:\n{out.stdout[-2000:]}{out.stderr[-2000:]}")
        endpoint = next(line.split()[1] for line in out.stdout.splitlines() if line.startswith("endpoint:"))
        with httpx.Client(timeout=10) as http:                 # deploy returns once healthy; make sure it answers
            deadline = time.monotonic() + 300
            while http.post(f"{endpoint}/embeddings", json={"model": MODEL, "input": ["hello"]}).status_code != 200:
                if time.monotonic() > deadline:
                    raise SystemExit(f"{endpoint} never answered")
                time.sleep(0.5)
        yield endpoint
    finally:
        subprocess.run([*lazyllm, "stop", SERVICE], capture_output=True, env=env)


def run(work: Path, url: str, model: str) -> dict:
    queries = write_corpus(work / "docs-ours")
    write_corpus(work / "docs-llamaindex")
    ours = Ours(work / "docs-ours", work / "index", url, model)
    peer = LlamaIndexPipeline(work / "docs-llamaindex", url, model)
    ours.embedder.embed(["warm-up"], kind="warmup")                # one request each before timing (connections)
    peer.embed_model.get_query_embedding("warm-up")
    load = {"before": round(os.getloadavg()[0], 2)}
    indexing = {"ours": ours.index()}
    load["after_ours_indexing"] = round(os.getloadavg()[0], 2)
    indexing["llamaindex"] = peer.index()
    load["after_llamaindex_indexing"] = round(os.getloadavg()[0], 2)
    with service(work / "docs-ours", work / "index", url, model) as (http_top1, ready_s):
        latency = interleaved({"ours": ours.top1, "ours_http": http_top1, "llamaindex": peer.top1}, queries)
    qvecs = {q: peer.embed_model.get_query_embedding(q) for q, _ in queries}
    cached = Retriever(CachedQueries({q: np.array(v, np.float32) for q, v in qvecs.items()}))
    scoring = interleaved({"ours": lambda q: ours.top1(q, cached), "llamaindex": lambda q: peer.top1(q, qvecs[q])},
                          queries)
    load["after_queries"] = round(os.getloadavg()[0], 2)
    return {"indexing": indexing, "query_latency": latency, "scoring_only_latency": scoring,
            "ours_http_ready_s_on_existing_index": round(ready_s, 2),
            "reindex_one_changed_file": {"ours": ours.reindex_one_changed_file(),
                                         "llamaindex": peer.reindex_one_changed_file()},
            "load_average_1min": load, "queries": len(queries), "rounds": ROUNDS, "warmup_queries": WARMUP}


def report(url: str, model: str, deployed: bool, results: dict) -> Path:
    idx, lat, sc = results["indexing"], results["query_latency"], results["scoring_only_latency"]
    ours, peer = lat["ours"], lat["llamaindex"]
    pcts = ("p50", "p95", "p99")
    ratios = {
        "indexing_chunks_per_s_ours_over_llamaindex": round(idx["ours"]["chunks_per_s"]
                                                            / idx["llamaindex"]["chunks_per_s"], 2),
        "indexing_wall_llamaindex_over_ours": round(idx["llamaindex"]["index_s"] / idx["ours"]["index_s"], 2),
        **{f"query_{p}_llamaindex_over_ours": round(peer[f"{p}_ms"] / ours[f"{p}_ms"], 2) for p in pcts},
        **{f"query_http_{p}_llamaindex_over_ours_http": round(peer[f"{p}_ms"] / lat["ours_http"][f"{p}_ms"], 2)
           for p in pcts},
        **{f"scoring_{p}_llamaindex_over_ours": round(sc["llamaindex"][f"{p}_ms"] / sc["ours"][f"{p}_ms"], 2)
           for p in pcts},
    }
    version = package_version("llama-index-core")
    path = record("rag", {
        "embedding_server": {"url": url, "model": model,
                             "deployed_as": f"lazyllm deploy {MODEL} --framework embedding" if deployed
                             else "given (--embed-url)"},
        "corpus": "pydoc_data topics (one .txt per topic)",
        "chunking": {"unit": "characters", "chunk_size": CHUNK_SIZE, "chunk_overlap": CHUNK_OVERLAP,
                     "ours": "sentence-aware packing (lazyllm_images.runtime.rag.chunking)",
                     "llamaindex": "SentenceSplitter(tokenizer=list, include_metadata=False)"},
        "top_k": TOP_K, "embedding_batch": BATCH, "query_concurrency": 1,
        "retrieval": {"ours": "dense cosine + BM25, reciprocal rank fusion",
                      "llamaindex": "dense cosine (VectorStoreIndex.as_retriever)"},
        **results, "ratios": ratios},
        peer={"name": "llama-index-core (VectorStoreIndex, in-memory SimpleVectorStore)", "version": version})
    for name in ("ours", "llamaindex"):
        row = idx[name]
        print(f"{name:<11} indexing: {row['chunks']} chunks in {row['index_s']:.1f} s = {row['chunks_per_s']:.1f} "
              f"chunks/s ({row['embedding_requests']} embedding requests, {row['texts_embedded']} texts)")
    for name, row in lat.items():
        print(f"{name:<11} query p50 {row['p50_ms']:7.2f} ms  p95 {row['p95_ms']:7.2f} ms  p99 {row['p99_ms']:7.2f} ms"
              f"  top-1 {row['top1_hit_rate']}")
    for name, row in sc.items():
        print(f"{name:<11} scoring only p50 {row['p50_ms']:7.3f} ms  p95 {row['p95_ms']:7.3f} ms  "
              f"p99 {row['p99_ms']:7.3f} ms")
    print(f"one changed file re-indexed: {results['reindex_one_changed_file']}; load {results['load_average_1min']}")
    print(f"ratios: {ratios} -> {path}")
    return path


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--embed-url", default=os.environ.get("LAZYLLM_BENCH_EMBED_URL"),
                   help="an OpenAI-compatible embedding server (default: deploy the project's for this run)")
    p.add_argument("--embed-model", default=os.environ.get("LAZYLLM_BENCH_EMBED_MODEL", MODEL))
    args = p.parse_args()
    try:
        import llama_index.core  # noqa: F401
    except ImportError:
        p.error("the peer pipeline needs llama-index-core: pip install -e '.[bench]'")
    with embedding_server(args.embed_url) as url, tempfile.TemporaryDirectory(prefix="rag-bench-") as tmp:
        results = run(Path(tmp), url, args.embed_model)
        return 0 if report(url, args.embed_model, not args.embed_url, results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
