"""Command line of the embedding server: parse, resolve the model, serve with uvicorn."""

from __future__ import annotations

import argparse
import functools
import logging
import sys

from .app import State, make_app
from .dtype import DTYPES
from .model import TASKS  # (torch is imported only when a model loads)
from .resolve import ModelNotFound, download, resolve_model

log = logging.getLogger("lazyllm.embed")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m lazyllm_images.runtime.embed_server",
                                description="OpenAI-compatible embedding server on sentence-transformers; "
                                "a cross-encoder model is served as a reranker (/v1/rerank).")
    p.add_argument("--model", required=True,
                   help="model folder, pkg:PACKAGE[/SUBDIR] (a package that ships the weights), or a hub id")
    p.add_argument("--served-model-name", default=None, help="name in /v1/models and responses (default: --model)")
    p.add_argument("--host", default="0.0.0.0")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--task", default="auto", choices=list(TASKS),
                   help="embed (/v1/embeddings) or rerank (/v1/rerank); auto: rerank for a cross-encoder")
    p.add_argument("--dtype", default="auto", choices=list(DTYPES),
                   help="what an embedding model computes in on the CPU: fp32, bf16, int8 (dynamic quantization "
                   "of the Linear layers), or auto (default): measured at start-up on a few fixed texts, the "
                   "fastest mode whose vectors keep a cosine of at least 0.99 to fp32's (on a GPU: fp32)")
    p.add_argument("--batch-size", type=int, default=32, help="most texts encoded together (default 32)")
    p.add_argument("--max-input-chars", type=int, default=100_000,
                   help="longest text accepted, in characters (default 100000); longer ones get a 400")
    p.add_argument("--no-normalize", action="store_true", help="return the model's raw vectors, not unit length")
    p.add_argument("--trust-remote-code", action="store_true", help="allow the model folder's own Python code")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    args = p.parse_args(argv)
    if args.batch_size < 1:
        p.error("--batch-size must be at least 1")
    if args.max_input_chars < 1:
        p.error("--max-input-chars must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        path = resolve_model(args.model)
        if path == args.model and not path.startswith(("/", ".")):     # a hub id
            path = download(path)
    except ModelNotFound as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    log.info("model %s -> %s", args.model, path)

    import uvicorn

    from . import model as model_mod

    state = State(name=args.served_model_name or args.model, max_chars=args.max_input_chars,
                  batch_size=args.batch_size)
    loader = functools.partial(model_mod.load, path, args.device, args.batch_size, not args.no_normalize,
                               args.trust_remote_code, args.task, args.dtype)
    server: uvicorn.Server | None = None

    def on_failure() -> None:
        if server is not None:
            server.should_exit = True

    app = make_app(state, loader, on_failure)
    server = uvicorn.Server(uvicorn.Config(app, host=args.host, port=args.port, log_level=args.log_level,
                                           timeout_graceful_shutdown=5))
    server.run()
    return 1 if state.error else 0
