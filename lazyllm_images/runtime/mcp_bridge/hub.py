"""One MCP server child shared by many client sessions: a JSON-RPC multiplexer.

The bridge is the child's only MCP client. Each client request gets a fresh child-side id (and progress token);
replies and progress go back to the session and id they came from, so concurrent clients never see each other's
replies. Server-to-client requests (sampling, elicitation, roots) go to the one session they can belong to
(see ``jsonrpc.pick_session``); list-changed notifications go to everyone; resource updates to subscribers;
log messages to sessions whose level lets them through. Each message for a session names the client call it
belongs to, where there is one (progress: its call; server requests and log messages: the session's latest call
in flight), so that streamable HTTP can send it on that call's response.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from dataclasses import dataclass
from typing import Any, Protocol
from collections.abc import Callable

from pydantic import ValidationError

from mcp.types import (INTERNAL_ERROR, JSONRPCError, JSONRPCMessage, JSONRPCNotification, JSONRPCRequest,
                       JSONRPCResponse, RequestId)

from . import jsonrpc as rpc
from .child import Child, ChildStartError

log = logging.getLogger("lazyllm.mcp_bridge.hub")

INIT_TIMEOUT = 120.0                # seconds for the child to answer initialize (npx may download first)
NO_TOKEN: Any = object()


class Downstream(Protocol):
    """What the hub needs from a client session."""

    capabilities: dict[str, Any]
    log_level: str | None
    subscriptions: set[str]

    def deliver(self, message: JSONRPCMessage, related: RequestId | None = None) -> None: ...


@dataclass
class Pending:
    session: Downstream | None        # None: the bridge's own request (nobody to answer)
    client_id: RequestId
    method: str
    token: Any = NO_TOKEN             # the client's progress token, if it sent one


class Hub:
    def __init__(self, child: Child, on_exit: Callable[[Hub, int | None], None]) -> None:
        self.child = child
        self.alive = False
        self.init_result: dict[str, Any] = {}
        self._on_exit = on_exit
        self._ids = itertools.count(1)
        self._pending: dict[int, Pending] = {}
        self._inflight: dict[Downstream, dict[int, None]] = {}     # session -> its child-side ids, in order
        self._by_client: dict[tuple[int, RequestId], int] = {}     # (id(session), client id) -> child id
        self._server_requests: dict[RequestId, Downstream] = {}    # child's own request id -> session asked
        self._subscribers: dict[str, set[Downstream]] = {}
        self._init: asyncio.Future[dict[str, Any]] | None = None
        self._reader: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ life

    async def start(self, init_params: dict[str, Any]) -> dict[str, Any]:
        """Start the child and run the MCP initialize handshake; the InitializeResult as a dict."""
        await self.child.start()
        self.alive = True
        self._init = asyncio.get_running_loop().create_future()
        self._reader = asyncio.create_task(self._read_loop(), name=f"hub-{self.child.pid}")
        self._send(rpc.request(0, "initialize", init_params))
        try:
            self.init_result = await asyncio.wait_for(self._init, INIT_TIMEOUT)
        except asyncio.TimeoutError:
            await self.close()
            raise ChildStartError(f"the MCP server did not answer initialize within {INIT_TIMEOUT:.0f} s") from None
        except BaseException:               # ChildStartError, or cancelled by a stop signal
            await asyncio.shield(self.close())
            raise
        self._send(rpc.notification("notifications/initialized"))
        return self.init_result

    async def close(self) -> None:
        """Stop the child (stdin EOF, then SIGTERM/SIGKILL to its group) and fail what is still pending."""
        self._on_exit = lambda hub, code: None
        await self.child.stop()
        if self._reader:
            try:
                await asyncio.wait_for(self._reader, 1.0)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                self._reader.cancel()
        self._gone("the MCP bridge is shutting down")

    async def _read_loop(self) -> None:
        try:
            while (line := await self.child.read_line()) is not None:
                self._dispatch_line(line)
        finally:
            # stdout is closed: end the process if it lingers, and whatever it left behind in its group
            await asyncio.shield(self.child.stop())
            code = self.child.returncode
            self._gone(f"the MCP server exited (code {code})")
            self._on_exit(self, code)

    def _gone(self, text: str) -> None:
        if not self.alive and not self._pending:
            return
        self.alive = False
        if self._init and not self._init.done():
            self._init.set_exception(ChildStartError(f"{text} before it finished initializing"))
        self.fail_pending(text)
        self._server_requests.clear()

    def fail_pending(self, text: str) -> None:
        """Answer every call in flight with an error result now (child gone, or the bridge stopping)."""
        pending, self._pending = self._pending, {}
        for p in pending.values():
            if p.session is not None:
                p.session.deliver(rpc.failure(p.client_id, p.method, text))
        self._inflight = {s: {} for s in self._inflight}
        self._by_client.clear()

    # ------------------------------------------------------------------ child -> clients

    def _dispatch_line(self, line: bytes) -> None:
        if not line.strip():
            return
        try:
            message = JSONRPCMessage.model_validate_json(line)
        except (ValidationError, ValueError):
            log.warning("MCP server %s wrote a line that is not JSON-RPC; ignored: %.200r", self.child.pid, line)
            return
        root = message.root
        if isinstance(root, (JSONRPCResponse, JSONRPCError)):
            self._on_response(message, root)
        elif isinstance(root, JSONRPCRequest):
            self._on_server_request(message, root)
        else:
            self._on_notification(message, root)

    def _on_response(self, message: JSONRPCMessage, root: JSONRPCResponse | JSONRPCError) -> None:
        child_id = root.id
        p = self._pending.pop(child_id, None) if isinstance(child_id, int) else None
        if p is None or not isinstance(child_id, int):
            if child_id == 0 and self._init and not self._init.done():
                self._finish_init(root)
            return                       # cancelled, or a late answer: nobody waits for it
        self._release(child_id, p)
        if p.session is not None:
            root.id = p.client_id
            p.session.deliver(message)

    def _finish_init(self, root: JSONRPCResponse | JSONRPCError) -> None:
        assert self._init
        if isinstance(root, JSONRPCError):
            self._init.set_exception(ChildStartError(f"the MCP server refused initialize: {root.error.message}"))
        else:
            self._init.set_result(root.result)

    def _release(self, child_id: int, p: Pending) -> None:
        if p.session is not None:
            self._inflight.get(p.session, {}).pop(child_id, None)
            self._by_client.pop((id(p.session), p.client_id), None)

    def _on_server_request(self, message: JSONRPCMessage, root: JSONRPCRequest) -> None:
        if root.method == "ping":
            self._send(rpc.response(root.id, {}))
            return
        session, why = rpc.pick_session(root.method, list(self._inflight), self._active, lambda s: s.capabilities)
        if session is None:
            log.warning("cannot relay %s from the MCP server: %s", root.method, why)
            self._send(rpc.error(root.id, INTERNAL_ERROR, why))
            return
        self._server_requests[root.id] = session
        session.deliver(message, self._latest_client_id(session))

    def _active(self, session: Downstream) -> int:
        """How many of SESSION's calls are in flight that may make the server ask the client something."""
        ids = self._inflight.get(session, {})
        return sum(1 for i in ids if i in self._pending and self._pending[i].method not in rpc.PASSIVE_METHODS)

    def _latest_client_id(self, session: Downstream) -> RequestId | None:
        """A client call of SESSION in flight: over streamable HTTP, messages about it ride on its response stream."""
        for child_id in reversed(self._inflight.get(session, {})):
            p = self._pending.get(child_id)
            if p is not None and p.method not in rpc.PASSIVE_METHODS:
                return p.client_id
        return None

    def _on_notification(self, message: JSONRPCMessage, root: JSONRPCNotification) -> None:
        params = root.params or {}
        method = root.method
        if method == "notifications/progress":
            self._on_progress(message, params)
        elif method == "notifications/cancelled":
            session = self._server_requests.pop(params.get("requestId"), None)  # type: ignore[arg-type]
            if session is not None:
                session.deliver(message)
        elif method == "notifications/resources/updated":
            for session in list(self._subscribers.get(str(params.get("uri")), ())):
                session.deliver(message)
        elif method == "notifications/message":     # over streamable HTTP, on the response of a call in flight
            for session in list(self._inflight):
                if rpc.level_passes(params.get("level"), session.log_level):
                    session.deliver(message, self._latest_client_id(session))
        else:                            # list_changed and anything else addressed to every client
            for session in list(self._inflight):
                session.deliver(message)

    def _on_progress(self, message: JSONRPCMessage, params: dict[str, Any]) -> None:
        token = params.get("progressToken")
        p = self._pending.get(token) if isinstance(token, int) else None
        if p is None or p.session is None or p.token is NO_TOKEN:
            return
        params["progressToken"] = p.token
        p.session.deliver(message, p.client_id)

    # ------------------------------------------------------------------ clients -> child

    def _send(self, message: JSONRPCMessage) -> None:
        self.child.write(rpc.encode(message))

    def forward_request(self, session: Downstream | None, message: JSONRPCMessage) -> None:
        """Send a client's request on with a fresh id (and progress token); its reply comes back to SESSION."""
        root = message.root
        assert isinstance(root, JSONRPCRequest)
        child_id = next(self._ids)
        p = Pending(session, root.id, root.method)
        meta = root.params.get("_meta") if root.params else None
        if isinstance(meta, dict) and "progressToken" in meta:
            p.token = meta["progressToken"]
            meta["progressToken"] = child_id
        self._pending[child_id] = p
        if session is not None:
            self._inflight.setdefault(session, {})[child_id] = None
            self._by_client[(id(session), root.id)] = child_id
        root.id = child_id
        self._send(message)

    def forward_notification(self, session: Downstream, message: JSONRPCMessage) -> None:
        root = message.root
        assert isinstance(root, JSONRPCNotification)
        if root.method == "notifications/cancelled" and root.params:
            child_id = self._by_client.pop((id(session), root.params.get("requestId")), None)  # type: ignore[arg-type]
            if child_id is None:
                return
            self._pending.pop(child_id, None)
            self._inflight.get(session, {}).pop(child_id, None)
            root.params["requestId"] = child_id
        self._send(message)

    def forward_response(self, session: Downstream, message: JSONRPCMessage) -> None:
        """A client's answer to a server-to-client request: only from the session it was sent to."""
        root = message.root
        assert isinstance(root, (JSONRPCResponse, JSONRPCError))
        if self._server_requests.get(root.id) is not session:
            log.debug("dropping an answer to an unknown server request %r", root.id)
            return
        del self._server_requests[root.id]
        self._send(message)

    # ------------------------------------------------------------------ sessions

    def attach(self, session: Downstream) -> None:
        """SESSION now uses this child (also after a restart: its subscriptions and log level are restored)."""
        self._inflight.setdefault(session, {})
        for uri in session.subscriptions:
            self._subscribe(None, uri, None)
            self._subscribers[uri].add(session)
        if session.log_level:
            self.set_level()

    def detach(self, session: Downstream) -> None:
        """SESSION is gone: cancel its calls, refuse what the child asked it, drop its subscriptions."""
        for child_id in self._inflight.pop(session, {}):
            p = self._pending.pop(child_id, None)
            if p is not None:
                self._by_client.pop((id(session), p.client_id), None)
                self._send(rpc.notification("notifications/cancelled",
                                            {"requestId": child_id, "reason": "client disconnected"}))
        for rid in [r for r, s in self._server_requests.items() if s is session]:
            del self._server_requests[rid]
            self._send(rpc.error(rid, INTERNAL_ERROR, "the client disconnected"))
        for uri in list(session.subscriptions):
            self.unsubscribe(session, uri, None)

    def subscribe(self, session: Downstream, uri: str, message: JSONRPCMessage) -> None:
        """Forward the first subscription to URI; later subscribers are answered here."""
        self._subscribe(session, uri, message)
        self._subscribers[uri].add(session)

    def _subscribe(self, session: Downstream | None, uri: str, message: JSONRPCMessage | None) -> None:
        subscribers = self._subscribers.setdefault(uri, set())
        if not subscribers:
            self.forward_request(session, message or rpc.request(0, "resources/subscribe", {"uri": uri}))
        elif session is not None and message is not None:
            session.deliver(rpc.response(message.root.id, {}))  # type: ignore[union-attr]

    def unsubscribe(self, session: Downstream, uri: str, message: JSONRPCMessage | None) -> None:
        """Forward the unsubscription of the last subscriber; earlier ones are answered here."""
        subscribers = self._subscribers.get(uri, set())
        was = session in subscribers
        subscribers.discard(session)
        if was and not subscribers:
            self._subscribers.pop(uri, None)
            self.forward_request(session if message else None,
                                 message or rpc.request(0, "resources/unsubscribe", {"uri": uri}))
        elif message is not None:
            session.deliver(rpc.response(message.root.id, {}))  # type: ignore[union-attr]

    def set_level(self, message: JSONRPCMessage | None = None, session: Downstream | None = None) -> None:
        """The child logs at the most verbose level any session asked for (each session is filtered here)."""
        level = rpc.most_verbose([s.log_level for s in self._inflight])
        if message is not None and session is not None:
            root = message.root
            assert isinstance(root, JSONRPCRequest) and root.params is not None
            root.params["level"] = level or root.params.get("level")
            self.forward_request(session, message)
        elif level:
            self.forward_request(None, rpc.request(0, "logging/setLevel", {"level": level}))

    def pending_for(self, session: Downstream) -> int:
        return len(self._inflight.get(session, {}))
