"""`lazyllm deploy mcp_server` in its container (the default path): real MCP SDK clients, real servers.

The fixture server's source is passed with `python3 -c` (the runtime image has the mcp SDK), so a test can read
the child's environment; `uvx mcp-server-time` downloads itself at start, through this machine's TLS proxy.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
from contextlib import contextmanager

import docker
import httpx
import pytest
from mcp import ClientSession
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client

from e2e_cli import REPO, lazyllm

FIXTURE = (REPO / "tests" / "fixtures" / "mcp_fixture_server.py").read_text()
SECRET = "s3cr3t-" + os.urandom(6).hex()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def bridge(name: str, *args: str):
    result = lazyllm("deploy", "mcp_server", "--name", name, *args, timeout=900)
    assert result.returncode == 0, result.stderr[-4000:]
    info = {}
    for line in result.stdout.splitlines():
        key, _, value = line.partition(":")
        if value.strip():
            info[key.strip()] = value.strip()
    try:
        yield info
    finally:
        lazyllm("stop", name)


async def call(url: str, transport: str, tool: str, arguments: dict, headers: dict | None = None):
    if transport == "sse":
        client = sse_client(url, headers=headers)
    else:
        client = streamable_http_client(url, http_client=httpx.AsyncClient(headers=headers or {}, timeout=60))
    async with client as streams:
        async with ClientSession(streams[0], streams[1]) as session:
            await session.initialize()
            names = [t.name for t in (await session.list_tools()).tools]
            result = await session.call_tool(tool, arguments)
            return names, result


@pytest.fixture(scope="module")
def fixture_bridge():
    port = free_port()
    with bridge("lazyllm-test-mcp", "-e", "FIXTURE_SECRET", SECRET, "--sse-port", str(port),
                "python3", "--", "-c", FIXTURE) as info:
        info["port"] = str(port)
        yield info


def test_fixed_port_is_really_bound_and_both_transports_work(fixture_bridge):
    port = fixture_bridge["port"]
    assert fixture_bridge["sse"] == f"http://127.0.0.1:{port}/sse"
    assert fixture_bridge["mcp"] == f"http://127.0.0.1:{port}/mcp"
    for transport, url in (("sse", fixture_bridge["sse"]), ("mcp", fixture_bridge["mcp"])):
        names, result = asyncio.run(call(url, transport, "add", {"a": 2, "b": 40}))
        assert "echo" in names and result.content[0].text == "42"


def test_env_values_reach_only_the_child(fixture_bridge):
    _, result = asyncio.run(call(fixture_bridge["mcp"], "mcp", "env", {"name": "FIXTURE_SECRET"}))
    assert result.content[0].text == SECRET
    container = docker.from_env().containers.get("lazyllm-test-mcp-mcp")
    assert SECRET not in json.dumps(container.attrs)
    assert SECRET not in json.dumps(container.image.attrs)
    assert SECRET not in container.logs().decode(errors="replace")


def test_spoofed_host_and_foreign_origin_are_refused(fixture_bridge):
    url = fixture_bridge["mcp"]
    body = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    assert httpx.post(url, json=body, headers={**headers, "Host": "evil.example:80"}).status_code == 421
    assert httpx.post(url, json=body, headers={**headers, "Origin": "http://evil.example"}).status_code == 403
    assert httpx.get(fixture_bridge["sse"].replace("/sse", "/healthz")).status_code == 200


def test_token_is_required_when_set():
    with bridge("lazyllm-test-mcp-token", "--auth-token", "tok-123", "python3", "--", "-c", FIXTURE) as info:
        url = info["mcp"]
        body = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
        headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
        assert httpx.post(url, json=body, headers=headers).status_code == 401
        assert httpx.post(url, json=body, headers={**headers, "Authorization": "Bearer nope"}).status_code == 401
        assert httpx.get(url.replace("/mcp", "/healthz")).status_code == 200
        _, result = asyncio.run(call(url, "mcp", "echo", {"text": "hi"}, {"Authorization": "Bearer tok-123"}))
        assert result.content[0].text == "hi"
        container = docker.from_env().containers.get("lazyllm-test-mcp-token-mcp")
        assert "tok-123" not in json.dumps(container.attrs)


def test_uvx_server_downloads_itself_through_the_proxy_and_stop_is_quick(tmp_path):
    url_file = tmp_path / "urls.json"
    with bridge("lazyllm-test-mcp-time", "--url-file", str(url_file), "uvx", "mcp-server-time",
                "--local-timezone", "UTC") as info:
        urls = json.loads(url_file.read_text())
        assert urls == {"sse": info["sse"], "mcp": info["mcp"]}
        names, result = asyncio.run(call(urls["sse"], "sse", "get_current_time", {"timezone": "UTC"}))
        assert "get_current_time" in names and "UTC" in result.content[0].text
        start = time.monotonic()
        assert lazyllm("stop", "lazyllm-test-mcp-time").returncode == 0
        assert time.monotonic() - start < 3 + 2          # docker stop's 3 s grace, plus the CLI itself
        assert not docker.from_env().containers.list(all=True, filters={"name": "lazyllm-test-mcp-time-mcp"})


def test_dry_run_shows_no_secret():
    result = lazyllm("deploy", "mcp_server", "-e", "GITHUB_TOKEN", "your_token", "--sse-port", "8080", "--dry-run",
                     "npx", "--", "-y", "@modelcontextprotocol/server-github")
    assert result.returncode == 0, result.stderr
    assert "your_token" not in result.stdout and "127.0.0.1:8080:8000" in result.stdout
    assert "npx -y @modelcontextprotocol/server-github" in result.stdout
