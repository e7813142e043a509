"""The legacy HTTP+SSE transport (protocol 2024-11-05): ``GET /sse`` and ``POST /messages/?session_id=``.

Wire format as the SDK's ``SseServerTransport`` (an ``endpoint`` event with a relative URL, then one ``message``
event per JSON-RPC message; 202 ``Accepted`` for posts; 400/404/405/413 as the SDK answers them), so every SDK
client works unchanged. It is written here rather than taken from the SDK because the relay is its hot path:
posts are queued without waiting on the session task, each outgoing message is written to the socket in one step
by the session's writer (no extra stream hops, no per-message pydantic ``repr`` from debug-log f-strings), and
the body limit holds on every SDK version. Host/Origin/token checks happen in front of it (``security``).
Framing and body reading are shared with the streamable-HTTP transport (``wire``).
"""

from __future__ import annotations

import logging
import re
import uuid
import anyio
from pydantic import ValidationError
from starlette.types import Receive, Scope, Send

from mcp.shared.message import SessionMessage
from mcp.types import JSONRPCMessage, RequestId

from .bridge import Bridge
from .mailbox import Mailbox
from .session import Session
from .security import header, plain
from .wire import PING, PING_INTERVAL, SSE_HEADERS, chunk, event, finish, message_event, read_body, until_disconnect

log = logging.getLogger("lazyllm.mcp_bridge.sse")

ENDPOINT = "/messages/"
INBOX = 256                # posted messages queued for one session before posts get 503
SESSION_ID = re.compile(rb"(?:^|&)session_id=([0-9a-f]{32})(?:&|$)")


class SseOutlet:
    """One open ``GET /sse`` response: each message becomes one ``message`` event, written in one chunk."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self.closed = False

    async def event(self, name: bytes, data: bytes) -> None:
        await chunk(self._send, event(name, data))

    async def send(self, message: JSONRPCMessage, related: RequestId | None) -> None:
        if self.closed:
            raise anyio.ClosedResourceError
        await chunk(self._send, message_event(message))

    async def ping(self) -> None:
        await chunk(self._send, PING)

    async def close(self) -> None:
        self.closed = True


class SseTransport:
    def __init__(self, bridge: Bridge, max_body_bytes: int) -> None:
        self.bridge = bridge
        self.max_body_bytes = max_body_bytes
        self.inboxes: dict[bytes, tuple[Mailbox[SessionMessage], Session]] = {}

    async def connect(self, scope: Scope, receive: Receive, send: Send) -> None:
        """``GET /sse``: announce the post endpoint, then relay the session until either side ends it."""
        if scope["method"] != "GET":
            return await plain(send, 405, "Method Not Allowed", [(b"allow", b"GET")])
        session_id = uuid.uuid4().hex.encode()
        inbox: Mailbox[SessionMessage] = Mailbox(INBOX)
        await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
        outlet = SseOutlet(send)
        root = scope.get("root_path", "").rstrip("/").encode()
        await outlet.event(b"endpoint", root + ENDPOINT.encode() + b"?session_id=" + session_id)
        session = self.bridge.session("sse", inbox, outlet)
        self.inboxes[session_id] = (inbox, session)
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(until_disconnect, receive, tg.cancel_scope)
                tg.start_soon(_keep_alive, outlet)
                await session.run()
                tg.cancel_scope.cancel()
        finally:
            self.inboxes.pop(session_id, None)
            inbox.close()
            await finish(send)

    async def post(self, scope: Scope, receive: Receive, send: Send) -> None:
        """``POST /messages/?session_id=``: queue one JSON-RPC message for its session; 202 at once."""
        if scope["method"] != "POST":
            return await plain(send, 405, "Method Not Allowed", [(b"allow", b"POST")])
        found = SESSION_ID.search(scope.get("query_string", b""))
        if found is None:
            return await plain(send, 400, "session_id is required (32 hex digits)")
        entry = self.inboxes.get(found.group(1))
        if entry is None:
            return await plain(send, 404, "Could not find session")
        inbox, session = entry
        if not (header(scope, b"content-type") or "").lower().startswith("application/json"):
            return await plain(send, 400, "Invalid Content-Type header")
        body = await read_body(receive, self.max_body_bytes)
        if body is None:
            return await plain(send, 413, "Request body too large")
        try:
            message = JSONRPCMessage.model_validate_json(body)
        except ValidationError:
            return await plain(send, 400, "Could not parse message")
        if inbox.consumer_waiting and session.offer(message):   # handled here: nothing was queued before it
            return await plain(send, 202, "Accepted")
        try:
            queued = inbox.put(SessionMessage(message))
        except anyio.ClosedResourceError:
            return await plain(send, 404, "Could not find session")
        if not queued:
            return await plain(send, 503, "Session is busy; retry")
        await plain(send, 202, "Accepted")


async def _keep_alive(outlet: SseOutlet) -> None:
    while True:
        await anyio.sleep(PING_INTERVAL)
        await outlet.ping()
