"""The streamable-HTTP transport (MCP 2025-11-25 ``basic/transports``): ``POST``, ``GET`` and ``DELETE`` on ``/mcp``.

- ``POST`` one JSON-RPC message (``Accept: application/json, text/event-stream``). ``initialize`` without a session
  opens one and its answer carries the new ``Mcp-Session-Id``; everything else needs that header (400 without it,
  404 for an unknown or ended session; 400 for an unsupported ``Mcp-Protocol-Version``). Notifications and answers
  from the client: 202, no body. A request is answered with plain ``application/json`` unless something for that
  call (progress, a log message, a server-to-client request) arrives before its answer, or the answer takes longer
  than the keep-alive interval: only then does the response become ``text/event-stream``, carrying those messages
  and then the answer (or ``: ping`` comments while waiting). Most calls are the first kind, and a plain JSON
  response is what costs least in the bridge and in the client.
- ``GET`` opens the session's stream for messages that belong to no open call (list-changed, resource updates);
  a newer ``GET`` replaces an older one. ``DELETE`` ends the session.
- A session ends when it was deleted, or had no request in flight (an open ``GET`` counts) for ``--idle-timeout``.

Host/Origin/token checks and the body limit sit in front (``security``), as for the SSE transport.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from anyio.abc import TaskGroup
from pydantic import ValidationError
from starlette.types import Receive, Scope, Send

from mcp.shared.message import SessionMessage
from mcp.shared.version import SUPPORTED_PROTOCOL_VERSIONS
from mcp.types import (CONNECTION_CLOSED, INVALID_REQUEST, PARSE_ERROR, JSONRPCMessage, JSONRPCNotification,
                       JSONRPCRequest, JSONRPCResponse, RequestId)

from . import jsonrpc as rpc
from .bridge import Bridge
from .http_outlet import TIMEOUT, HttpOutlet, Reply, is_reply
from .mailbox import Mailbox
from .session import Session
from .wire import PING, PING_INTERVAL, SSE_HEADERS, chunk, dump, finish, json_reply, message_event, read_body
from .wire import until_disconnect

log = logging.getLogger("lazyllm.mcp_bridge.http")

INBOX = 256                # posted messages queued for one session before posts get 503
MAX_SESSIONS = 10_000      # open sessions; an initialize beyond this gets 503
SESSION_HEADER = b"mcp-session-id"
VERSION_HEADER = b"mcp-protocol-version"
WANTED = frozenset({b"accept", b"content-type", SESSION_HEADER, VERSION_HEADER})
VERSIONS = frozenset(v.encode() for v in SUPPORTED_PROTOCOL_VERSIONS)
ALLOW = [(b"allow", b"GET, POST, DELETE")]


class HttpSession:
    """One ``Mcp-Session-Id``: its relay session, inbox, outlet, and what the idle timeout looks at."""

    __slots__ = ("id", "session", "inbox", "outlet", "in_flight", "last")

    def __init__(self, sid: bytes, session: Session, inbox: Mailbox[SessionMessage], outlet: HttpOutlet) -> None:
        self.id = sid
        self.session = session
        self.inbox = inbox
        self.outlet = outlet
        self.in_flight = 0                  # requests being served, an open GET stream included
        self.last = time.monotonic()        # when the last one ended

    def end(self) -> None:
        """Stop the session (its reader first: a session that has not started running yet stops too)."""
        self.inbox.close()
        self.session.end()


def _headers(scope: Scope) -> dict[bytes, bytes]:
    return {k: v for k, v in scope["headers"] if k in WANTED}


def _accepts(headers: dict[bytes, bytes]) -> tuple[bool, bool]:
    """(JSON, event stream) acceptable? No Accept header at all accepts both."""
    accept = headers.get(b"accept")
    if accept is None:
        return True, True
    accept = accept.lower()
    anything = b"*/*" in accept
    return anything or b"application/json" in accept, anything or b"text/event-stream" in accept


async def _error(send: Send, status: int, text: str, code: int = INVALID_REQUEST,
                 extra: list[tuple[bytes, bytes]] | None = None) -> None:
    """An HTTP error with a JSON-RPC error body (no id: it is about the HTTP request, not a JSON-RPC call)."""
    body = json.dumps({"jsonrpc": "2.0", "id": None, "error": {"code": code, "message": text}}).encode()
    await json_reply(send, body, status, extra)


class StreamableHttpTransport:
    def __init__(self, bridge: Bridge, max_body_bytes: int, idle_timeout: float | None) -> None:
        self.bridge = bridge
        self.max_body_bytes = max_body_bytes
        self.idle_timeout = idle_timeout
        self.sessions: dict[bytes, HttpSession] = {}
        self._tg: TaskGroup | None = None

    @asynccontextmanager
    async def run(self) -> AsyncIterator[None]:
        """Sessions run in this task group; leaving it ends every one still open."""
        async with anyio.create_task_group() as tg:
            self._tg = tg
            try:
                yield
            finally:
                self._tg = None
                tg.cancel_scope.cancel()

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope["method"]
        if method == "POST":
            await self.post(scope, receive, send)
        elif method == "GET":
            await self.get(scope, receive, send)
        elif method == "DELETE":
            await self.delete(scope, send)
        else:
            await _error(send, 405, "Method Not Allowed", extra=ALLOW)

    # ------------------------------------------------------------------ POST

    async def post(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = _headers(scope)
        json_ok, sse_ok = _accepts(headers)
        if not json_ok:
            return await _error(send, 406, "Not Acceptable: the client must accept application/json")
        if not headers.get(b"content-type", b"").lower().startswith(b"application/json"):
            return await _error(send, 415, "Unsupported Media Type: Content-Type must be application/json")
        body = await read_body(receive, self.max_body_bytes)
        if body is None:
            return await _error(send, 413, "Request body too large")
        try:
            message = JSONRPCMessage.model_validate_json(body)
        except ValidationError:
            return await _invalid(send, body)
        root = message.root
        sid = headers.get(SESSION_HEADER)
        if sid is None and isinstance(root, JSONRPCRequest) and root.method == "initialize":
            return await self._open(message, root, sse_ok, send)
        st = await self._find(sid, headers, send)
        if st is None:
            return
        if isinstance(root, JSONRPCRequest):
            return await self._request(st, message, root, sse_ok, send)
        cancelled = _cancelled_id(root) if isinstance(root, JSONRPCNotification) else None
        st.last = time.monotonic()
        status = self._dispatch(st, message)
        if cancelled is not None:
            st.outlet.cancel(cancelled)
        if status:
            return await self._refused(send, status)
        await send({"type": "http.response.start", "status": 202,
                    "headers": [(b"content-length", b"0"), (SESSION_HEADER, st.id)]})
        await send({"type": "http.response.body", "body": b""})

    async def _request(self, st: HttpSession, message: JSONRPCMessage, root: JSONRPCRequest, sse_ok: bool,
                       send: Send) -> None:
        reply = st.outlet.open_reply(root.id, sse_ok)
        if reply is None:
            if st.outlet.closed:
                return await _error(send, 404, "Not Found: the session has ended")
            return await _error(send, 400, f"Bad Request: request id {root.id!r} is already in flight")
        st.in_flight += 1
        try:
            status = self._dispatch(st, message)
            if status:
                st.outlet.cancel(root.id)
                return await self._refused(send, status)
            await self._respond(st, reply, send)
        finally:
            st.in_flight -= 1
            st.last = time.monotonic()

    def _dispatch(self, st: HttpSession, message: JSONRPCMessage) -> int:
        """Hand MESSAGE to the session (right here when its reader is idle); 0, or the HTTP status to refuse."""
        if st.inbox.consumer_waiting and st.session.offer(message):
            return 0
        try:
            queued = st.inbox.put(SessionMessage(message))
        except anyio.ClosedResourceError:
            return 404
        return 0 if queued else 503

    async def _refused(self, send: Send, status: int) -> None:
        if status == 404:
            return await _error(send, 404, "Not Found: the session has ended")
        await _error(send, 503, "Session is busy; retry", extra=[(b"retry-after", b"1")])

    async def _find(self, sid: bytes | None, headers: dict[bytes, bytes], send: Send) -> HttpSession | None:
        """The request's session, or None once the refusal (400, 404) was sent."""
        if sid is None:
            await _error(send, 400, "Bad Request: Missing Mcp-Session-Id header (send initialize first)")
            return None
        st = self.sessions.get(sid)
        if st is None:
            await _error(send, 404, "Not Found: Invalid or expired session ID")
            return None
        version = headers.get(VERSION_HEADER)
        if version is not None and version not in VERSIONS:
            await _error(send, 400, f"Bad Request: Unsupported protocol version: {version.decode('latin-1')}. "
                                    f"Supported versions: {', '.join(SUPPORTED_PROTOCOL_VERSIONS)}")
            return None
        return st

    # ------------------------------------------------------------------ answering a request

    async def _respond(self, st: HttpSession, reply: Reply, send: Send) -> bool:
        """Send the answer to one request: plain JSON when it comes first, else an event stream. True when the
        answer was a result (not an error)."""
        extra = [(SESSION_HEADER, st.id)]
        first = await reply.next(PING_INTERVAL if reply.sse else None)
        if first is not None and first is not TIMEOUT:
            assert isinstance(first, JSONRPCMessage)
            if is_reply(first):
                await json_reply(send, dump(first), extra=extra)
                return isinstance(first.root, JSONRPCResponse)
        elif first is None and (reply.error is not None or not reply.sse):
            text = reply.error or "the request was cancelled"
            await json_reply(send, dump(rpc.error(reply.request_id, CONNECTION_CLOSED, text)), extra=extra)
            return False
        await send({"type": "http.response.start", "status": 200, "headers": [*SSE_HEADERS, *extra]})
        try:
            return await _stream(reply, send, first)
        finally:
            await finish(send)

    # ------------------------------------------------------------------ sessions

    async def _open(self, message: JSONRPCMessage, root: JSONRPCRequest, sse_ok: bool, send: Send) -> None:
        """``initialize`` without a session: a new session, answered with its id."""
        if self._tg is None or len(self.sessions) >= MAX_SESSIONS:
            return await _error(send, 503, "Too many open sessions", extra=[(b"retry-after", b"1")])
        inbox: Mailbox[SessionMessage] = Mailbox(INBOX)
        outlet = HttpOutlet()
        st = HttpSession(uuid.uuid4().hex.encode(), self.bridge.session("mcp", inbox, outlet), inbox, outlet)
        self.sessions[st.id] = st
        reply = outlet.open_reply(root.id, sse_ok)
        assert reply is not None
        inbox.put(SessionMessage(message))
        self._tg.start_soon(self._run_session, st)
        st.in_flight += 1
        try:
            ok = await self._respond(st, reply, send)
        finally:
            st.in_flight -= 1
            st.last = time.monotonic()
        if not ok:                          # initialize failed: nothing was established
            self.sessions.pop(st.id, None)
            st.end()

    async def _run_session(self, st: HttpSession) -> None:
        try:
            async with anyio.create_task_group() as tg:
                if self.idle_timeout:
                    tg.start_soon(self._idle_watch, st, self.idle_timeout)
                await st.session.run()
                tg.cancel_scope.cancel()
        except Exception:                   # one broken session must not take the others down
            log.exception("a streamable-HTTP session failed")
        finally:
            self.sessions.pop(st.id, None)
            st.inbox.close()
            st.outlet.shut()

    async def _idle_watch(self, st: HttpSession, idle: float) -> None:
        """End ST once no request was in flight (an open GET stream counts) for IDLE seconds."""
        while True:
            left = st.last + idle - time.monotonic()
            if left <= 0 and not st.in_flight:
                log.info("closing a streamable-HTTP session idle for %.0f s", idle)
                self.sessions.pop(st.id, None)
                st.end()
                return
            await anyio.sleep(max(left, min(1.0, idle)))

    # ------------------------------------------------------------------ GET and DELETE

    async def get(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The session's stream of messages that belong to no open call, until either side ends it."""
        headers = _headers(scope)
        if not _accepts(headers)[1]:
            return await _error(send, 406, "Not Acceptable: the client must accept text/event-stream")
        st = await self._find(headers.get(SESSION_HEADER), headers, send)
        if st is None:
            return
        box = st.outlet.open_stream()
        st.in_flight += 1
        try:
            await send({"type": "http.response.start", "status": 200,
                        "headers": [*SSE_HEADERS, (SESSION_HEADER, st.id)]})
            async with anyio.create_task_group() as tg:
                tg.start_soon(until_disconnect, receive, tg.cancel_scope)
                tg.start_soon(_keep_alive, send)
                async for message in box:
                    await chunk(send, message_event(message))
                tg.cancel_scope.cancel()
        finally:
            st.outlet.close_stream(box)
            box.close()
            st.in_flight -= 1
            st.last = time.monotonic()
            await finish(send)

    async def delete(self, scope: Scope, send: Send) -> None:
        headers = _headers(scope)
        st = await self._find(headers.get(SESSION_HEADER), headers, send)
        if st is None:
            return
        self.sessions.pop(st.id, None)      # 404 from now on
        st.end()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})


