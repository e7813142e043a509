"""The chat page's Starlette app: the page, its info, and the streaming relay to the upstream model server."""

from __future__ import annotations

import contextlib
import html
import json
import logging
import time
from pathlib import Path
from typing import Any, AsyncIterator

import anyio
import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

from . import relay
from .config import ChatConfig

log = logging.getLogger("lazyllm.chat")
STATIC = Path(__file__).with_name("static")
TIMEOUT = httpx.Timeout(connect=10.0, read=600.0, write=60.0, pool=10.0)


class RelayResponse(StreamingResponse):
    """Streams events until done or the browser goes away, then always closes the upstream response."""

    def __init__(self, content: AsyncIterator[bytes], upstream: httpx.Response) -> None:
        super().__init__(content, media_type="text/event-stream",
                         headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        self.upstream = upstream
        self.completed = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            async with anyio.create_task_group() as tg:
                async def stream() -> None:
                    with contextlib.suppress(OSError):
                        await self.stream_response(send)
                        self.completed = True
                    tg.cancel_scope.cancel()

                tg.start_soon(stream)
                await self.listen_for_disconnect(receive)
                tg.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await self.upstream.aclose()
            if not self.completed:
                log.info("the browser left before the reply ended; upstream request closed")


def _error(message: str, status: int, type_: str = "invalid_request_error", **extra: Any) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": type_, **extra}}, status_code=status)


async def _events(resp: httpx.Response) -> AsyncIterator[bytes]:
    """Upstream reply -> browser events; a JSON (non-streamed) reply is turned into the same events."""
    finish: str | None = None
    ctype = resp.headers.get("content-type", "")
    try:
        if ctype.startswith("application/json"):
            events, finish = relay.chunk_events(json.loads(await resp.aread()))
            for ev in events:
                yield relay.sse(ev)
        else:
            decoder = relay.SSEDecoder()
            async for line in resp.aiter_lines():
                item = decoder.feed(line)
                if item is None:
                    continue
                events, fin, done = relay.data_events(*item)
                finish = fin or finish
                for ev in events:
                    yield relay.sse(ev)
                if done:
                    break
    except (httpx.HTTPError, ValueError) as exc:
        yield relay.sse({"type": "error", "message": f"the connection to the model server broke: {exc!r}",
                         "status": None})
    yield relay.sse({"type": "done", "finish_reason": finish})


async def _open_upstream(client: httpx.AsyncClient, cfg: ChatConfig, body: dict[str, Any]
                         ) -> httpx.Response | JSONResponse:
    headers = {"Accept": "text/event-stream"}
    if cfg.api_key:
        headers["Authorization"] = f"Bearer {cfg.api_key}"
    req = client.build_request("POST", cfg.upstream, json=body, headers=headers)
    try:
        resp = await client.send(req, stream=True)
    except httpx.TimeoutException as exc:
        return _error(f"the model server at {cfg.upstream} did not answer in time ({type(exc).__name__})", 504,
                      "upstream_timeout")
    except httpx.HTTPError as exc:
        return _error(f"cannot reach the model server at {cfg.upstream}: {exc!r}", 502, "upstream_unreachable")
    if resp.status_code >= 400:
        raw = await resp.aread()
        await resp.aclose()
        log.warning("upstream answered %d", resp.status_code)
        return _error(relay.upstream_failure(resp.status_code, raw), 502, "upstream_error",
                      upstream_status=resp.status_code)
    return resp


def make_app(cfg: ChatConfig, transport: httpx.AsyncBaseTransport | None = None) -> Starlette:
    """The app; ``transport`` replaces the network for the upstream calls (unit tests)."""
    page = (STATIC / "index.html").read_text(encoding="utf-8").replace("{{TITLE}}", html.escape(cfg.title))
    holder: dict[str, httpx.AsyncClient] = {}

    async def index(request: Request) -> Response:
        return HTMLResponse(page, headers={"Cache-Control": "no-cache"})

    async def info(request: Request) -> JSONResponse:
        return JSONResponse(cfg.public())

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "model": cfg.model})

    async def chat(request: Request) -> Response:
        try:
            messages = relay.validate_messages(json.loads(await request.body()))
        except (ValueError, relay.BadRequest) as exc:
            return _error(str(exc) if isinstance(exc, relay.BadRequest) else f"the body is not valid JSON: {exc}",
                          400)
        started = time.monotonic()
        opened = await _open_upstream(holder["client"], cfg, relay.upstream_body(cfg, messages))
        if isinstance(opened, JSONResponse):
            return opened
        log.info("chat: %d messages, upstream %d after %.2f s", len(messages), opened.status_code,
                 time.monotonic() - started)
        return RelayResponse(_events(opened), opened)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with httpx.AsyncClient(timeout=TIMEOUT, transport=transport) as client:
            holder["client"] = client
            yield

    routes = [
        Route("/", index, methods=["GET"]),
        Route("/api/info", info, methods=["GET"]),
        Route("/api/chat", chat, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    return Starlette(routes=routes, lifespan=lifespan)
