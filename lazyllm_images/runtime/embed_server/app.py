"""The Starlette app: routes over a model that loads in the background (``/healthz`` is 503 until it is ready)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from . import protocol
from .model import LoadedModel
from .worker import EmbedWorker

log = logging.getLogger("lazyllm.embed")

Loader = Callable[[], LoadedModel]


@dataclass
class State:
    name: str
    max_chars: int
    batch_size: int
    created: int = field(default_factory=lambda: int(time.time()))
    model: LoadedModel | None = None
    worker: EmbedWorker | None = None
    error: str | None = None

    def require_ready(self, task: str) -> tuple[LoadedModel, EmbedWorker]:
        """The model and its worker, when loaded and of ``task`` (embed | rerank)."""
        if self.model is None or self.worker is None:
            msg = f"model failed to load: {self.error}" if self.error else "the model is still loading; retry shortly"
            raise protocol.RequestError(msg, status=503, type_="service_unavailable")
        if self.model.task != task:
            raise protocol.RequestError(WRONG_TASK[self.model.task], code="wrong_model_type")
        return self.model, self.worker

    def check_model(self, name: str | None) -> None:
        if name is not None and name != self.name:
            raise protocol.RequestError(f"the model '{name}' does not exist; this server serves '{self.name}'",
                                        status=404, param="model", code="model_not_found")


WRONG_TASK = {
    "embed": "this server serves an embedding model: POST /v1/embeddings; /v1/rerank needs a reranker "
             "(a cross-encoder)",
    "rerank": "this server serves a reranker (a cross-encoder): POST /v1/rerank with a query and documents; "
              "it gives no embeddings",
}


def _error(exc: protocol.RequestError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status)


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise protocol.RequestError(f"the request body is not valid JSON: {exc}") from exc


async def _run(worker: EmbedWorker, items: list) -> tuple[list, int]:
    try:
        result = await asyncio.wrap_future(worker.submit(items))
    except Exception as exc:
        raise protocol.RequestError(f"encoding failed: {exc}", status=500, type_="server_error") from exc
    return result.outputs, result.tokens


async def _embed(state: State, req: protocol.EmbeddingRequest) -> tuple[LoadedModel, list[list[float]], int]:
    model, worker = state.require_ready("embed")
    if req.dimensions is not None and req.dimensions > model.dimensions:
        raise protocol.RequestError(f"'dimensions' is {req.dimensions}; this model gives at most {model.dimensions}",
                                    param="dimensions")
    vectors, tokens = await _run(worker, req.texts)
    return model, vectors, tokens


class Handlers:
    """The routes over one ``State``; the model loads in a background thread started by the lifespan."""

    def __init__(self, state: State, loader: Loader, on_load_failure: Callable[[], None]) -> None:
        self.state, self.loader, self.on_load_failure = state, loader, on_load_failure

    async def embeddings(self, request: Request) -> JSONResponse:
        state = self.state
        try:
            req = protocol.parse_openai(await _json_body(request), state.max_chars)
            state.check_model(req.model)
            model, vectors, tokens = await _embed(state, req)
        except protocol.RequestError as exc:
            return _error(exc)
        return JSONResponse(protocol.openai_response(req, vectors, tokens, state.name, model.normalized))

    async def generate(self, request: Request) -> JSONResponse:
        try:
            req = protocol.parse_generate(await _json_body(request), self.state.max_chars)
            _, vectors, _ = await _embed(self.state, req)
        except protocol.RequestError as exc:
            return _error(exc)
        return JSONResponse(protocol.generate_response(req, vectors))

    async def rerank(self, request: Request) -> JSONResponse:
        state = self.state
        try:
            req = protocol.parse_rerank(await _json_body(request), state.max_chars)
            state.check_model(req.model)
            _, worker = state.require_ready("rerank")
            scores, tokens = await _run(worker, [(req.query, d) for d in req.documents])
        except protocol.RequestError as exc:
            return _error(exc)
        return JSONResponse(protocol.rerank_response(req, scores, tokens, state.name))

    async def models(self, request: Request) -> JSONResponse:
        model = self.state.model            # once loaded, the mode it runs in and how --dtype chose it
        extra = {"dtype": model.dtype, "dtype_choice": model.dtype_choice} if model is not None else None
        return JSONResponse(protocol.models_response(self.state.name, self.state.created, extra=extra))

    async def healthz(self, request: Request) -> JSONResponse:
        state = self.state
        if state.model is not None:
            return JSONResponse({"status": "ok", "model": state.name, "task": state.model.task,
                                 "dimensions": state.model.dimensions, "device": state.model.device})
        status = "failed" if state.error else "loading"
        return JSONResponse({"status": status, "model": state.name, "error": state.error}, status_code=503)

    def load(self) -> None:
        try:
            model = self.loader()
        except Exception as exc:  # reported by /healthz and the exit status
            log.exception("loading the model failed")
            self.state.error = f"{type(exc).__name__}: {exc}"
            self.on_load_failure()
            return
        self.state.worker = EmbedWorker(model.encode, self.state.batch_size).start()
        self.state.model = model

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        threading.Thread(target=self.load, name="embed-loader", daemon=True).start()
        yield
        if self.state.worker is not None:
            self.state.worker.stop()


def make_app(state: State, loader: Loader, on_load_failure: Callable[[], None] = lambda: None) -> Starlette:
    h = Handlers(state, loader, on_load_failure)
    routes = [
        Route("/v1/embeddings", h.embeddings, methods=["POST"]),
        Route("/embeddings", h.embeddings, methods=["POST"]),
        Route("/generate", h.generate, methods=["POST"]),
        Route("/v1/rerank", h.rerank, methods=["POST"]),
        Route("/rerank", h.rerank, methods=["POST"]),
        Route("/v1/models", h.models, methods=["GET"]),
        Route("/healthz", h.healthz, methods=["GET"]),
    ]
    return Starlette(routes=routes, lifespan=h.lifespan)
