"""ASGI pieces both transports write with: bodies read under a limit, server-sent events, plain JSON replies.

Messages are framed by hand (one ``send`` per event, no per-message stream hops): this is the relay's hot path.
"""

from __future__ import annotations

import anyio
from starlette.types import Receive, Send

from mcp.types import JSONRPCMessage

PING_INTERVAL = 15.0       # seconds between keep-alive comments (proxies drop silent streams)
SSE_HEADERS = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache, no-transform"),
               (b"connection", b"keep-alive"), (b"x-accel-buffering", b"no")]
PING = b": ping\r\n\r\n"


def dump(message: JSONRPCMessage) -> bytes:
    """A JSON-RPC message as the SDK writes it."""
    return message.model_dump_json(by_alias=True, exclude_none=True).encode()


def event(name: bytes, data: bytes) -> bytes:
    return b"event: " + name + b"\r\ndata: " + data + b"\r\n\r\n"


def message_event(message: JSONRPCMessage) -> bytes:
    return event(b"message", dump(message))


async def chunk(send: Send, data: bytes) -> None:
    """One piece of an open streamed response."""
    await send({"type": "http.response.body", "body": data, "more_body": True})


async def json_reply(send: Send, body: bytes, status: int = 200,
                     extra: list[tuple[bytes, bytes]] | None = None) -> None:
    """A complete ``application/json`` response in two sends."""
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *(extra or [])]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole request body, or None once it is over LIMIT bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b""
        piece = message.get("body", b"")
        size += len(piece)
        if size > limit:
            return None
        chunks.append(piece)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def until_disconnect(receive: Receive, scope: anyio.CancelScope) -> None:
    """Cancel SCOPE once the client hangs up (for long-lived responses)."""
    while (await receive())["type"] != "http.disconnect":
        pass
    scope.cancel()


async def finish(send: Send) -> None:
    """End a streamed response (the client sees the end of the stream); harmless when it is already gone."""
    with anyio.CancelScope(shield=True):
        try:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except (OSError, RuntimeError):
            pass
