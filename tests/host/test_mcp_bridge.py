"""The MCP bridge relays MCP over SSE and streamable HTTP: real bridge process, real MCP servers (mcp-server-time
and the project's fixture), real SDK clients. No mock anywhere."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from test_mcp_harness import FIXTURE_CMD, TIME_CMD, TRANSPORTS, BridgeProcess, connect, run, text, wait_for

from mcp import types


@pytest.fixture(scope="module")
def fixture_bridge() -> Iterator[BridgeProcess]:
    with BridgeProcess(FIXTURE_CMD) as bridge:
        yield bridge


@pytest.fixture(scope="module")
def time_bridge() -> Iterator[BridgeProcess]:
    with BridgeProcess(TIME_CMD) as bridge:
        yield bridge


class Inbox:
    """Notifications a client received (through ClientSession's message_handler)."""

    def __init__(self) -> None:
        self.items: list[types.ServerNotification] = []

    async def __call__(self, message: Any) -> None:
        if isinstance(message, types.ServerNotification):
            self.items.append(message)

    def methods(self) -> list[str]:
        return [n.root.method for n in self.items]

    async def wait_for(self, method: str, timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while method not in self.methods():
                await asyncio.sleep(0.02)


def sampler(tag: str, calls: list[str] | None = None) -> Any:
    async def sampling(ctx: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
        prompt = params.messages[0].content
        assert isinstance(prompt, types.TextContent)
        if calls is not None:
            calls.append(prompt.text)
        return types.CreateMessageResult(role="assistant", model="test",
                                         content=types.TextContent(type="text", text=f"{tag}:{prompt.text}"))
    return sampling


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_mcp_server_time_over_both_transports(time_bridge: BridgeProcess, transport: str) -> None:
    async def check() -> None:
        async with connect(time_bridge, transport) as s:
            tools = {t.name for t in (await s.list_tools()).tools}
            assert {"get_current_time", "convert_time"} <= tools
            result = await s.call_tool("get_current_time", {"timezone": "Asia/Tokyo"})
            assert not result.isError and '"timezone": "Asia/Tokyo"' in text(result)
    run(check())


def test_listening_line_health_and_mcp_slash(time_bridge: BridgeProcess) -> None:
    assert time_bridge.line == (f"lazyllm-mcp-bridge listening sse=http://127.0.0.1:{time_bridge.port}/sse "
                                f"mcp=http://127.0.0.1:{time_bridge.port}/mcp")
    status, body = time_bridge.health()
    assert status == 200 and body["status"] == "ok" and body["server"] == "mcp-time" and body["child_pid"]
    bridge = BridgeProcess([])
    bridge.mcp = time_bridge.mcp + "/"                       # '/mcp/' works as well as '/mcp'

    async def slash() -> None:
        async with connect(bridge, "mcp") as s:
            assert (await s.list_tools()).tools
    run(slash())


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_tools_resources_prompts_completion(fixture_bridge: BridgeProcess, transport: str) -> None:
    async def check() -> None:
        async with connect(fixture_bridge, transport) as s:
            assert text(await s.call_tool("add", {"a": 20, "b": 22})) == "42"
            resources = await s.list_resources()
            assert [str(r.uri) for r in resources.resources] == ["fixture://greeting"]
            content = (await s.read_resource("fixture://greeting")).contents[0]
            assert isinstance(content, types.TextResourceContents) and content.text == "hello from the fixture"
            assert [p.name for p in (await s.list_prompts()).prompts] == ["greet"]
            prompt = await s.get_prompt("greet", {"name": "Ada"})
            first = prompt.messages[0].content
            assert isinstance(first, types.TextContent) and "Ada" in first.text
            done = await s.complete(types.PromptReference(type="ref/prompt", name="greet"),
                                    {"name": "name", "value": "Al"})
            assert done.completion.values == ["Alice", "Albert"]
            missing = await s.call_tool("no_such_tool", {})
            assert missing.isError
    run(check())


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_progress_both_directions(fixture_bridge: BridgeProcess, transport: str) -> None:
    async def check() -> None:
        seen: list[float] = []

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            seen.append(progress)

        async with connect(fixture_bridge, transport) as s:
            result = await s.call_tool("progress", {"steps": 4}, progress_callback=on_progress)
            assert text(result) == "done 4" and seen == [1, 2, 3, 4]
            await s.send_progress_notification(f"client-{transport}", 0.5, 1.0)
            assert text(await s.call_tool("client_progress", {})) == f"client-{transport}:0.5"
    run(check())


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_server_to_client_requests_reach_the_right_session(fixture_bridge: BridgeProcess, transport: str) -> None:
    """Sampling, elicitation and roots/list from a shared child go to the session whose call caused them."""
    async def elicit(ctx: Any, params: Any) -> types.ElicitResult:
        return types.ElicitResult(action="accept", content={"name": "Ada"})

    async def roots(ctx: Any) -> types.ListRootsResult:
        return types.ListRootsResult(roots=[types.Root(uri="file:///work/a")])   # type: ignore[arg-type]

    async def check() -> None:
        a_calls: list[str] = []
        b_calls: list[str] = []
        async with connect(fixture_bridge, transport, sampling_callback=sampler("A", a_calls),
                           elicitation_callback=elicit, list_roots_callback=roots) as a, \
                connect(fixture_bridge, "sse", sampling_callback=sampler("B", b_calls)) as b:
            assert text(await a.call_tool("sample", {"prompt": "hi"})) == "A:hi"
            assert text(await b.call_tool("sample", {"prompt": "yo"})) == "B:yo"
            assert (a_calls, b_calls) == (["hi"], ["yo"])
            assert text(await a.call_tool("ask_name", {})) == "accept:Ada"
            assert text(await a.call_tool("roots", {})) == "file:///work/a"
    run(check())


def test_ambiguous_server_request_is_refused_not_misrouted(fixture_bridge: BridgeProcess) -> None:
    """Two sessions busy at once: the bridge cannot know whose sampling request it is, so it refuses it."""
    async def check() -> None:
        a_calls: list[str] = []
        async with connect(fixture_bridge, "sse", sampling_callback=sampler("A", a_calls)) as a, \
                connect(fixture_bridge, "mcp", sampling_callback=sampler("B")) as b:
            slow = asyncio.ensure_future(a.call_tool("slow", {"seconds": 1.0}))
            await asyncio.sleep(0.3)
            refused = await b.call_tool("sample", {"prompt": "secret of B"})
            assert refused.isError and "--isolate" in text(refused)
            assert text(await slow) == "slept 1.0" and a_calls == []
    run(check())


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_logging_level_is_per_session(fixture_bridge: BridgeProcess, transport: str) -> None:
    async def check() -> None:
        quiet_logs: list[Any] = []
        loud_logs: list[Any] = []

        async def quiet_cb(params: types.LoggingMessageNotificationParams) -> None:
            quiet_logs.append(params.data)

        async def loud_cb(params: types.LoggingMessageNotificationParams) -> None:
            loud_logs.append(params.data)

        async with connect(fixture_bridge, transport, logging_callback=quiet_cb) as quiet, \
                connect(fixture_bridge, transport, logging_callback=loud_cb) as loud:
            await quiet.set_logging_level("error")
            await loud.call_tool("log", {"level": "info", "message": "info-msg"})
            await loud.call_tool("log", {"level": "error", "message": "error-msg"})
            async with asyncio.timeout(10):
                while "error-msg" not in quiet_logs or "error-msg" not in loud_logs:
                    await asyncio.sleep(0.02)
            assert loud_logs == ["info-msg", "error-msg"] and quiet_logs == ["error-msg"]
    run(check())


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_list_changed_to_all_resource_updates_to_subscribers(fixture_bridge: BridgeProcess, transport: str) -> None:
    async def check() -> None:
        sub_inbox, other_inbox = Inbox(), Inbox()
        async with connect(fixture_bridge, transport, message_handler=sub_inbox) as sub, \
                connect(fixture_bridge, "sse", message_handler=other_inbox) as other:
            await sub.subscribe_resource("fixture://greeting")                # type: ignore[arg-type]
            await other.call_tool("notify_changed", {})
            await sub_inbox.wait_for("notifications/tools/list_changed")
            await other_inbox.wait_for("notifications/tools/list_changed")
            await other.call_tool("touch", {"uri": "fixture://greeting"})
            await sub_inbox.wait_for("notifications/resources/updated")
            await other.call_tool("echo", {"text": "barrier"})
            assert "notifications/resources/updated" not in other_inbox.methods()
            await other.subscribe_resource("fixture://greeting")              # type: ignore[arg-type]
            await sub.unsubscribe_resource("fixture://greeting")              # type: ignore[arg-type]
            state = json.loads(text(await other.call_tool("state", {})))
            assert state["subscribed"] == ["fixture://greeting"]              # one subscriber is left
            await other.unsubscribe_resource("fixture://greeting")            # type: ignore[arg-type]
            state = json.loads(text(await other.call_tool("state", {})))
            assert state["subscribed"] == []                                  # the last one is gone
    run(check())


def test_garbage_on_stdout_is_ignored(fixture_bridge: BridgeProcess) -> None:
    async def check() -> None:
        async with connect(fixture_bridge, "sse") as s:
            assert text(await s.call_tool("garbage", {})) == "after garbage"
            assert text(await s.call_tool("echo", {"text": "still fine"})) == "still fine"
    run(check())
    assert fixture_bridge.health()[0] == 200
    assert "not JSON-RPC" in fixture_bridge.stderr()


def test_concurrent_clients_never_get_each_others_replies(fixture_bridge: BridgeProcess) -> None:
    """N clients x M calls with distinct arguments, SSE and streamable HTTP at the same time, one shared child."""
    clients, calls = 8, 15

    async def client(index: int) -> list[str]:
        transport = TRANSPORTS[index % 2]
        wrong = []
        async with connect(fixture_bridge, transport) as s:
            for j in range(calls):
                want = f"{transport}-{index}-{j}"
                echo, total = await asyncio.gather(s.call_tool("echo", {"text": want}),
                                                   s.call_tool("add", {"a": index * 1000, "b": j}))
                if text(echo) != want or text(total) != str(index * 1000 + j):
                    wrong.append(f"{want}: {text(echo)} / {text(total)}")
        return wrong

    async def check() -> None:
        results = await asyncio.gather(*(client(i) for i in range(clients)))
        assert [w for r in results for w in r] == []
    run(check(), timeout=120)
    assert wait_for(lambda: fixture_bridge.health()[1].get("sessions") == {"sse": 0, "mcp": 0}, 10)

