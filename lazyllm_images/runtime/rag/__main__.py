"""``python -m lazyllm_images.runtime.rag --documents DIR --index DIR --embed-url URL --embed-model NAME ...``"""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
from pathlib import Path

from ..auth import TokenFileError, read_token_file
from ..netaddr import exposure_warning, shout
from .loaders import DEFAULT_MAX_FILE_BYTES

log = logging.getLogger("lazyllm.rag")


def _seconds(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds >= 0 (0: no rescans)")
    return value


def _bytes(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of bytes")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m lazyllm_images.runtime.rag",
                                description="RAG service over a documents folder (hybrid retrieval, optional LLM).")
    p.add_argument("--documents", required=True, type=Path, help="folder of documents (read-only is fine)")
    p.add_argument("--index", required=True, type=Path, help="writable folder for the index (a named volume)")
    p.add_argument("--embed-url", required=True, help="OpenAI-compatible embedding server, e.g. http://embed:8000")
    p.add_argument("--embed-model", required=True, help="model name sent to the embedding server")
    p.add_argument("--embed-key-file", type=Path, help="file holding the embedding server's API key, if any")
    p.add_argument("--embed-batch-size", type=int, default=32, help="texts per embedding request")
    p.add_argument("--llm-url", help="OpenAI-compatible LLM server; without it the service is retrieval-only")
    p.add_argument("--llm-model", help="model name sent to the LLM server")
    p.add_argument("--llm-key-file", type=Path, help="file holding the LLM server's API key, if any")
    p.add_argument("--max-tokens", type=int, default=None, help="cap on the generated answer's tokens")
    p.add_argument("--max-context-chars", type=int, default=8000, help="cap on the passages put in the prompt")
    p.add_argument("--rerank-url", help="infinity/Cohere-style reranker (POST /rerank); optional")
    p.add_argument("--rerank-model", help="model name sent to the reranker")
    p.add_argument("--chunk-size", type=int, default=800, help="characters per chunk (default 800)")
    p.add_argument("--chunk-overlap", type=int, default=120, help="characters of whole sentences carried over")
    p.add_argument("--top-k", type=int, default=5, help="passages per query when the request names none")
    p.add_argument("--watch-interval", type=_seconds, default=5.0, metavar="SECONDS",
                   help="seconds between rescans of the documents folder (default 5); 0: no rescans, only the pass "
                        "at start and those asked for with POST /v1/reindex")
    p.add_argument("--max-file-bytes", type=_bytes, default=DEFAULT_MAX_FILE_BYTES, metavar="N",
                   help="larger files are skipped with a warning and counted in /v1/status (default 50 MiB)")
    p.add_argument("--auth-token-file", type=Path, metavar="FILE",
                   help="require 'Authorization: Bearer TOKEN' (TOKEN: this file's one word) on every route but "
                        "/healthz; without it, a bind beyond loopback prints a loud warning")
    p.add_argument("--served-model-name", default="lazyllm-rag", help="model id shown by /v1/models")
    p.add_argument("--host", default="0.0.0.0")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    return p.parse_args(argv)


def check_args(args: argparse.Namespace) -> str | None:
    """The first problem with the arguments, as a message, or None (sets ``args.auth_token``)."""
    if not args.documents.is_dir():
        return f"documents folder not found: {args.documents}"
    if bool(args.llm_url) != bool(args.llm_model):
        return "--llm-url and --llm-model go together"
    if bool(args.rerank_url) != bool(args.rerank_model):
        return "--rerank-url and --rerank-model go together"
    if args.chunk_size < 50 or not 0 <= args.chunk_overlap < args.chunk_size:
        return "--chunk-size must be at least 50 and --chunk-overlap between 0 and the chunk size"
    try:
        args.index.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return f"cannot create the index folder {args.index}: {exc.strerror or exc}"
    if not os.access(args.index, os.W_OK):
        return f"the index folder is not writable: {args.index}"
    for f in (args.embed_key_file, args.llm_key_file):
        if f is not None and not f.is_file():
            return f"key file not found: {f}"
    try:
        args.auth_token = read_token_file(args.auth_token_file) if args.auth_token_file else None
    except TokenFileError as exc:
        return str(exc)
    return None


def read_key(path: Path | None) -> str | None:
    """A secret from a file the launcher mounted (never from argv or the environment)."""
    return path.read_text().strip() or None if path else None


def build_service(args: argparse.Namespace):
    from .app import RagService
    from .embeddings import EmbeddingClient
    from .generate import LLMClient
    from .indexer import Indexer
    from .watch import Watcher
    from .rerank import RerankClient
    from .retrieve import Retriever
    from .store import Store

    embedder = EmbeddingClient(args.embed_url, args.embed_model, batch_size=args.embed_batch_size,
                               api_key=read_key(args.embed_key_file))
    indexer = Indexer(args.documents.resolve(), Store(args.index), embedder, args.chunk_size, args.chunk_overlap,
                      batch_size=args.embed_batch_size, max_file_bytes=args.max_file_bytes)
    reranker = RerankClient(args.rerank_url, args.rerank_model) if args.rerank_url else None
    llm = LLMClient(args.llm_url, args.llm_model, api_key=read_key(args.llm_key_file),
                    max_tokens=args.max_tokens) if args.llm_url else None
    return RagService(indexer, Watcher(indexer, args.watch_interval), Retriever(embedder, reranker), llm,
                   args.served_model_name, args.top_k, args.max_context_chars)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per embedding request is noise
    problem = check_args(args)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    import uvicorn

    from .app import create_app

    service = build_service(args)
    shout(exposure_warning("the RAG service", args.host, args.auth_token, "Pass --auth-token-file or bind "
                           "127.0.0.1.", can="query the documents and read them back"))
    if service.llm:
        log.info("generation: answers from %s at %s", service.llm.model, service.llm.url)
    else:
        log.info("no LLM configured (--llm-url/--llm-model): retrieval-only mode, 'answer' is null")
    log.info("documents %s, index %s, embeddings %s (%s)", args.documents.resolve(), args.index,
             args.embed_model, args.embed_url)
    uvicorn.run(create_app(service, args.auth_token), host=args.host, port=args.port, log_level=args.log_level)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
