"""The streamable-HTTP transport's pure parts: which response each message goes out on (``http_outlet``), and
when an answer is plain JSON or an event stream (``http_transport``), with a fake ASGI ``send``."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import anyio
import pytest

from lazyllm_images.runtime.mcp_bridge import http_transport
from lazyllm_images.runtime.mcp_bridge import jsonrpc as rpc
from lazyllm_images.runtime.mcp_bridge.http_outlet import BACKLOG, SESSION_ENDED, TIMEOUT, HttpOutlet, Reply
from lazyllm_images.runtime.mcp_bridge.http_transport import StreamableHttpTransport

PROGRESS = rpc.notification("notifications/progress", {"progressToken": "t", "progress": 1})
CHANGED = rpc.notification("notifications/tools/list_changed")


def test_answer_and_its_messages_go_to_the_calls_reply() -> None:
    out = HttpOutlet()
    reply = out.open_reply(1, sse=True)
    assert reply is not None and out.open_reply(1, sse=True) is None          # one open reply per id
    assert out.push(PROGRESS, 1) and out.push(CHANGED, None) and out.push(rpc.response(1, {}), None)
    assert list(reply.items) == [PROGRESS, rpc.response(1, {})]
    assert list(out.backlog) == [CHANGED] and 1 not in out.replies           # answered: closed for routing
    assert out.push(PROGRESS, 1) and list(out.backlog) == [CHANGED, PROGRESS]  # late: to the GET stream
    assert out.push(rpc.response(99, {}), None) and len(out.backlog) == 2     # nobody waits: dropped


def test_json_only_reply_sends_its_messages_to_the_get_stream() -> None:
    out = HttpOutlet()
    reply = out.open_reply("a", sse=False)
    assert reply is not None
    out.push(PROGRESS, "a")
    assert not reply.items and list(out.backlog) == [PROGRESS]


def test_get_stream_takes_the_backlog_and_a_newer_one_replaces_it() -> None:
    out = HttpOutlet()
    for _ in range(BACKLOG + 5):
        out.push(CHANGED, None)
    assert len(out.backlog) == BACKLOG                                        # the latest ones are held
    first = out.open_stream()
    assert not out.backlog and not first.consumer_waiting
    second = out.open_stream()
    with pytest.raises(anyio.ClosedResourceError):
        first.put(CHANGED)                                                    # the older stream ended
    out.push(CHANGED, None)
    out.close_stream(first)                                                   # no effect on the current one
    assert out.stream is second


def test_shut_answers_open_calls_and_cancel_ends_one_quietly() -> None:
    out = HttpOutlet()
    a, b = out.open_reply(1, sse=True), out.open_reply(2, sse=True)
    assert a is not None and b is not None
    out.cancel(1)
    assert a.closed and a.error is None
    out.shut()
    assert b.closed and b.error == SESSION_ENDED and out.open_reply(3, sse=True) is None
    assert out.push(PROGRESS, None)                                           # after the end: ignored


class _Sent:
    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    async def __call__(self, message: dict[str, Any]) -> None:
        self.messages.append(message)

    @property
    def status(self) -> int:
        return self.messages[0]["status"]

    @property
    def content_type(self) -> bytes:
        return dict(self.messages[0]["headers"])[b"content-type"]

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.messages[1:])


class _Session:
    id = b"0123456789abcdef0123456789abcdef"


async def _answer(reply: Reply, feed: list[tuple[float, Any]]) -> tuple[bool, _Sent]:
    transport = StreamableHttpTransport(bridge=None, max_body_bytes=1000, idle_timeout=None)  # type: ignore[arg-type]
    sent = _Sent()

    async def producer() -> None:
        for delay, item in feed:
            await asyncio.sleep(delay)
            if item is None:
                reply.close(None)
            else:
                reply.put(item)
    task = asyncio.ensure_future(producer())
    ok = await transport._respond(_Session(), reply, sent)          # type: ignore[arg-type]
    await task
    return ok, sent


def test_plain_json_when_the_answer_comes_first() -> None:
    ok, sent = asyncio.run(_answer(Reply(5, sse=True), [(0.01, rpc.response(5, {"x": 1}))]))
    assert ok and sent.status == 200 and sent.content_type == b"application/json"
    assert json.loads(sent.body) == {"jsonrpc": "2.0", "id": 5, "result": {"x": 1}}
    assert (b"mcp-session-id", _Session.id) in sent.messages[0]["headers"]


def test_event_stream_when_a_message_comes_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http_transport, "PING_INTERVAL", 0.05)
    feed = [(0.0, PROGRESS), (0.12, rpc.error(5, -1, "no"))]                 # a keep-alive ping between them
    ok, sent = asyncio.run(_answer(Reply(5, sse=True), feed))
    assert not ok and sent.content_type.startswith(b"text/event-stream")
    body = sent.body.decode()
    assert body.index("notifications/progress") < body.index(": ping") < body.index('"error"')
    assert sent.messages[-1] == {"type": "http.response.body", "body": b"", "more_body": False}


def test_a_slow_answer_switches_to_a_stream_with_pings(monkeypatch: pytest.MonkeyPatch) -> None:
    """So proxies do not drop a long call's silent connection (plain JSON could send nothing until the end)."""
    monkeypatch.setattr(http_transport, "PING_INTERVAL", 0.05)
    ok, sent = asyncio.run(_answer(Reply(5, sse=True), [(0.08, rpc.response(5, {}))]))
    assert ok and sent.content_type.startswith(b"text/event-stream") and sent.body.startswith(b": ping")
    ok, sent = asyncio.run(_answer(Reply(6, sse=False), [(0.08, rpc.response(6, {}))]))
    assert ok and sent.content_type == b"application/json"                   # unless the client takes JSON only


def test_cancelled_and_ended_calls() -> None:
    ok, sent = asyncio.run(_answer(Reply(5, sse=True), [(0.01, None)]))
    assert not ok and sent.content_type.startswith(b"text/event-stream") and b"data:" not in sent.body
    ended = Reply(6, sse=True)
    ended.close(SESSION_ENDED)
    ok, sent = asyncio.run(_answer(ended, []))
    assert not ok and json.loads(sent.body)["error"]["message"] == SESSION_ENDED


def test_reply_next_times_out() -> None:
    async def check() -> None:
        reply = Reply(1, sse=True)
        assert await reply.next(0.01) is TIMEOUT
        reply.put(PROGRESS)
        assert await reply.next(0.01) is PROGRESS
        reply.close(None)
        assert await reply.next(0.01) is None
    asyncio.run(check())
