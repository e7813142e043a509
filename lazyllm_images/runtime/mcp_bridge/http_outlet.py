"""Where the messages of one streamable-HTTP session go: the open response of the client call they belong to, or
the session's ``GET`` stream.

Each client request gets a ``Reply``: a small queue its POST handler waits on. The reply itself ends it; anything
the MCP server sends about that call before (progress, a log line, a sampling/elicitation/roots request) queues
there too, and its arrival is what turns the response into an event stream (``http_transport``). Everything else
(list-changed, resource updates, messages of calls already answered) goes to the ``GET`` stream, and is held (the
latest ``BACKLOG``) while the client has none open, so nothing sent between initialize and its ``GET`` is lost.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Final

import anyio

from mcp.types import JSONRPCError, JSONRPCMessage, JSONRPCResponse, RequestId

from .mailbox import Mailbox

log = logging.getLogger("lazyllm.mcp_bridge.http")

REPLY_LIMIT = 4096         # messages queued on one call's response before its client counts as stuck
STREAM_LIMIT = 4096        # the same for the GET stream (a stuck GET stream is closed; the client may reopen it)
BACKLOG = 256              # messages held for a session without an open GET stream (oldest dropped)
SESSION_ENDED = "the MCP session ended before this request was answered"


class _Timeout:
    """What ``Reply.next`` returns when nothing came within its timeout."""


TIMEOUT: Final = _Timeout()


def is_reply(message: JSONRPCMessage) -> bool:
    return isinstance(message.root, (JSONRPCResponse, JSONRPCError))


class Reply:
    """The open response to one client request."""

    __slots__ = ("request_id", "sse", "items", "closed", "error", "_waiter")

    def __init__(self, request_id: RequestId, sse: bool) -> None:
        self.request_id = request_id
        self.sse = sse                          # the client accepts an event stream for it
        self.items: deque[JSONRPCMessage] = deque()
        self.closed = False
        self.error: str | None = None           # why it was closed without an answer (None: cancelled)
        self._waiter: asyncio.Future[None] | None = None

    def put(self, message: JSONRPCMessage) -> bool:
        if len(self.items) >= REPLY_LIMIT and not is_reply(message):
            return False
        self.items.append(message)
        self._wake()
        return True

    def close(self, error: str | None) -> None:
        """No answer will come: ERROR is why (None: the client cancelled the request)."""
        if not self.closed:
            self.closed, self.error = True, error
            self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def next(self, timeout: float | None) -> JSONRPCMessage | _Timeout | None:
        """The next message for this call; None once closed with nothing left; TIMEOUT after TIMEOUT seconds."""
        if not self.items:
            if self.closed:
                return None
            loop = asyncio.get_running_loop()
            waiter = self._waiter = loop.create_future()
            timer = loop.call_later(timeout, _expire, waiter) if timeout else None
            try:
                await waiter
            finally:
                self._waiter = None
                if timer is not None:
                    timer.cancel()
            if not self.items:
                return None if self.closed else TIMEOUT
        return self.items.popleft()


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class HttpOutlet:
    """A session's push outlet (``session.PushOutlet``): routes each message without waiting."""

    def __init__(self) -> None:
        self.replies: dict[RequestId, Reply] = {}
        self.stream: Mailbox[JSONRPCMessage] | None = None
        self.backlog: deque[JSONRPCMessage] = deque(maxlen=BACKLOG)
        self.closed = False

    def open_reply(self, request_id: RequestId, sse: bool) -> Reply | None:
        """A response for client request REQUEST_ID; None when that id is already in flight or the session ended."""
        if self.closed or request_id in self.replies:
            return None
        reply = self.replies[request_id] = Reply(request_id, sse)
        return reply

    def cancel(self, request_id: RequestId) -> None:
        """The client cancelled REQUEST_ID: no answer comes, its response ends."""
        reply = self.replies.pop(request_id, None)
        if reply is not None:
            reply.close(None)

    def push(self, message: JSONRPCMessage, related: RequestId | None) -> bool:
        if self.closed:
            return True
        root = message.root
        if isinstance(root, (JSONRPCResponse, JSONRPCError)):
            reply = self.replies.pop(root.id, None)
            return reply.put(message) if reply is not None else True   # no reply: it was cancelled
        if related is not None:
            reply = self.replies.get(related)
            if reply is not None and reply.sse:
                return reply.put(message)
        self._unsolicited(message)
        return True

    def _unsolicited(self, message: JSONRPCMessage) -> None:
        stream = self.stream
        if stream is None:
            self.backlog.append(message)
            return
        try:
            if stream.put(message):
                return
        except anyio.ClosedResourceError:           # that stream just ended
            pass
        log.warning("a streamable-HTTP client is not reading its GET stream; closing that stream")
        self.close_stream(stream)
        stream.close()
        self.backlog.append(message)

    def open_stream(self) -> Mailbox[JSONRPCMessage]:
        """A new GET stream (it replaces an older one, which ends), with what was held for it."""
        if self.stream is not None:
            self.stream.close()
        box: Mailbox[JSONRPCMessage] = Mailbox(STREAM_LIMIT)
        while self.backlog:
            box.put(self.backlog.popleft())
        self.stream = box
        if self.closed:
            box.close()
        return box

    def close_stream(self, box: Mailbox[JSONRPCMessage]) -> None:
        if self.stream is box:
            self.stream = None

    def shut(self) -> None:
        """The session ended: calls still open get an error answer, the GET stream ends."""
        if self.closed:
            return
        self.closed = True
        replies, self.replies = self.replies, {}
        for reply in replies.values():
            reply.close(SESSION_ENDED)
        if self.stream is not None:
            self.stream.close()

    async def close(self) -> None:
        self.shut()
