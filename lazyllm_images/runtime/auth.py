"""Bearer tokens for the runtime's HTTP services: the token file, the constant-time compare (the MCP bridge uses it
too), and ``TokenGate``, an ASGI middleware that asks for the token on every path but ``/healthz``.

Browsers cannot send a bearer header, so a service that serves a page passes ``login_path``: a page request without
the token is sent there, and after a good login the browser holds a session cookie (HttpOnly, SameSite=Strict) whose
value is an HMAC of the token, never the token itself. Standard library only.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

OPEN_PATHS = ("/healthz",)
COOKIE_PREFIX = "lazyllm_session_"


class TokenFileError(ValueError):
    """The token file cannot be used; the message says why."""


def read_token_file(path: str | Path, option: str = "--auth-token-file") -> str:
    """The one word in PATH (surrounding whitespace dropped); TokenFileError when missing, empty or several words."""
    try:
        token = Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeError) as exc:
        raise TokenFileError(f"cannot read {option} {path}: {getattr(exc, 'strerror', None) or exc}") from None
    if not token:
        raise TokenFileError(f"{option} {path} is empty")
    if any(c.isspace() for c in token):
        raise TokenFileError(f"{option} {path} holds more than one word; it should hold only the key or token")
    return token


def bearer_ok(authorization: str | None, token: bytes) -> bool:
    """``Authorization: Bearer TOKEN`` (scheme case-insensitive), compared in constant time."""
    if not authorization or authorization[:7].lower() != "bearer ":
        return False
    return hmac.compare_digest(authorization[7:].strip().encode(), token)


def token_ok(given: str, token: str) -> bool:
    return hmac.compare_digest(given.strip().encode(), token.encode())


def session_cookie(token: str) -> tuple[str, str]:
    """The session cookie's name and value for TOKEN: both derived from it, so two services on one host (cookies
    ignore ports) keep their own, and neither reveals the token."""
    digest = hmac.new(token.encode(), b"lazyllm-session-cookie", hashlib.sha256).hexdigest()
    name = hmac.new(token.encode(), b"lazyllm-session-name", hashlib.sha256).hexdigest()[:12]
    return f"{COOKIE_PREFIX}{name}", digest


def cookie_ok(cookie_header: str | None, token: str) -> bool:
    if not cookie_header:
        return False
    name, value = session_cookie(token)
    for part in cookie_header.split(";"):
        key, _, given = part.strip().partition("=")
        if key == name and hmac.compare_digest(given.encode(), value.encode()):
            return True
    return False


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return None


class TokenGate:
    """401 without the token on every path but OPEN_PATHS (and LOGIN_PATH); with LOGIN_PATH the session cookie also
    counts, and a page request (GET, Accept: text/html) without either is redirected to the login page."""

    def __init__(self, app: ASGIApp, token: str, realm: str, login_path: str | None = None,
                 open_paths: Iterable[str] = OPEN_PATHS) -> None:
        self.app = app
        self.token = token
        self.realm = realm
        self.login_path = login_path
        self.open_paths = frozenset((*open_paths, *([login_path] if login_path else [])))

    def allowed(self, scope: Scope) -> bool:
        if scope["path"] in self.open_paths or bearer_ok(_header(scope, b"authorization"), self.token.encode()):
            return True
        return bool(self.login_path) and cookie_ok(_header(scope, b"cookie"), self.token)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or self.allowed(scope):
            return await self.app(scope, receive, send)
        if scope["type"] == "websocket":
            return await send({"type": "websocket.close", "code": 1008})
        if self.login_path and scope["method"] == "GET" and "text/html" in (_header(scope, b"accept") or ""):
            where = "../" * (scope["path"].count("/") - 1) + self.login_path.lstrip("/")  # relative: proxies
            return await _respond(send, 303, b"", [(b"location", where.encode())])
        body = json.dumps({"error": {"message": "send 'Authorization: Bearer <token>'", "type": "unauthorized"}})
        await _respond(send, 401, body.encode(), [(b"content-type", b"application/json"),
                                                  (b"www-authenticate", f'Bearer realm="{self.realm}"'.encode())])


async def _respond(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    headers = [*headers, (b"content-length", str(len(body)).encode()), (b"cache-control", b"no-store")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
