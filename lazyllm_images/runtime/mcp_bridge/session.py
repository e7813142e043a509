"""One client session (an SSE connection or a streamable-HTTP ``mcp-session-id``), relayed to an MCP server child.

The session terminates only what must be terminated per client (initialize, ping, its subscriptions and log
level) and relays everything else raw through the hub. Outgoing messages go through a per-session queue and
writer task (SSE: one socket per session), so one slow client never stalls the shared child or the other sessions;
or, for a ``PushOutlet`` (streamable HTTP: one queue per open response), straight to the outlet, which only queues.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, Protocol, cast

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream

from mcp.types import INVALID_REQUEST, JSONRPCMessage, JSONRPCNotification, JSONRPCRequest, RequestId

from . import jsonrpc as rpc
from .child import ChildStartError
from .hub import Hub
from .mailbox import Mailbox

if TYPE_CHECKING:
    from .bridge import Bridge

log = logging.getLogger("lazyllm.mcp_bridge.session")

OUTBOX = 4096        # messages queued for one client before it counts as stuck and is dropped

Outgoing = tuple[JSONRPCMessage, "RequestId | None"]


class Outlet(Protocol):
    """Where a session's messages to its client go: a transport's write side."""

    async def send(self, message: JSONRPCMessage, related: RequestId | None) -> None: ...

    async def close(self) -> None: ...


class PushOutlet(Protocol):
    """An outlet that only queues (never waits), so messages are handed to it in the caller's task: ``related``
    (the client request a message belongs to) picks the response it goes out on."""

    def push(self, message: JSONRPCMessage, related: RequestId | None) -> bool:
        """False: the client is not reading (too much queued); the session ends."""
        ...

    async def close(self) -> None: ...


class Session:
    def __init__(self, bridge: Bridge, kind: str, read: MemoryObjectReceiveStream[Any] | Mailbox[Any],
                 write: Outlet | PushOutlet, idle_timeout: float | None) -> None:
        self.bridge = bridge
        self.kind = kind                      # "sse" | "mcp"
        self.capabilities: dict[str, Any] = {}
        self.log_level: str | None = None
        self.subscriptions: set[str] = set()
        self.supervisor: Any = None           # Supervisor, set by initialize
        self._read = read
        self._write = write
        self._idle = idle_timeout
        self._last = time.monotonic()
        self._outbox: Mailbox[Outgoing] = Mailbox(OUTBOX)
        self._push = getattr(write, "push", None)
        self._scope: anyio.CancelScope | None = None

    def __hash__(self) -> int:
        return id(self)

    # ------------------------------------------------------------------ out

    def deliver(self, message: JSONRPCMessage, related: RequestId | None = None) -> None:
        """Queue MESSAGE for this client (never blocks the caller)."""
        self._last = time.monotonic()
        if self._push is not None:
            if not self._push(message, related):
                log.warning("%s session is not reading its messages (%d queued); closing it", self.kind, OUTBOX)
                self.end()
            return
        try:
            queued = self._outbox.put((message, related))
        except anyio.ClosedResourceError:
            return
        if not queued:
            log.warning("%s session is not reading its messages (%d queued); closing it", self.kind, OUTBOX)
            self.end()

    async def _writer(self) -> None:
        """Send queued messages in order; when the queue is closed (``finish``) or the client is gone, the
        session is over."""
        try:
            write = cast(Outlet, self._write)
            async for message, related in self._outbox:
                await write.send(message, related)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
            pass
        finally:
            with anyio.CancelScope(shield=True):
                await self._write.close()
            self.end()

    def end(self) -> None:
        """Stop now (what is still queued is dropped)."""
        if self._scope is not None:
            self._scope.cancel()

    def finish(self) -> None:
        """Stop once what is queued has been sent (a push outlet sends what it holds after the session ends)."""
        self._outbox.close()
        if self._push is not None:
            self.end()

    # ------------------------------------------------------------------ run

    async def run(self) -> None:
        try:
            async with anyio.create_task_group() as tg:
                self._scope = tg.cancel_scope
                if self._push is None:
                    tg.start_soon(self._writer)
                if self._idle:
                    tg.start_soon(self._idle_watch)
                await self._reader()
                tg.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                self._outbox.close()
                if self._push is not None:
                    await self._write.close()
                await self.bridge.release(self)

    async def _reader(self) -> None:
        try:
            async with self._read:
                async for item in self._read:
                    self._last = time.monotonic()
                    if isinstance(item, Exception):
                        log.warning("%s client sent a message that is not valid JSON-RPC: %s", self.kind, item)
                        continue
                    await self._handle(item.message)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            pass                          # the transport ended the session (DELETE, idle timeout, shutdown)

    async def _idle_watch(self) -> None:
        """End the session once nothing went either way for the idle timeout and no call is in flight."""
        assert self._idle
        while True:
            left = self._last + self._idle - time.monotonic()
            if left <= 0 and not self._busy():
                log.info("closing an %s session idle for %.0f s", self.kind, self._idle)
                self.end()
                return
            await anyio.sleep(max(left, min(1.0, self._idle)))

    def _busy(self) -> bool:
        hub = self._hub()
        return hub is not None and hub.pending_for(self) > 0

    def _hub(self) -> Hub | None:
        sup = self.supervisor
        return sup.hub if sup is not None and sup.ready else None

    # ------------------------------------------------------------------ in

    def offer(self, message: JSONRPCMessage) -> bool:
        """Handle MESSAGE right away, in the caller's task (the SSE post handler) when nothing needs waiting for;
        False: queue it for the reader instead. Only called while the reader has nothing queued, so order holds."""
        hub = self._hub()
        if hub is None or hub.child.congested:
            return False
        self._last = time.monotonic()
        return self._dispatch(message)

    async def _handle(self, message: JSONRPCMessage) -> None:
        if not self._dispatch(message):
            assert isinstance(message.root, JSONRPCRequest)
            await self._initialize(message.root)
        hub = self._hub()
        if hub is not None and hub.child.congested:
            await hub.child.drain()

    def _dispatch(self, message: JSONRPCMessage) -> bool:
        """Everything but initialize, which is left to the reader (False): it may start a child first."""
        root = message.root
        if isinstance(root, JSONRPCRequest):
            if root.method == "initialize":
                return False
            if root.method == "ping":
                self.deliver(rpc.response(root.id, {}))
                return True
            hub = self._hub()
            if hub is None:
                self.deliver(self._unavailable(root))
            else:
                self._relay(hub, message, root)
            return True
        hub = self._hub()
        if hub is None:
            return True
        if isinstance(root, JSONRPCNotification):
            if root.method != "notifications/initialized":   # the bridge initialized the child itself
                hub.forward_notification(self, message)
        else:
            hub.forward_response(self, message)
        return True

    def _relay(self, hub: Hub, message: JSONRPCMessage, root: JSONRPCRequest) -> None:
        params = root.params or {}
        if root.method in ("resources/subscribe", "resources/unsubscribe") and isinstance(params.get("uri"), str):
            uri = params["uri"]
            if root.method == "resources/subscribe":
                self.subscriptions.add(uri)
                hub.subscribe(self, uri, message)
            else:
                self.subscriptions.discard(uri)
                hub.unsubscribe(self, uri, message)
        elif root.method == "logging/setLevel" and isinstance(params.get("level"), str):
            self.log_level = params["level"]
            hub.set_level(message, self)
        else:
            hub.forward_request(self, message)

    def _unavailable(self, root: JSONRPCRequest) -> JSONRPCMessage:
        if self.supervisor is None:
            return rpc.error(root.id, INVALID_REQUEST, "send initialize first")
        state = self.supervisor.state
        text = ("the MCP server is restarting; try again shortly" if state in ("restarting", "starting")
                else "the MCP server has exited")
        return rpc.failure(root.id, root.method, text)

    async def _initialize(self, root: JSONRPCRequest) -> None:
        params = root.params or {}
        caps = params.get("capabilities")
        self.capabilities = caps if isinstance(caps, dict) else {}
        try:
            if self.supervisor is None:
                self.supervisor = await self.bridge.open(self, params)
        except ChildStartError as exc:
            self.deliver(rpc.internal_error(root.id, f"could not start the MCP server: {exc}"))
            return
        result = dict(self.supervisor.init_result)
        result["protocolVersion"] = rpc.negotiate_version(params.get("protocolVersion"),
                                                          str(result.get("protocolVersion")))
        self.deliver(rpc.response(root.id, result))
