"""Shared harness of the MCP bridge host tests: the bridge as a real subprocess, real SDK clients, process checks.

Also checks the fixture server itself over the SDK's stdio client, so a broken fixture is reported as such.
"""

from __future__ import annotations

import asyncio
import json
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any
from collections.abc import AsyncIterator

import httpx

from mcp import ClientSession, types
from mcp.client.sse import sse_client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client

ROOT = Path(__file__).resolve().parents[2]
PY = sys.executable
FIXTURE_CMD = [PY, str(ROOT / "tests" / "fixtures" / "mcp_fixture_server.py")]
TIME_CMD = [str(Path(PY).parent / "mcp-server-time"), "--local-timezone", "UTC"]
BRIDGE = [PY, "-m", "lazyllm_images.runtime.mcp_bridge"]
TRANSPORTS = ("sse", "mcp")
START_TIMEOUT = 30.0


class BridgeProcess:
    """``python -m lazyllm_images.runtime.mcp_bridge --port 0 OPTIONS -- COMMAND``, started and read properly."""

    def __init__(self, command: list[str], *options: str, secrets: dict[str, Any] | None = None,
                 port: int = 0) -> None:
        self.argv = [*BRIDGE, "--port", str(port), *options]
        if secrets is not None:
            self.argv.append("--secrets-stdin")
        self.argv += ["--", *command]
        self.secrets = secrets
        self.proc: subprocess.Popen[bytes] | None = None
        self._err = tempfile.NamedTemporaryFile(prefix="mcp-bridge-", suffix=".err", delete=False)
        self.line = ""
        self.base = self.sse = self.mcp = ""
        self.port = 0

    def start(self) -> BridgeProcess:
        self.proc = subprocess.Popen(self.argv, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self._err)
        assert self.proc.stdin
        if self.secrets is not None:
            self.proc.stdin.write(json.dumps(self.secrets).encode() + b"\n")
            self.proc.stdin.flush()
        self.line = self.read_line(START_TIMEOUT)
        parts = dict(p.split("=", 1) for p in self.line.split()[2:])
        self.sse, self.mcp = parts["sse"], parts["mcp"]
        self.base = self.sse[: -len("/sse")]
        self.port = int(self.base.rsplit(":", 1)[1])
        return self

    def read_line(self, timeout: float) -> str:
        """The bridge's stdout line, waiting on the pipe (no blind sleeping); fails with its stderr."""
        assert self.proc and self.proc.stdout
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        try:
            if not sel.select(timeout):
                raise AssertionError(f"no listening line within {timeout} s; stderr:\n{self.stderr()}")
        finally:
            sel.close()
        line = self.proc.stdout.readline().decode()
        if not line.startswith("lazyllm-mcp-bridge listening "):
            raise AssertionError(f"bad first line {line!r} (rc={self.proc.poll()}); stderr:\n{self.stderr()}")
        return line.strip()

    def stderr(self) -> str:
        return Path(self._err.name).read_text(errors="replace")

    def health(self, **headers: str) -> tuple[int, dict[str, Any]]:
        r = httpx.get(f"{self.base}/healthz", headers=headers, timeout=5)
        return r.status_code, r.json() if r.headers.get("content-type", "").startswith("application/json") else {}

    @property
    def pid(self) -> int:
        assert self.proc
        return self.proc.pid

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        assert self.proc
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def close(self) -> None:
        if self.proc is not None:
            self.stop()
            for stream in (self.proc.stdin, self.proc.stdout):
                if stream:
                    stream.close()
        self._err.close()
        os.unlink(self._err.name)

    def __enter__(self) -> BridgeProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---------------------------------------------------------------------- clients

@asynccontextmanager
async def connect(bridge: BridgeProcess, transport: str, token: str | None = None,
                  **session_kw: Any) -> AsyncIterator[ClientSession]:
    """An initialized SDK ClientSession over 'sse' or 'mcp' (streamable HTTP)."""
    headers = {"Authorization": f"Bearer {token}"} if token else None
    session_kw.setdefault("read_timeout_seconds", timedelta(seconds=30))
    if transport == "sse":
        async with sse_client(bridge.sse, headers=headers) as (read, write):
            async with ClientSession(read, write, **session_kw) as session:
                await session.initialize()
                yield session
    else:
        async with httpx.AsyncClient(headers=headers, timeout=httpx.Timeout(30, read=60)) as http:
            async with streamable_http_client(bridge.mcp, http_client=http) as (read, write, _):
                async with ClientSession(read, write, **session_kw) as session:
                    await session.initialize()
                    yield session


def text(result: types.CallToolResult) -> str:
    block = result.content[0]
    assert isinstance(block, types.TextContent), result
    return block.text


def run(coro: Any, timeout: float = 60.0) -> Any:
    async def bounded() -> Any:
        return await asyncio.wait_for(coro, timeout)
    return asyncio.run(bounded())


# ---------------------------------------------------------------------- processes

def pid_alive(pid: int) -> bool:
    """Running (a zombie counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    return not pid_alive(pid)


def children_of(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] != "Z":
                found.append(int(entry))
    return found


def wait_for(predicate: Any, timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


# ---------------------------------------------------------------------- the fixture itself

def test_fixture_server_speaks_mcp_over_stdio() -> None:
    async def check() -> None:
        params = StdioServerParameters(command=FIXTURE_CMD[0], args=FIXTURE_CMD[1:])
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            names = {t.name for t in (await session.list_tools()).tools}
            assert {"echo", "add", "slow", "progress", "crash", "garbage", "env", "sample"} <= names
            assert text(await session.call_tool("add", {"a": 2, "b": 3})) == "5"
    run(check())
