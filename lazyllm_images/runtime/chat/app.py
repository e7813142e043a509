"""The chat page's Starlette app: the page, its info, and the streaming relay to the upstream model server."""

from __future__ import annotations

import contextlib
import html
import json
import logging
import time
from pathlib import Path
from typing import Any, AsyncIterator
from urllib.parse import parse_qs

import anyio
import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

from ..auth import TokenGate, session_cookie, token_ok
from ..sse import SSEDecoder, encode
from . import relay
from .config import ChatConfig

log = logging.getLogger("lazyllm.chat")
STATIC = Path(__file__).with_name("static")
TIMEOUT = httpx.Timeout(connect=10.0, read=600.0, write=60.0, pool=10.0)
LOGIN_PATH = "/login"
MAX_LOGIN_BODY = 4096


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
                yield encode(ev)
        else:
            decoder = SSEDecoder()
            async for line in resp.aiter_lines():
                item = decoder.feed(line)
                if item is None:
                    continue
                events, fin, done = relay.data_events(*item)
                finish = fin or finish
                for ev in events:
                    yield encode(ev)
                if done:
                    break
    except (httpx.HTTPError, ValueError) as exc:
        yield encode({"type": "error", "message": f"the connection to the model server broke: {exc!r}",
                         "status": None})
    yield encode({"type": "done", "finish_reason": finish})


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


async def _small_body(request: Request, limit: int) -> bytes | None:
    """The request body, or None when it is over LIMIT bytes (read no further than that)."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


def login_route(cfg: ChatConfig) -> Route:
    """``GET /login``: the form; ``POST /login`` (``token=...``): the session cookie and back to the page, or the form
    again with 401. Only with a token (``--auth-token-file``)."""
    form = (STATIC / "login.html").read_text(encoding="utf-8").replace("{{TITLE}}", html.escape(cfg.title))
    token = cfg.auth_token or ""

    def page(message: str, status: int) -> HTMLResponse:
        return HTMLResponse(form.replace("{{MESSAGE}}", message), status_code=status,
                            headers={"Cache-Control": "no-store"})

    async def login(request: Request) -> Response:
        if request.method == "GET":
            return page("", 200)
        body = await _small_body(request, MAX_LOGIN_BODY)
        if body is None:
            return page("That is too long to be the token.", 413)
        given = parse_qs(body.decode("utf-8", "replace")).get("token", [""])[0]
        if not token_ok(given, token):
            log.warning("chat: a sign-in with a wrong token")
            return page("Wrong token.", 401)
        response = Response(status_code=303, headers={"Location": "./", "Cache-Control": "no-store"})
        name, value = session_cookie(token)
        response.set_cookie(name, value, path="/", httponly=True, samesite="strict",
                            secure=request.url.scheme == "https")
        return response

    return Route(LOGIN_PATH, login, methods=["GET", "POST"])


def make_app(cfg: ChatConfig, transport: httpx.AsyncBaseTransport | None = None) -> Starlette:
    """The app; ``transport`` replaces the network for the upstream calls (unit tests). With ``cfg.auth_token``
    every route but /healthz and /login needs the token (bearer header, or the session cookie /login sets)."""
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
    gate = []
    if cfg.auth_token:
        routes.append(login_route(cfg))
        gate = [Middleware(TokenGate, token=cfg.auth_token, realm="lazyllm-chat", login_path=LOGIN_PATH)]
    return Starlette(routes=routes, lifespan=lifespan, middleware=gate)
