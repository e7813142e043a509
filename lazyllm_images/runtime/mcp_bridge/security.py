"""Who may talk to the bridge: Host/Origin allow lists (DNS-rebinding protection), bearer token, body size.

The allow-list logic is pure (unit-tested); two small ASGI middlewares apply it in front of both transports:

    HostOriginGuard (421 / 403)  ->  [CORSMiddleware, only with --allow-origin]  ->  AuthAndLimit (401 / 413)

so CORS preflights from an allowed origin are answered without a token (browsers never send one there), while
every real request needs it. ``/healthz`` needs no token.
"""

from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..auth import bearer_ok
from ..netaddr import exposure_warning as _exposure_warning
from ..netaddr import format_host, is_loopback, split_host

__all__ = ["HEALTH_PATH", "AuthAndLimit", "HostOriginGuard", "Policy", "default_allowed_hosts", "exposure_warning",
           "format_host", "is_loopback"]

HEALTH_PATH = "/healthz"


def default_allowed_hosts(bind_host: str, port: int, extra: Iterable[str] = ()) -> tuple[str, ...]:
    """``{host}:{port}``, ``localhost:{port}``, ``127.0.0.1:{port}`` (and ``[::1]``) for the bound port, plus EXTRA."""
    hosts = [format_host(bind_host, port), f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}", *extra]
    return tuple(dict.fromkeys(h.lower() for h in hosts))


def exposure_warning(bind_host: str, token: str | None) -> str | None:
    """The loud warning for a non-loopback bind without a token (None when there is nothing to warn about)."""
    return _exposure_warning("the MCP bridge", bind_host, token, "Pass --auth-token-file (or the stdin secrets) "
                             "or bind 127.0.0.1.", can="run the MCP server's tools")


@dataclass(frozen=True)
class Policy:
    """Everything the middlewares check, fixed once the port is bound."""

    allowed_hosts: frozenset[str]          # exact "name:port" entries
    host_names: frozenset[str]             # names allowed on any port (from "name" and "name:*" entries)
    any_host: bool                         # "*": no Host check at all
    allowed_origins: frozenset[str]
    any_origin: bool
    token: bytes | None
    max_body_bytes: int

    @classmethod
    def build(cls, hosts: Iterable[str], allow_origins: Iterable[str], token: str | None,
              max_body_bytes: int) -> Policy:
        hosts = [h.lower() for h in hosts]
        entries = [split_host(h) for h in hosts if h != "*"]
        exact = frozenset(f"{name}:{port}" for name, port in entries if port not in (None, "*"))
        names = frozenset(name for name, port in entries if port in (None, "*"))
        same_origin = {f"{scheme}://{h}" for h in exact for scheme in ("http", "https")}
        explicit = {o.lower() for o in allow_origins if o != "*"}
        return cls(allowed_hosts=exact, host_names=names, any_host="*" in hosts,
                   allowed_origins=frozenset(same_origin | explicit), any_origin="*" in allow_origins,
                   token=token.encode() if token else None, max_body_bytes=max_body_bytes)

    def host_ok(self, host: str | None) -> bool:
        if not host:
            return False
        if self.any_host:
            return True
        name, port = split_host(host)
        return name in self.host_names or (port is not None and f"{name}:{port}" in self.allowed_hosts)

    def origin_ok(self, origin: str | None) -> bool:
        """No Origin (non-browser clients) is fine; a present one must be listed."""
        if origin is None or self.any_origin:
            return True
        origin = origin.lower()
        scheme, sep, rest = origin.partition("://")
        return origin in self.allowed_origins or (
            bool(sep) and scheme in ("http", "https") and split_host(rest)[0] in self.host_names)

    def token_ok(self, authorization: str | None) -> bool:
        return self.token is None or bearer_ok(authorization, self.token)


def header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


async def plain(send: Send, status: int, text: str, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    body = text.encode()
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode()),
               *(extra or [])]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class HostOriginGuard:
    """421 for a Host that is not ours, 403 for a foreign Origin: on every path, both transports."""

    def __init__(self, app: ASGIApp, policy: Policy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            if not self.policy.host_ok(header(scope, b"host")):
                return await plain(send, 421, "Misdirected Request: Host header not allowed")
            if not self.policy.origin_ok(header(scope, b"origin")):
                return await plain(send, 403, "Forbidden: Origin not allowed")
        await self.app(scope, receive, send)


class AuthAndLimit:
    """401 without the bearer token (``/healthz`` exempt); 413 for a body over the limit."""

    def __init__(self, app: ASGIApp, policy: Policy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] == HEALTH_PATH:
            return await self.app(scope, receive, send)
        if not self.policy.token_ok(header(scope, b"authorization")):
            return await plain(send, 401, "Unauthorized: send 'Authorization: Bearer <token>'",
                               [(b"www-authenticate", b'Bearer realm="lazyllm-mcp-bridge"')])
        length = header(scope, b"content-length")
        if length is not None:
            if not length.isdigit() or int(length) > self.policy.max_body_bytes:
                return await plain(send, 413, "Request body too large")
            return await self.app(scope, receive, send)
        if scope["method"] in ("POST", "PUT", "PATCH"):
            return await self._buffered(scope, receive, send)
        await self.app(scope, receive, send)

    async def _buffered(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A body without Content-Length (chunked): read it up to the limit, then replay it."""
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return
            body += message.get("body", b"")
            if len(body) > self.policy.max_body_bytes:
                return await plain(send, 413, "Request body too large")
            if not message.get("more_body", False):
                break
        replayed: list[Message] = [{"type": "http.request", "body": bytes(body), "more_body": False}]

        async def replay() -> Message:
            return replayed.pop() if replayed else await receive()

        await self.app(scope, replay, send)