async def _stream(reply: Reply, send: Send, item: object) -> bool:
    """The event-stream form of one answer: ITEM (the first thing that came), then the rest up to the answer."""
    while True:
        if item is TIMEOUT:
            await chunk(send, PING)
        elif item is None:
            if reply.error is not None:
                await chunk(send, message_event(rpc.error(reply.request_id, CONNECTION_CLOSED, reply.error)))
            return False
        else:
            assert isinstance(item, JSONRPCMessage)
            await chunk(send, message_event(item))
            if is_reply(item):
                return isinstance(item.root, JSONRPCResponse)
        item = await reply.next(PING_INTERVAL)


def _cancelled_id(root: JSONRPCNotification) -> RequestId | None:
    """The client request a ``notifications/cancelled`` is about (read before the hub renumbers it)."""
    if root.method != "notifications/cancelled" or not root.params:
        return None
    rid = root.params.get("requestId")
    return rid if isinstance(rid, (int, str)) else None


async def _invalid(send: Send, body: bytes) -> None:
    try:
        json.loads(body)
    except ValueError:
        return await _error(send, 400, "Parse error: the body is not JSON", PARSE_ERROR)
    await _error(send, 400, "Invalid Request: not a JSON-RPC message")


async def _keep_alive(send: Send) -> None:
    while True:
        await anyio.sleep(PING_INTERVAL)
        await chunk(send, PING)
