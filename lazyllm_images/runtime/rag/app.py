"""The HTTP API (Starlette).

- ``POST /v1/query`` ``{"query": str, "top_k": int}`` -> ``{"answer": str | null, "sources": [{"path", "text",
  "score"}]}``: ``path`` is relative to the documents root, ``score`` the reciprocal-rank-fusion score (the
  reranker's relevance when one is configured); ``answer`` is null in retrieval-only mode.
- ``POST /v1/chat/completions``: OpenAI-compatible, plain and streamed; the last user message is the query, the
  earlier turns go to the LLM as history; a top-level ``"sources"`` list rides on the response (on the final chunk
  when streamed); ``[n]`` in the answer is ``sources[n-1]``.
- ``GET /v1/models``, ``GET /v1/status`` (mode, counts, skipped files, progress, the last pass, embedding counters
  per kind: ``{"index": {"calls", "texts"}, "query": {...}}``), ``POST /v1/reindex`` (runs a pass, answers with its
  summary), ``GET /healthz`` (200 once the first pass is done, 503 before).
- With ``--auth-token-file`` every route but ``/healthz`` needs ``Authorization: Bearer TOKEN`` (401 without).
- Bad bodies -> 400 ``{"error": {"message", "type"}}``; an unreachable embedding or LLM server -> 502.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import AsyncGenerator, AsyncIterator

import anyio
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from ..auth import TokenGate
from ..sse import encode
from .api_models import BadRequest, ChatRequest, parse_chat, parse_query
from .embeddings import EmbeddingError
from .generate import GenerationError, LLMClient, build_messages, retrieval_only_text
from .indexer import Indexer
from .watch import Watcher
from .retrieve import Passage, Retriever

log = logging.getLogger("lazyllm.rag")


@dataclass
class RagService:
    """Everything the routes need; built by ``__main__`` (or a test) and handed to ``create_app``."""
    indexer: Indexer
    watcher: Watcher
    retriever: Retriever
    llm: LLMClient | None
    served_model: str
    default_top_k: int = 5
    max_context_chars: int = 8000

    @property
    def mode(self) -> str:
        return "generation" if self.llm else "retrieval-only"

    async def search(self, query: str, top_k: int) -> list[Passage]:
        snapshot = self.indexer.snapshot  # the snapshot in force when the query arrived
        return await anyio.to_thread.run_sync(self.retriever.search, snapshot, query, top_k)


def error(status: int, message: str, kind: str = "invalid_request_error") -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind}}, status_code=status)


async def _json(request: Request) -> object:
    try:
        return json.loads(await request.body() or b"null")
    except ValueError as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}") from exc


def _not_ready(service: RagService) -> JSONResponse | None:
    if not service.watcher.ready.is_set() and not len(service.indexer.snapshot):
        return error(503, "the index is not ready yet (first indexing pass running): see /v1/status", "not_ready")
    return None


def _service(request: Request) -> RagService:
    return request.app.state.service


async def query(request: Request) -> Response:
    service = _service(request)
    try:
        req = parse_query(await _json(request), service.default_top_k)
    except BadRequest as exc:
        return error(400, str(exc))
    if (busy := _not_ready(service)) is not None:
        return busy
    try:
        passages = await service.search(req.query, req.top_k)
        answer = None
        if service.llm:
            answer = await service.llm.complete(
                build_messages(req.query, passages, max_context_chars=service.max_context_chars))
    except (EmbeddingError, GenerationError) as exc:
        return error(502, str(exc), "upstream_error")
    return JSONResponse({"answer": answer, "sources": [p.as_source() for p in passages]})


async def chat(request: Request) -> Response:
    service = _service(request)
    try:
        req = parse_chat(await _json(request), service.default_top_k)
    except BadRequest as exc:
        return error(400, str(exc))
    if (busy := _not_ready(service)) is not None:
        return busy
    try:
        passages = await service.search(req.query, req.top_k)
    except EmbeddingError as exc:
        return error(502, str(exc), "upstream_error")
    if req.stream:
        return await _stream_response(service, req, passages)
    try:
        text = await _answer(service, req, passages)
    except GenerationError as exc:
        return error(502, str(exc), "upstream_error")
    return JSONResponse(_completion(service.served_model, text, passages))


async def models(request: Request) -> Response:
    return JSONResponse({"object": "list", "data": [
        {"id": _service(request).served_model, "object": "model", "created": 0, "owned_by": "lazyllm-rag"}]})


async def status(request: Request) -> Response:
    return JSONResponse(status_payload(_service(request)))


async def reindex(request: Request) -> Response:
    """Run a pass now and answer with its summary (500 when it failed, e.g. the embedding server is down)."""
    summary = await asyncio.wrap_future(_service(request).watcher.request())
    body = summary.as_dict() if summary else {}
    return JSONResponse(body, status_code=200 if summary and not summary.error else 500)


async def healthz(request: Request) -> Response:
    ready = _service(request).watcher.ready.is_set()
    return JSONResponse({"status": "ok" if ready else "indexing"}, status_code=200 if ready else 503)


ROUTES = [
    Route("/v1/query", query, methods=["POST"]),
    Route("/v1/chat/completions", chat, methods=["POST"]),
    Route("/v1/models", models),
    Route("/v1/status", status),
    Route("/v1/reindex", reindex, methods=["POST"]),
    Route("/healthz", healthz),
]


def create_app(service: RagService, token: str | None = None) -> Starlette:
    """The app; the watcher starts with it (first pass in the background) and stops with it. With TOKEN every route
    but /healthz needs ``Authorization: Bearer TOKEN``."""
    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        service.watcher.start()
        try:
            yield
        finally:
            await anyio.to_thread.run_sync(service.watcher.stop)
            if service.llm:
                await service.llm.aclose()

    gate = [Middleware(TokenGate, token=token, realm="lazyllm-rag")] if token else []
    app = Starlette(lifespan=lifespan, routes=ROUTES, middleware=gate)
    app.state.service = service
    return app


def status_payload(service: RagService) -> dict:
    indexer = service.indexer
    embedder = service.retriever.embedder
    return {
        "ready": service.watcher.ready.is_set(),
        "mode": service.mode,
        "llm_model": service.llm.model if service.llm else None,
        "embed_model": getattr(embedder, "model", None),
        "reranker": getattr(service.retriever.reranker, "model", None),
        "documents": str(indexer.root),
        **indexer.stats(),
        "passes": indexer.passes,
        "indexing": indexer.progress.as_dict(),
        "last_pass": indexer.last.as_dict() if indexer.last else None,
        "embedding": embedder.counters() if hasattr(embedder, "counters") else {},
    }


async def _answer(service: RagService, req: ChatRequest, passages: list[Passage]) -> str:
    if not service.llm:
        return retrieval_only_text(passages)
    messages = build_messages(req.query, passages, req.history, service.max_context_chars)
    return await service.llm.complete(messages)


def _chunk(cid: str, model: str, delta: dict, finish: str | None = None, **extra: object) -> bytes:
    body = {"id": cid, "object": "chat.completion.chunk", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}
    return encode(body)


async def _deltas(service: RagService, req: ChatRequest, passages: list[Passage]) -> AsyncGenerator[str, None]:
    if not service.llm:
        yield retrieval_only_text(passages)
        return
    messages = build_messages(req.query, passages, req.history, service.max_context_chars)
    async for delta in service.llm.stream(messages):
        yield delta


async def _stream_response(service: RagService, req: ChatRequest, passages: list[Passage]) -> Response:
    """A stream, once the LLM has sent its first words: a failure before them (HTTP error, an error event) is a
    502 with the LLM's message; one after them is an error event in the stream."""
    deltas = _deltas(service, req, passages)
    try:
        first = await deltas.__anext__()
    except StopAsyncIteration:
        first = ""
    except GenerationError as exc:
        log.error("generation failed: %s", exc)
        await deltas.aclose()
        return error(502, str(exc), "upstream_error")
    return StreamingResponse(_stream_chat(service.served_model, first, deltas, passages),
                             media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


async def _stream_chat(model: str, first: str, deltas: AsyncGenerator[str, None],
                       passages: list[Passage]) -> AsyncIterator[bytes]:
    """OpenAI chunks: the role, the content deltas, then a final chunk with finish_reason and ``sources``."""
    cid = f"chatcmpl-{uuid.uuid4().hex}"
    yield _chunk(cid, model, {"role": "assistant", "content": ""})
    finish = "stop"
    try:
        if first:
            yield _chunk(cid, model, {"content": first})
        async for delta in deltas:
            yield _chunk(cid, model, {"content": delta})
    except GenerationError as exc:
        log.error("generation failed: %s", exc)
        yield encode({"error": {"message": str(exc), "type": "upstream_error"}})
        finish = "error"
    finally:
        await deltas.aclose()           # also when the client left: the upstream request is closed
    yield _chunk(cid, model, {}, finish, sources=[p.as_source() for p in passages])
    yield b"data: [DONE]\n\n"


def _completion(model: str, text: str, passages: list[Passage]) -> dict:
    return {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "sources": [p.as_source() for p in passages]}
