"""The ASGI application: legacy SSE (``/sse`` + ``/messages/``), streamable HTTP (``/mcp``, ``/mcp/``), ``/healthz``,
and the security middlewares (plus Starlette's CORS) in front of all of it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.middleware.cors import CORSMiddleware
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from .bridge import Bridge
from .http_transport import StreamableHttpTransport
from .security import HEALTH_PATH, AuthAndLimit, HostOriginGuard, Policy, plain
from .sse_transport import ENDPOINT, SseTransport

EXPOSED_HEADERS = ["mcp-session-id", "mcp-protocol-version"]


class Router:
    """Exact paths to endpoints: ``/sse``, ``/messages/``, ``/mcp`` and ``/mcp/``, ``/healthz``; 404 otherwise.
    (Four fixed paths need no pattern routing; this sits on the per-message hot path.)"""

    def __init__(self, bridge: Bridge, sse: SseTransport, http: StreamableHttpTransport) -> None:
        self.bridge = bridge
        self.routes: dict[str, Callable[[Scope, Receive, Send], Awaitable[None]]] = {
            ENDPOINT: sse.post, "/sse": sse.connect, "/mcp": http.handle, "/mcp/": http.handle,
            HEALTH_PATH: self.healthz}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        endpoint = self.routes.get(scope["path"])
        if endpoint is None:
            return await plain(send, 404, "Not Found")
        await endpoint(scope, receive, send)

    async def healthz(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] not in ("GET", "HEAD"):
            return await plain(send, 405, "Method Not Allowed", [(b"allow", b"GET, HEAD")])
        ok, body = self.bridge.health()
        await JSONResponse(body, status_code=200 if ok else 503)(scope, receive, send)


def build_app(bridge: Bridge, policy: Policy) -> tuple[ASGIApp, StreamableHttpTransport]:
    """The router behind, outermost first: HostOriginGuard (421/403), Starlette's CORSMiddleware (only with
    --allow-origin: preflights need no token), AuthAndLimit (401/413). The streamable-HTTP transport is returned
    too: its sessions run inside its ``run()``."""
    cfg = bridge.config
    http = StreamableHttpTransport(bridge, cfg.max_body_bytes, cfg.idle_timeout or None)
    app: ASGIApp = AuthAndLimit(Router(bridge, SseTransport(bridge, cfg.max_body_bytes), http), policy)
    origins = list(cfg.allow_origins)
    if origins:
        app = CORSMiddleware(app, allow_origins=origins, allow_credentials=False,
                             allow_methods=["GET", "POST", "DELETE", "OPTIONS"], allow_headers=["*"],
                             expose_headers=EXPOSED_HEADERS)
    return HostOriginGuard(app, policy), http
