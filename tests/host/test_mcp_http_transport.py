"""The bridge's own streamable-HTTP transport (``/mcp``), on the wire: plain JSON answers unless a call has more to
say first, then an event stream; session-id rules; DELETE; the GET stream; cancellation; server-to-client requests
on the call's own stream. Real bridge process and fixture server; raw HTTP where the wire is the point, the SDK
client where it is what users run."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from test_mcp_harness import FIXTURE_CMD, BridgeProcess, connect, run, text, wait_for

from mcp import types

ACCEPT = "application/json, text/event-stream"
VERSION = "2025-11-25"


@pytest.fixture(scope="module")
def bridge() -> Iterator[BridgeProcess]:
    with BridgeProcess(FIXTURE_CMD) as b:
        yield b


def rpc(rid: int | str | None, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    msg: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if rid is not None:
        msg["id"] = rid
    if params is not None:
        msg["params"] = params
    return msg


def call(rid: int, tool: str, arguments: dict[str, Any], token: str | None = None) -> dict[str, Any]:
    params: dict[str, Any] = {"name": tool, "arguments": arguments}
    if token is not None:
        params["_meta"] = {"progressToken": token}
    return rpc(rid, "tools/call", params)


INIT = rpc(1, "initialize", {"protocolVersion": VERSION, "clientInfo": {"name": "raw", "version": "0"},
                             "capabilities": {"sampling": {}}})


def events(body: str) -> list[dict[str, Any]]:
    """The JSON-RPC messages of an event-stream body, in order."""
    return [json.loads(line[len("data: "):]) for line in body.splitlines() if line.startswith("data: ")]


class Raw:
    """One /mcp session driven by hand (httpx): initialize, then requests with its Mcp-Session-Id."""

    def __init__(self, bridge: BridgeProcess, accept: str = ACCEPT) -> None:
        self.url = bridge.mcp
        self.http = httpx.Client(timeout=30)
        r = self.http.post(self.url, json=INIT, headers={"accept": accept, "content-type": "application/json"})
        assert r.status_code == 200 and r.headers["content-type"] == "application/json", r.text
        self.sid = r.headers["mcp-session-id"]
        self.headers = {"accept": accept, "content-type": "application/json", "mcp-session-id": self.sid,
                        "mcp-protocol-version": VERSION}
        assert self.post(rpc(None, "notifications/initialized")).status_code == 202

    def post(self, body: Any, **headers: str) -> httpx.Response:
        return self.http.post(self.url, json=body, headers={**self.headers, **headers})

    def close(self) -> None:
        self.http.delete(self.url, headers=self.headers)
        self.http.close()

    def __enter__(self) -> Raw:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def test_fast_call_is_answered_with_plain_json(bridge: BridgeProcess) -> None:
    with Raw(bridge) as s:
        r = s.post(call(2, "add", {"a": 2, "b": 40}))
        assert r.status_code == 200 and r.headers["content-type"] == "application/json"
        assert r.headers["mcp-session-id"] == s.sid and int(r.headers["content-length"]) == len(r.content)
        assert r.json()["id"] == 2 and r.json()["result"]["content"][0]["text"] == "42"
        r = s.post(rpc("p", "ping"))
        assert r.headers["content-type"] == "application/json" and r.json() == {"jsonrpc": "2.0", "id": "p",
                                                                                 "result": {}}
        listed = s.post(rpc(3, "tools/list")).json()
        assert "progress" in {t["name"] for t in listed["result"]["tools"]}


def test_call_with_progress_becomes_an_event_stream(bridge: BridgeProcess) -> None:
    with Raw(bridge) as s:
        r = s.post(call(7, "progress", {"steps": 3}, token="tok-a"))
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        got = events(r.text)
        assert [m.get("method") for m in got] == ["notifications/progress"] * 3 + [None]
        assert [m["params"]["progressToken"] for m in got[:3]] == ["tok-a"] * 3          # the client's own token
        assert [m["params"]["progress"] for m in got[:3]] == [1, 2, 3]
        assert got[-1]["id"] == 7 and got[-1]["result"]["content"][0]["text"] == "done 3"
        plain = s.post(call(8, "progress", {"steps": 2}))               # no progress token: nothing to stream
        assert plain.headers["content-type"] == "application/json" and plain.json()["id"] == 8


def test_log_message_rides_on_the_response_of_its_call(bridge: BridgeProcess) -> None:
    with Raw(bridge) as s:
        r = s.post(call(4, "log", {"level": "warning", "message": "careful"}))
        assert r.headers["content-type"].startswith("text/event-stream")
        got = events(r.text)
        assert got[0]["method"] == "notifications/message" and got[0]["params"]["data"] == "careful"
        assert got[-1]["id"] == 4


def test_progress_reaches_the_sdk_client_over_mcp_in_order(bridge: BridgeProcess) -> None:
    async def check() -> None:
        seen: list[tuple[float, str | None]] = []

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            seen.append((progress, message))

        async with connect(bridge, "mcp") as s:
            result = await s.call_tool("progress", {"steps": 5}, progress_callback=on_progress)
            assert text(result) == "done 5"
            assert seen == [(i, f"step {i}") for i in range(1, 6)]
            assert text(await s.call_tool("echo", {"text": "after"})) == "after"
    run(check())


def test_json_only_client_gets_json_and_progress_on_the_get_stream(bridge: BridgeProcess) -> None:
    """A client that accepts only application/json is never sent an event stream for a call."""
    with Raw(bridge, accept="application/json") as s:
        r = s.post(call(5, "progress", {"steps": 2}, token="t"))
        assert r.headers["content-type"] == "application/json" and r.json()["id"] == 5
        got = []
        with s.http.stream("GET", s.url, headers={**s.headers, "accept": "text/event-stream"}) as stream:
            for line in stream.iter_lines():
                if line.startswith("data: "):
                    got.append(json.loads(line[len("data: "):]))
                    if len(got) == 2:
                        break
        assert [(m["method"], m["params"]["progress"]) for m in got] == [("notifications/progress", 1),
                                                                       ("notifications/progress", 2)]


def test_session_id_rules(bridge: BridgeProcess) -> None:
    base = {"accept": ACCEPT, "content-type": "application/json"}
    with httpx.Client(timeout=10) as http:
        assert http.post(bridge.mcp, json=rpc(2, "ping"), headers=base).status_code == 400          # missing
        unknown = {**base, "mcp-session-id": "0" * 32}
        assert http.post(bridge.mcp, json=rpc(2, "ping"), headers=unknown).status_code == 404
        assert http.post(bridge.mcp, json=INIT, headers=unknown).status_code == 404                # no re-open
        assert http.get(bridge.mcp, headers={**unknown, "accept": "text/event-stream"}).status_code == 404
        assert http.delete(bridge.mcp, headers=unknown).status_code == 404
        assert http.get(bridge.mcp, headers={"accept": "text/event-stream"}).status_code == 400
        assert http.put(bridge.mcp, headers=base).status_code == 405
    with Raw(bridge) as a, Raw(bridge) as b:
        assert a.sid != b.sid and len(a.sid) >= 32
        bad = a.post(rpc(2, "ping"), **{"mcp-protocol-version": "1999-01-01"})
        assert bad.status_code == 400 and "Unsupported protocol version" in bad.json()["error"]["message"]
        assert a.post(rpc(3, "ping"), **{"mcp-protocol-version": "2025-03-26"}).status_code == 200
        assert a.post(rpc(4, "ping"), accept="text/event-stream").status_code == 406
        assert a.post(rpc(5, "ping"), **{"content-type": "text/plain"}).status_code == 415
        garbage = a.http.post(a.url, content=b"{not json", headers=a.headers)
        assert garbage.status_code == 400 and garbage.json()["error"]["code"] == types.PARSE_ERROR
        assert a.post({"jsonrpc": "2.0", "result": {}, "id": 999}).status_code == 202              # an answer: 202
        assert b.post(rpc(6, "ping")).json()["id"] == 6


def test_delete_ends_the_session_and_its_open_calls(bridge: BridgeProcess) -> None:
    async def check() -> None:
        s = Raw(bridge)
        async with httpx.AsyncClient(timeout=30) as http:
            pending = asyncio.ensure_future(http.post(s.url, json=call(9, "slow", {"seconds": 30}),
                                                      headers=s.headers))
            await asyncio.sleep(0.5)
            assert (await http.delete(s.url, headers=s.headers)).status_code == 200
            r = await asyncio.wait_for(pending, 5)                       # answered at once, not after 30 s
            answer = events(r.text)[-1] if r.headers["content-type"].startswith("text/") else r.json()
            assert answer["id"] == 9 and "error" in answer
            assert (await http.post(s.url, json=rpc(10, "ping"), headers=s.headers)).status_code == 404
            assert (await http.delete(s.url, headers=s.headers)).status_code == 404
        s.http.close()
    run(check())
    assert wait_for(lambda: bridge.health()[1]["sessions"]["mcp"] == 0, 5)


def test_cancelled_call_ends_its_response(bridge: BridgeProcess) -> None:
    async def check() -> None:
        with Raw(bridge) as s:
            async with httpx.AsyncClient(timeout=30) as http:
                pending = asyncio.ensure_future(http.post(s.url, json=call(11, "slow", {"seconds": 30}),
                                                          headers=s.headers))
                await asyncio.sleep(0.5)
                cancel = rpc(None, "notifications/cancelled", {"requestId": 11, "reason": "changed my mind"})
                assert (await http.post(s.url, json=cancel, headers=s.headers)).status_code == 202
                r = await asyncio.wait_for(pending, 5)
                assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
                assert events(r.text) == []                              # no answer after a cancel
                assert (await http.post(s.url, json=rpc(12, "ping"), headers=s.headers)).json()["id"] == 12
    run(check())


async def _read_events(response: httpx.Response, into: list[dict[str, Any]]) -> None:
    async for line in response.aiter_lines():
        if line.startswith("data: "):
            into.append(json.loads(line[len("data: "):]))


def test_get_stream_delivers_list_changed_and_what_came_before_it(bridge: BridgeProcess) -> None:
    async def check() -> None:
        with Raw(bridge) as s, Raw(bridge) as other:
            assert other.post(call(2, "notify_changed", {})).status_code == 200   # s has no GET stream yet
            got: list[dict[str, Any]] = []
            async with httpx.AsyncClient(timeout=30) as http:
                get_headers = {**s.headers, "accept": "text/event-stream"}
                async with http.stream("GET", s.url, headers=get_headers) as stream:
                    assert stream.status_code == 200
                    assert stream.headers["content-type"].startswith("text/event-stream")
                    reader = asyncio.ensure_future(_read_events(stream, got))
                    await asyncio.to_thread(other.post, call(3, "notify_changed", {}))
                    methods = {"notifications/tools/list_changed", "notifications/prompts/list_changed",
                               "notifications/resources/list_changed"}
                    async with asyncio.timeout(10):
                        while len(got) < 6:
                            await asyncio.sleep(0.02)
                    reader.cancel()
            assert [m["method"] for m in got[:3]] == [m["method"] for m in got[3:]] and set(
                m["method"] for m in got) == methods                     # held ones first, then the live ones
    run(check())


def test_sdk_client_gets_list_changed_on_its_get_stream(bridge: BridgeProcess) -> None:
    async def check() -> None:
        seen: list[str] = []

        async def handler(message: Any) -> None:
            if isinstance(message, types.ServerNotification):
                seen.append(message.root.method)

        async with connect(bridge, "mcp", message_handler=handler) as s, connect(bridge, "mcp") as other:
            await other.call_tool("notify_changed", {})
            async with asyncio.timeout(10):
                while "notifications/tools/list_changed" not in seen:
                    await asyncio.sleep(0.02)
            assert text(await s.call_tool("echo", {"text": "x"})) == "x"
    run(check())


def test_sampling_request_goes_out_on_the_calls_own_stream(bridge: BridgeProcess) -> None:
    """The server asks the client mid-call: the request arrives on that call's response, the client answers with
    a POST (202), and the call's answer follows on the same response."""
    async def check() -> None:
        with Raw(bridge) as s:
            async with httpx.AsyncClient(timeout=30) as http:
                got: list[dict[str, Any]] = []
                async with http.stream("POST", s.url, json=call(20, "sample", {"prompt": "hi"}),
                                       headers=s.headers) as r:
                    assert r.headers["content-type"].startswith("text/event-stream")
                    async for line in r.aiter_lines():
                        if not line.startswith("data: "):
                            continue
                        got.append(json.loads(line[len("data: "):]))
                        if got[-1].get("method") == "sampling/createMessage":
                            answer = {"jsonrpc": "2.0", "id": got[-1]["id"], "result": {
                                "role": "assistant", "model": "raw",
                                "content": {"type": "text", "text": "sampled:hi"}}}
                            assert (await http.post(s.url, json=answer, headers=s.headers)).status_code == 202
                assert [m.get("method") for m in got] == ["sampling/createMessage", None]
                assert got[-1]["id"] == 20 and got[-1]["result"]["content"][0]["text"] == "sampled:hi"
    run(check())


