"""The graph as a service: ``python -m lazyllm_images.runtime.graph serve G.json --port 8000 [--sandbox SOCKET]
[--services FILE] [--auth-token-file F]``.

- ``POST /v1/run`` ``{"input": VALUE}`` or ``{"args": [...]}`` -> ``{"ok": true, "result": ...}`` or ``{"ok": false,
  "error": "node \"1\" (name) raised ValueError: boom", "hint": ...}`` (422); with ``"stream": true`` (or ``Accept:
  text/event-stream``) the run's events as Server-Sent Events: ``run_started``, ``node_started``/``node_finished``
  with timings, ``text_delta`` of streaming models, ``log``, ``warning``, then ``run_finished`` with the result, then
  ``data: [DONE]``.
- ``POST /generate``: upstream's route, the body the input itself, the answer JSON (not a pickle).
- ``POST /v1/chat/completions``: OpenAI's shape over the graph (the last user message is the input), so the chat
  page can sit in front of it; ``GET /v1/graph``: the graph's nodes and the services it uses; ``GET /healthz``.
A JSON API, not upstream's pickle over HTTP.
"""

from __future__ import annotations

import json
import queue
import threading
import time
import uuid

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from ..sse import encode
from .executor import Executor

MAX_BODY = 1 << 20


class Runs:
    """One executor for the graph; each run's events go to that run's queue (the executor's callback is shared)."""

    def __init__(self, build) -> None:
        self.queues: dict[str, queue.Queue] = {}
        self.lock = threading.Lock()
        self.executor: Executor = build(self.dispatch)

    def dispatch(self, event: dict) -> None:
        with self.lock:
            q = self.queues.get(event.get("run_id", ""))
        if q is not None:
            q.put(event)

    def start(self, args: list) -> tuple[str, queue.Queue, threading.Thread]:
        run_id = uuid.uuid4().hex[:12]
        q: queue.Queue = queue.Queue()
        with self.lock:
            self.queues[run_id] = q

        def work() -> None:
            try:
                self.executor.run_result(*args, run_id=run_id)
            finally:
                q.put(None)
                with self.lock:
                    self.queues.pop(run_id, None)
        thread = threading.Thread(target=work, name=f"run-{run_id}", daemon=True)
        thread.start()
        return run_id, q, thread


def _finished(q: queue.Queue) -> dict:
    """Drain a run's queue up to its end: the ``run_finished`` event."""
    final: dict = {}
    while True:
        event = q.get()
        if event is None:
            return final
        if event["type"] == "run_finished":
            final = event


async def _body(request: Request) -> dict | JSONResponse:
    raw = await request.body()
    if len(raw) > MAX_BODY:
        return _error(413, f"the body is over {MAX_BODY} bytes")
    try:
        data = json.loads(raw or b"{}")
    except ValueError as exc:
        return _error(400, f"the body is not JSON ({exc})")
    return data if isinstance(data, dict) else _error(400, "the body must be a JSON object")


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"ok": False, "error": message}, status_code=status)


def _inputs(data: dict) -> list | JSONResponse:
    if "input" in data and "args" in data:
        return _error(400, "give 'input' or 'args', not both")
    if "args" in data:
        if not isinstance(data["args"], list):
            return _error(400, "'args' must be a JSON array")
        return list(data["args"])
    return [data["input"]] if "input" in data else []


def _outcome(final: dict) -> JSONResponse:
    if final.get("ok"):
        return JSONResponse({"ok": True, "result": final.get("result")})
    error = final.get("error") or {}
    return JSONResponse({"ok": False, "error": error.get("message", str(error)), "hint": error.get("hint")},
                        status_code=422)


def _events(q: queue.Queue):
    async def stream():
        while True:
            event = await anyio.to_thread.run_sync(q.get)
            if event is None:
                break
            yield encode(event)
        yield b"data: [DONE]\n\n"
    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


def make_app(runs: Runs, summary: dict, token: str | None = None) -> Starlette:
    async def run(request: Request) -> Response:
        data = await _body(request)
        if isinstance(data, Response):
            return data
        args = _inputs(data)
        if isinstance(args, Response):
            return args
        _, q, _ = runs.start(args)
        if data.get("stream") or "text/event-stream" in request.headers.get("accept", ""):
            return _events(q)
        return _outcome(await anyio.to_thread.run_sync(_finished, q))

    async def chat(request: Request) -> Response:
        data = await _body(request)
        if isinstance(data, Response):
            return data
        users = [m for m in data.get("messages") or [] if isinstance(m, dict) and m.get("role") == "user"]
        if not users:
            return _error(400, "messages needs a user message")
        _, q, _ = runs.start([str(users[-1].get("content", ""))])
        final = await anyio.to_thread.run_sync(_finished, q)
        if not final.get("ok"):
            return JSONResponse({"error": {"message": (final.get("error") or {}).get("message", "the graph failed")}},
                                status_code=502)
        text = final["result"] if isinstance(final.get("result"), str) else json.dumps(final.get("result"))
        created = int(time.time())
        if data.get("stream"):
            async def stream():
                yield encode({"id": "graph", "object": "chat.completion.chunk", "created": created, "model": "graph",
                              "choices": [{"index": 0, "delta": {"role": "assistant", "content": text}}]})
                yield encode({"id": "graph", "object": "chat.completion.chunk", "created": created, "model": "graph",
                              "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
                yield b"data: [DONE]\n\n"
            return StreamingResponse(stream(), media_type="text/event-stream")
        return JSONResponse({"id": "graph", "object": "chat.completion", "created": created, "model": "graph",
                             "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                          "finish_reason": "stop"}]})

    async def generate(request: Request) -> Response:
        """upstream's route: the body is the input itself (a plain JSON value); the answer is JSON (upstream sends
        a base64 pickle, which lets anyone who reaches the port run code)."""
        try:
            value = json.loads(await request.body() or b"null")
        except ValueError as exc:
            return _error(400, f"the body is not JSON ({exc})")
        _, q, _ = runs.start([value])
        return _outcome(await anyio.to_thread.run_sync(_finished, q))

    async def models(_: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": "graph", "object": "model", "owned_by": "lazyllm"}]})

    async def graph(_: Request) -> Response:
        return JSONResponse(summary)

    async def healthz(_: Request) -> Response:
        return JSONResponse({"ok": True})

    app = Starlette(routes=[Route("/v1/run", run, methods=["POST"]),
                            Route("/v1/chat/completions", chat, methods=["POST"]),
                            Route("/generate", generate, methods=["POST"]),
                            Route("/v1/models", models), Route("/v1/graph", graph), Route("/healthz", healthz)])
    if token:
        from ..auth import TokenGate
        app.add_middleware(TokenGate, token=token, realm="lazyllm-graph")
    return app
