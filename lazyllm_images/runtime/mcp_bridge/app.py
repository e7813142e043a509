"""The ASGI application: legacy SSE (``/sse`` + ``/messages/``), streamable HTTP (``/mcp``, ``/mcp/``) on the
SDK's session manager, ``/healthz``, and the security middlewares (plus Starlette's CORS) in front of all of it."""

from __future__ import annotations

import inspect
from typing import Any, cast
from collections.abc import Awaitable, Callable

from starlette.middleware.cors import CORSMiddleware
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from mcp.server.lowlevel import Server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

from .bridge import Bridge
from .security import HEALTH_PATH, AuthAndLimit, HostOriginGuard, Policy, plain
from .session import StreamOutlet
from .sse_transport import ENDPOINT, SseTransport

EXPOSED_HEADERS = ["mcp-session-id", "mcp-protocol-version"]


def _supported(cls: type, name: str) -> bool:
    return name in inspect.signature(cls).parameters


class RelayApp:
    """Stands in for the SDK's low-level ``Server`` in ``StreamableHTTPSessionManager``: each session it ``run``s
    is relayed by the bridge instead of being answered by local handlers."""

    def __init__(self, bridge: Bridge) -> None:
        self.bridge = bridge

    def create_initialization_options(self) -> None:
        return None

    async def run(self, read_stream: Any, write_stream: Any, initialization_options: Any,
                  raise_exceptions: bool = False, stateless: bool = False) -> None:
        await self.bridge.session("mcp", read_stream, StreamOutlet(write_stream)).run()


class Router:
    """Exact paths to endpoints: ``/sse``, ``/messages/``, ``/mcp`` and ``/mcp/``, ``/healthz``; 404 otherwise.
    (Four fixed paths need no pattern routing; this sits on the per-message hot path.)"""

    def __init__(self, bridge: Bridge, sse: SseTransport, manager: StreamableHTTPSessionManager) -> None:
        self.bridge = bridge
        self.routes: dict[str, Callable[[Scope, Receive, Send], Awaitable[None]]] = {
            ENDPOINT: sse.post, "/sse": sse.connect, "/mcp": manager.handle_request,
            "/mcp/": manager.handle_request, HEALTH_PATH: self.healthz}

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


def http_manager(bridge: Bridge) -> StreamableHTTPSessionManager:
    """The SDK's streamable-HTTP session manager, answering over SSE (so progress and server-to-client requests
    reach the client during a call). Host/Origin/token/size are checked by our middlewares in front of it (one
    rule set for both transports, before any SDK work); the SDK's own body limit stays on where it has one."""
    cfg = bridge.config
    kw: dict[str, Any] = {}
    if _supported(StreamableHTTPSessionManager, "max_request_body_size"):
        kw["max_request_body_size"] = cfg.max_body_bytes
    if _supported(StreamableHTTPSessionManager, "session_idle_timeout"):
        kw["session_idle_timeout"] = cfg.idle_timeout or None
    return StreamableHTTPSessionManager(app=cast(Server, RelayApp(bridge)), event_store=None, json_response=False,
                                        stateless=False, **kw)


def build_app(bridge: Bridge, policy: Policy) -> tuple[ASGIApp, StreamableHTTPSessionManager]:
    """The router behind, outermost first: HostOriginGuard (421/403), Starlette's CORSMiddleware (only with
    --allow-origin: preflights need no token), AuthAndLimit (401/413)."""
    manager = http_manager(bridge)
    app: ASGIApp = AuthAndLimit(Router(bridge, SseTransport(bridge, bridge.config.max_body_bytes), manager), policy)
    origins = list(bridge.config.allow_origins)
    if origins:
        app = CORSMiddleware(app, allow_origins=origins, allow_credentials=False,
                             allow_methods=["GET", "POST", "DELETE", "OPTIONS"], allow_headers=["*"],
                             expose_headers=EXPOSED_HEADERS)
    return HostOriginGuard(app, policy), manager