def test_mcp_slash_and_sessions_close_cleanly(bridge: BridgeProcess) -> None:
    with httpx.Client(timeout=10) as http:
        r = http.post(bridge.mcp + "/", json=INIT, headers={"accept": ACCEPT, "content-type": "application/json"})
        assert r.status_code == 200 and r.headers["content-type"] == "application/json"
        sid = r.headers["mcp-session-id"]
        assert http.delete(bridge.mcp, headers={"mcp-session-id": sid}).status_code == 200     # same session
    assert wait_for(lambda: bridge.health()[1]["sessions"]["mcp"] == 0, 5)


def test_open_get_stream_holds_an_idle_session_and_closing_it_lets_it_expire() -> None:
    with BridgeProcess(FIXTURE_CMD, "--idle-timeout", "1") as b:
        s = Raw(b)
        with s.http.stream("GET", s.url, headers={**s.headers, "accept": "text/event-stream"}) as stream:
            assert stream.status_code == 200
            time.sleep(2.0)                                        # idle, but a request (the GET) is open
            assert s.post(rpc(2, "ping")).status_code == 200
        assert wait_for(lambda: b.health()[1]["sessions"]["mcp"] == 0, 5)   # (health is no request of it)
        assert s.post(rpc(3, "ping")).status_code == 404
        s.http.close()


def test_sigterm_answers_open_mcp_calls_and_ends_get_streams_quickly() -> None:
    with BridgeProcess(FIXTURE_CMD) as b:
        async def scenario() -> float:
            async with connect(b, "mcp") as s:                    # the SDK client holds a GET stream open
                pending = asyncio.ensure_future(s.call_tool("slow", {"seconds": 60}))
                await asyncio.sleep(0.5)
                t0 = time.monotonic()
                assert b.proc is not None
                b.proc.send_signal(signal.SIGTERM)
                result = await asyncio.wait_for(pending, 5)
                assert result.isError and "shutting down" in text(result)
                await asyncio.to_thread(b.proc.wait, 5)
                return time.monotonic() - t0
        took = run(scenario())
        assert took < 3.0 and b.proc is not None and b.proc.returncode == 0
