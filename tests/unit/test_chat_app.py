"""Chat page server over a scripted upstream (httpx transport): key handling, error mapping, event relay.

The real upstream (vLLM) and the real browser are exercised in tests/e2e/test_chat_page.py.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any, AsyncIterator, Callable

import anyio
import httpx

from lazyllm_images.runtime.chat.app import make_app
from lazyllm_images.runtime.chat.config import ChatConfig

KEY = "sk-unit-secret"
CFG = ChatConfig(upstream="http://up/v1/chat/completions", model="tiny", title="T <&>", api_key=KEY,
                 system_prompt="Be brief.", defaults={"temperature": 0})


class Stream(httpx.AsyncByteStream):
    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks, self.closed = chunks, False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for c in self.chunks:
            yield c

    async def aclose(self) -> None:
        self.closed = True


def sse_chunks(*contents: str, extra_final: dict[str, Any] | None = None) -> list[bytes]:
    out = [f"data: {json.dumps({'choices': [{'delta': {'content': c}}]})}\n\n".encode() for c in contents]
    final = {"choices": [{"delta": {}, "finish_reason": "stop"}], **(extra_final or {})}
    return out + [f"data: {json.dumps(final)}\n\n".encode(), b"data: [DONE]\n\n"]


@contextlib.asynccontextmanager
async def serve(handler: Callable[[httpx.Request], httpx.Response], cfg: ChatConfig = CFG
                ) -> AsyncIterator[httpx.AsyncClient]:
    app = make_app(cfg, transport=httpx.MockTransport(handler))
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://chat") as c:
            yield c


def events(text: str) -> list[dict[str, Any]]:
    return [json.loads(block[len("data: "):]) for block in text.split("\n\n") if block.startswith("data: ")]


def run(check: Callable[[], Any]) -> None:
    anyio.run(check)


def test_stream_relay_sends_key_upstream_only():
    seen: list[httpx.Request] = []
    stream = Stream(sse_chunks("Hel", "lo", extra_final={"sources": [{"path": "a.md", "text": "x", "score": 1}]}))

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=stream)

    async def check() -> None:
        async with serve(handler) as c:
            r = await c.post("/api/chat", json={"messages": [{"role": "user", "content": "hi"}]})
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
            evs = events(r.text)
            assert [e["type"] for e in evs] == ["delta", "delta", "sources", "done"]
            assert "".join(e.get("content", "") for e in evs) == "Hello" and evs[-1]["finish_reason"] == "stop"
            page, info = await c.get("/"), await c.get("/api/info")
            assert "<title>T &lt;&amp;&gt;</title>" in page.text
            assert info.json()["model"] == "tiny"
            assert KEY not in page.text + info.text + r.text
        assert stream.closed
        sent = seen[0]
        assert sent.headers["authorization"] == f"Bearer {KEY}"
        body = json.loads(sent.content)
        assert body["stream"] is True and body["model"] == "tiny" and body["temperature"] == 0
        assert body["messages"][0] == {"role": "system", "content": "Be brief."}

    run(check)


def test_non_streamed_reply_becomes_the_same_events():
    reply = {"choices": [{"message": {"role": "assistant", "content": "Whole."}, "finish_reason": "length"}]}

    async def check() -> None:
        async with serve(lambda req: httpx.Response(200, json=reply)) as c:
            r = await c.post("/api/chat", json={"messages": [{"role": "user", "content": "hi"}]})
            assert events(r.text) == [{"type": "delta", "content": "Whole."},
                                      {"type": "done", "finish_reason": "length"}]

    run(check)


def test_upstream_errors_and_unreachable_upstream_are_reported():
    def unauthorized(req: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"error": {"message": "Incorrect API key provided"}})

    def down(req: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("Connection refused", request=req)

    async def check() -> None:
        body = {"messages": [{"role": "user", "content": "hi"}]}
        async with serve(unauthorized) as c:
            r = await c.post("/api/chat", json=body)
            err = r.json()["error"]
            assert r.status_code == 502 and err["upstream_status"] == 401
            assert err["message"] == "the model server answered HTTP 401: Incorrect API key provided"
        async with serve(down) as c:
            r = await c.post("/api/chat", json=body)
            assert r.status_code == 502 and "cannot reach the model server" in r.json()["error"]["message"]
            bad = await c.post("/api/chat", content=b"{", headers={"content-type": "application/json"})
            assert bad.status_code == 400 and "not valid JSON" in bad.json()["error"]["message"]
            assert (await c.get("/healthz")).json() == {"status": "ok", "model": "tiny"}

    run(check)


def test_a_stream_that_breaks_ends_with_an_error_event():
    class Broken(Stream):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            yield sse_chunks("partial")[0]
            raise httpx.ReadError("connection reset")

    async def check() -> None:
        handler = lambda req: httpx.Response(200, headers={"content-type": "text/event-stream"},  # noqa: E731
                                             stream=Broken([]))
        async with serve(handler) as c:
            r = await c.post("/api/chat", json={"messages": [{"role": "user", "content": "hi"}]})
            evs = events(r.text)
            assert [e["type"] for e in evs] == ["delta", "error", "done"]
            assert "connection to the model server broke" in evs[1]["message"]

    run(check)
