"""What a containerised MCP bridge shows the world (pure): the Host headers it answers to once its port is published,
and what its labels and service name say about the MCP server -- its program and package, never its arguments,
which may carry tokens (``--api-key sk-...``, ``-e KEY=value``, credentials in a ``git+https://`` URL)."""

from __future__ import annotations

import os
import re

from ..requests import McpServerRequest
from ..runtime.mcp_bridge.redact import Redactor
from ..runtime.netaddr import format_host, is_wildcard, reachable_as

# Programs that take the MCP server's package (or script) as their first word that is not an option.
RUNNERS = re.compile(r"^(uvx|npx|bunx|pnpx|pipx|uv|pnpm|bun|deno|node|python[0-9.]*)$")
RUNNER_WORDS = {"run", "tool", "dlx", "exec", "x"}         # uv tool run X, pnpm dlx X, pipx run X
NOT_A_NAME = re.compile(r"[:=?&%#\s\\]")                    # URLs, KEY=value, queries: never recorded
MAX_LABEL = 100


def published_hosts(request: McpServerRequest, host_port: int) -> list[str]:
    """``--allowed-host`` values for a bridge whose port is published on ``--sse-host`` as HOST_PORT: localhost,
    the publishing address (this host's addresses and names for 0.0.0.0), and the user's own entries."""
    names = ["localhost", "127.0.0.1"]
    if not is_wildcard(request.sse_host):
        names.append(request.sse_host)
    names += reachable_as(request.sse_host)
    hosts = [format_host(n, host_port).lower() for n in names]
    return list(dict.fromkeys([*hosts, *request.allowed_hosts]))


def server_label(request: McpServerRequest) -> str:
    """``uvx mcp-server-time``, ``npx @modelcontextprotocol/server-github``, ``python3 server.py``: the program's
    name and, for package runners and interpreters, the package or script name; known secret values masked."""
    program = os.path.basename(request.command) or "server"
    words = [program]
    if RUNNERS.match(program):
        first = next((a for a in request.args if not a.startswith("-") and a not in RUNNER_WORDS), None)
        if first and not NOT_A_NAME.search(first):
            words.append(first if first.startswith("@") else os.path.basename(first.rstrip("/")))
    redact = Redactor([*(v for _, v in request.env), request.auth_token])
    return redact(" ".join(w for w in words if w))[:MAX_LABEL]


def server_slug(request: McpServerRequest) -> str:
    """The service name's tail, from the label: ``mcp-server-time``, ``server-github``."""
    name = server_label(request).split()[-1].split("/")[-1].split("@")[0]
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40] or "server"
