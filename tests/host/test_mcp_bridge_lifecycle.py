"""Processes come and go cleanly: child crash (error result, 503, exit or restart), SIGTERM (child gone in 3 s),
client disconnects and idle sessions (nothing leaks), --isolate (one child per session), start-up failures."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest
from test_mcp_harness import (BRIDGE, FIXTURE_CMD, ROOT, BridgeProcess, children_of, connect, pid_alive, run, text,
                              wait_for, wait_gone)


def test_crash_without_restart_fails_calls_and_exits_nonzero() -> None:
    with BridgeProcess(FIXTURE_CMD) as bridge:
        child = bridge.health()[1]["child_pid"]

        async def crash() -> None:
            async with connect(bridge, "sse") as s:
                result = await s.call_tool("crash", {})
                assert result.isError and "exited" in text(result)
        run(crash())
        assert bridge.proc is not None
        assert bridge.proc.wait(10) == 1
        assert wait_gone(child, 3)
        assert "use --restart on-failure" in bridge.stderr()


def test_crash_with_restart_on_failure_comes_back_with_backoff() -> None:
    with BridgeProcess(FIXTURE_CMD, "--restart", "on-failure") as bridge:
        first = bridge.health()[1]["child_pid"]

        async def crash_and_continue() -> None:
            async with connect(bridge, "mcp") as s:
                pending = asyncio.ensure_future(s.call_tool("slow", {"seconds": 30}))
                await asyncio.sleep(0.2)
                crashed = await s.call_tool("crash", {})
                assert crashed.isError
                slow = await asyncio.wait_for(pending, 5)               # the pending call fails too: no hang
                assert slow.isError and "exited" in text(slow)
                status, body = bridge.health()
                assert status == 503 and body["state"] == "restarting"
                assert await asyncio.to_thread(wait_for, lambda: bridge.health()[0] == 200, 15)
                assert text(await s.call_tool("echo", {"text": "same session"})) == "same session"
        run(crash_and_continue())
        body = bridge.health()[1]
        assert body["restarts"] == 1 and body["child_pid"] != first and not pid_alive(first)


def test_sigterm_stops_child_and_bridge_within_3_seconds() -> None:
    """With a client mid-call, the child and its own child (same process group) are gone within 3 s."""
    with BridgeProcess(FIXTURE_CMD) as bridge:
        child = bridge.health()[1]["child_pid"]
        started = asyncio.Event()
        grandchild: list[int] = []

        async def busy_client() -> None:
            async with connect(bridge, "sse") as s:
                grandchild.append(int(text(await s.call_tool("grandchild", {}))))
                started.set()
                result = await s.call_tool("slow", {"seconds": 60})
                assert result.isError and "shutting down" in text(result)

        async def scenario() -> float:
            client = asyncio.ensure_future(busy_client())
            await started.wait()
            await asyncio.sleep(0.3)
            t0 = time.monotonic()
            assert bridge.proc is not None
            bridge.proc.send_signal(signal.SIGTERM)
            await asyncio.to_thread(bridge.proc.wait, 5)
            took = time.monotonic() - t0
            done = await asyncio.gather(client, return_exceptions=True)
            assert not isinstance(done[0], AssertionError), done      # the call in flight got an error result
            return took
        took = run(scenario())
        assert took < 3.0 and bridge.proc is not None and bridge.proc.returncode == 0
        assert wait_gone(child, 0.2) and wait_gone(grandchild[0], 0.2)


def test_disconnects_leak_no_session_and_no_process() -> None:
    with BridgeProcess(FIXTURE_CMD) as bridge:
        children = children_of(bridge.pid)

        async def walk_away(transport: str) -> None:
            async with connect(bridge, transport) as s:
                call = asyncio.ensure_future(s.call_tool("slow", {"seconds": 30}))
                await asyncio.sleep(0.3)
                call.cancel()                                           # the client just leaves mid-call

        async def scenario() -> None:
            for transport in ("sse", "mcp"):
                try:
                    await walk_away(transport)
                except BaseException:                                  # noqa: BLE001 - abrupt by design
                    pass
        run(scenario())
        assert wait_for(lambda: bridge.health()[1]["sessions"] == {"sse": 0, "mcp": 0}, 10)
        assert children_of(bridge.pid) == children

        async def still_serving() -> None:
            async with connect(bridge, "sse") as s:
                assert text(await s.call_tool("echo", {"text": "ok"})) == "ok"
        run(still_serving())


def test_isolate_gives_each_session_its_own_child() -> None:
    with BridgeProcess(FIXTURE_CMD, "--isolate", "--idle-timeout", "2") as bridge:
        assert bridge.health()[1]["mode"] == "isolate" and children_of(bridge.pid) == []

        async def scenario() -> None:
            async with connect(bridge, "sse") as a, connect(bridge, "mcp") as b:
                pid_a = int(text(await a.call_tool("pid", {})))
                pid_b = int(text(await b.call_tool("pid", {})))
                assert pid_a != pid_b and sorted(children_of(bridge.pid)) == sorted([pid_a, pid_b])
                crashed = await b.call_tool("crash", {})              # one dies: the other goes on
                assert crashed.isError
                assert text(await a.call_tool("echo", {"text": "alive"})) == "alive"
                assert (await b.call_tool("echo", {"text": "x"})).isError
            assert await asyncio.to_thread(wait_for, lambda: children_of(bridge.pid) == [], 5)
            async with connect(bridge, "sse"):                         # left idle: closed after 2 s, child gone
                assert await asyncio.to_thread(wait_for, lambda: len(children_of(bridge.pid)) == 1, 5)
                assert await asyncio.to_thread(wait_for, lambda: children_of(bridge.pid) == [], 8)
        run(scenario())
        assert bridge.health()[0] == 200


def test_idle_streamable_http_session_expires() -> None:
    with BridgeProcess(FIXTURE_CMD, "--idle-timeout", "1") as bridge:
        headers = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
        init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}}
        r = httpx.post(bridge.mcp, json=init, headers=headers)
        session = r.headers["mcp-session-id"]
        ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
        sid = {**headers, "mcp-session-id": session, "mcp-protocol-version": "2025-06-18"}
        assert httpx.post(bridge.mcp, json=ping, headers=sid).status_code == 200
        time.sleep(2.5)                     # no request at all for longer than --idle-timeout (any would renew it)
        assert httpx.post(bridge.mcp, json=ping, headers=sid).status_code == 404


def test_start_failures_are_one_error_line_and_a_hint() -> None:
    missing = subprocess.run([*BRIDGE, "--", "no-such-mcp-server-xyz"], cwd=ROOT, capture_output=True, text=True,
                             timeout=30)
    assert missing.returncode == 1 and missing.stderr.startswith("error: ") and "\nhint: " in missing.stderr
    not_mcp = subprocess.run([*BRIDGE, "--", sys.executable, "-c", "print('hello')"], cwd=ROOT,
                             capture_output=True, text=True, timeout=30)
    assert not_mcp.returncode == 1 and "error: " in not_mcp.stderr and not_mcp.stdout == ""
    usage = subprocess.run([*BRIDGE, "--port", "99999", "--", "x"], cwd=ROOT, capture_output=True, text=True,
                           timeout=30)
    assert usage.returncode == 2 and usage.stderr.startswith("error: ") and "hint: " in usage.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = subprocess.run([*BRIDGE, "--port", str(port), "--", *FIXTURE_CMD], cwd=ROOT, capture_output=True,
                              text=True, timeout=30)
    assert busy.returncode == 1 and "error: cannot listen" in busy.stderr and "hint: " in busy.stderr
    assert "Traceback" not in missing.stderr + not_mcp.stderr + usage.stderr + busy.stderr


@pytest.mark.parametrize("flag", ["--secrets-stdin"])
def test_secrets_stdin_must_be_one_json_line(flag: str) -> None:
    bad = subprocess.run([*BRIDGE, flag, "--", *FIXTURE_CMD], cwd=ROOT, input="not json\n", capture_output=True,
                         text=True, timeout=30)
    assert bad.returncode == 2 and bad.stderr.startswith("error: --secrets-stdin")
