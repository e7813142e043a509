"""What every controller API shares over HTTP (Starlette): typed errors, bounded JSON bodies, the token gate, and
log lines as Server-Sent Events in upstream's training-log shape.

Errors are ``{"error": {"code", "message"}, "detail": message}``: the typed shape, and the ``detail`` key that
upstream's FastAPI clients print.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import AsyncIterator
from typing import Any

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from . import tokens
from .core import ApiError
from .launcher import LogStream

log = logging.getLogger("lazyllm.controller")
DEFAULT_MAX_BODY = 64 * 1024
KEEPALIVE_S = 15.0
DONE_EVENT = b"data: [DONE]\n\n"


def error_body(code: str, message: str, details: dict | None = None) -> dict:
    return {"error": {"code": code, "message": message, **(details or {})}, "detail": message}


def error_response(status: int, code: str, message: str, headers: dict | None = None,
                   details: dict | None = None) -> JSONResponse:
    return JSONResponse(error_body(code, message, details), status_code=status, headers=headers)


async def api_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.code, exc.message, details=exc.details)


async def http_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return error_response(exc.status_code, code, str(exc.detail), getattr(exc, "headers", None))


async def unexpected(_: Request, exc: Exception) -> Response:
    log.exception("unexpected error: %s", exc)
    return error_response(500, "internal", "the controller failed on this request; see its log")


EXCEPTION_HANDLERS: dict[Any, Any] = {ApiError: api_error, HTTPException: http_error, Exception: unexpected}


async def read_json(request: Request, limit: int = DEFAULT_MAX_BODY) -> dict:
    """The body as a JSON object: 413 past LIMIT bytes (read no further), 400 when empty, malformed or not an
    object."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise ApiError(413, "body_too_large", f"the body has {length} bytes; the limit is {limit}")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise ApiError(413, "body_too_large", f"the body is over the limit of {limit} bytes")
    if not body.strip():
        raise ApiError(400, "invalid_json", "the body is empty: send a JSON object")
    try:
        data = json.loads(bytes(body))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "invalid_json", f"the body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_json", "the body must be a JSON object")
    return data


def controller_lifespan(controller, start: bool = True):
    """A Starlette lifespan: with START, re-adopt what runs before the first request and poll until shutdown."""
    from contextlib import asynccontextmanager

    import anyio

    @asynccontextmanager
    async def lifespan(_app):
        if start:
            await anyio.to_thread.run_sync(controller.start)
        try:
            yield
        finally:
            if start:
                await anyio.to_thread.run_sync(controller.close)
    return lifespan


def owner(request: Request) -> str:
    return request.state.owner


class OwnerGate:
    """ASGI middleware: a request without a known token is a 401 (``/healthz`` is open); a known token's owner id
    goes to ``request.state.owner``. The token itself is never logged or stored."""

    def __init__(self, app, ring: tokens.TokenRing, open_paths: tuple[str, ...] = ("/healthz",)) -> None:
        self.app, self.ring, self.open_paths = app, ring, frozenset(open_paths)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["path"] in self.open_paths:
            return await self.app(scope, receive, send)
        given = tokens.from_headers(Headers(scope=scope))
        found = self.ring.owner_of(given)
        if found is None:
            message = ("invalid token" if given else
                       f"no token: send it in the '{tokens.TOKEN_HEADER}' header (or 'Authorization: Bearer')")
            response = error_response(401, "unauthorized", message, {"www-authenticate": 'Bearer realm="lazyllm"'})
            return await response(scope, receive, send)
        scope.setdefault("state", {})["owner"] = found
        await self.app(scope, receive, send)


# ---------------------------------------------------------------------- log lines as SSE

def log_event(line: str) -> bytes:
    """One event in upstream's training-log shape: ``data: {"result": {"log_data": LINE}}``."""
    return b"data: " + json.dumps({"result": {"log_data": line}}, ensure_ascii=False).encode() + b"\n\n"


class _Failed:
    def __init__(self, message: str) -> None:
        self.message = message


_END = object()


class _Pump:
    """A blocking LogStream read on a thread of its own, handed to the event loop line by line; at most SLOTS lines
    wait for a slow client (the thread waits then), and a client that leaves stops the thread."""

    def __init__(self, stream: LogStream, loop: asyncio.AbstractEventLoop, slots: int = 256) -> None:
        self.stream, self.loop = stream, loop
        self.queue: asyncio.Queue = asyncio.Queue()
        self.slots = threading.Semaphore(slots)
        self.stop = threading.Event()
        threading.Thread(target=self._run, name="log-follow", daemon=True).start()

    def _put(self, item: object) -> bool:
        while not self.stop.is_set():
            if self.slots.acquire(timeout=0.5):
                try:
                    self.loop.call_soon_threadsafe(self.queue.put_nowait, item)
                    return True
                except RuntimeError:            # the loop is closed
                    return False
        return False

    def _run(self) -> None:
        try:
            for line in self.stream:
                if not self._put(line):
                    return
        except Exception as exc:  # noqa: BLE001 - the client gets it as an error event
            if not self.stop.is_set():
                self._put(_Failed(str(exc) or type(exc).__name__))
        finally:
            self._put(_END)

    async def get(self) -> object:
        item = await self.queue.get()
        self.slots.release()
        return item

    def close(self) -> None:
        self.stop.set()
        self.stream.close()


async def sse_events(stream: LogStream, keepalive: float = KEEPALIVE_S) -> AsyncIterator[bytes]:
    """The lines of STREAM as events (following blocks: a thread reads them), then ``[DONE]``; a comment every
    KEEPALIVE seconds of silence. A client that leaves closes the stream."""
    pump = _Pump(stream, asyncio.get_running_loop())
    getter: asyncio.Future | None = None
    try:
        while True:
            getter = getter or asyncio.ensure_future(pump.get())     # kept across keepalives: no line is lost
            done, _ = await asyncio.wait({getter}, timeout=keepalive)
            if not done:
                yield b": keepalive\n\n"
                continue
            item, getter = getter.result(), None
            if item is _END:
                break
            if isinstance(item, _Failed):
                yield b"data: " + json.dumps({"error": {"message": item.message}}).encode() + b"\n\n"
                break
            yield log_event(item)
        yield DONE_EVENT
    finally:
        if getter is not None:
            getter.cancel()
        pump.close()


def sse_response(stream: LogStream) -> StreamingResponse:
    return StreamingResponse(sse_events(stream), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def flag(request: Request, name: str) -> bool:
    value = request.query_params.get(name, "").strip().lower()
    if value in ("", "0", "false", "no", "off"):
        return False
    if value in ("1", "true", "yes", "on"):
        return True
    raise ApiError(400, "bad_query", f"?{name}= takes true or false")


def int_query(request: Request, name: str, lowest: int = 1, highest: int = 100_000) -> int | None:
    value = request.query_params.get(name)
    if value is None or value == "":
        return None
    if not value.isdigit() or not lowest <= int(value) <= highest:
        raise ApiError(400, "bad_query", f"?{name}= takes a whole number from {lowest} to {highest}")
    return int(value)
