"""What a containerised MCP bridge shows the world: the Host headers it answers to once published, and labels and
service names that name the server's program and package but never carry its arguments."""

from __future__ import annotations

import pytest

from lazyllm_images.requests import McpServerRequest
from lazyllm_images.runtime import netaddr
from lazyllm_images.services.mcp_public import published_hosts, server_label, server_slug


@pytest.fixture()
def host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(netaddr, "local_addresses", lambda: ["127.0.0.1", "192.0.2.7", "2001:db8::7"])
    monkeypatch.setattr(netaddr, "local_names", lambda: ["box"])


def test_a_loopback_publish_answers_to_localhost_names_only(host: None) -> None:
    assert published_hosts(McpServerRequest(command="x"), 8080) == ["localhost:8080", "127.0.0.1:8080"]
    assert published_hosts(McpServerRequest(command="x", sse_host="::1"), 8080) == [
        "localhost:8080", "127.0.0.1:8080", "[::1]:8080"]


def test_a_wildcard_publish_answers_to_this_hosts_addresses_and_names(host: None) -> None:
    """--sse-host 0.0.0.0 gave 421 to every remote client: only 127.0.0.1/localhost were allowed."""
    hosts = published_hosts(McpServerRequest(command="x", sse_host="0.0.0.0", allowed_hosts=("mcp.example",)), 9)
    assert hosts == ["localhost:9", "127.0.0.1:9", "192.0.2.7:9", "[2001:db8::7]:9", "box:9", "mcp.example"]
    one = published_hosts(McpServerRequest(command="x", sse_host="192.0.2.7"), 9)
    assert one == ["localhost:9", "127.0.0.1:9", "192.0.2.7:9", "box:9"]


@pytest.mark.parametrize("command, args, label", [
    ("uvx", ("mcp-server-time", "--local-timezone", "UTC"), "uvx mcp-server-time"),
    ("npx", ("-y", "@modelcontextprotocol/server-github"), "npx @modelcontextprotocol/server-github"),
    ("/usr/bin/python3", ("/home/me/servers/my_server.py", "--api-key", "sk-live-123456"), "python3 my_server.py"),
    ("python3", ("-m", "mcp_server_fetch", "--user-agent", "x"), "python3 mcp_server_fetch"),
    ("uvx", ("--from", "git+https://user:ghp_abcdef@github.com/o/r", "srv"), "uvx"),
    ("uv", ("tool", "run", "mcp-server-git"), "uv mcp-server-git"),
    ("mcp-server-thing", ("sk-live-123456",), "mcp-server-thing"),
    ("docker", ("run", "-e", "GITHUB_TOKEN=ghp_abcdef", "ghcr.io/github/github-mcp-server"), "docker"),
])
def test_labels_name_the_program_and_package_never_the_arguments(command: str, args: tuple[str, ...],
                                                                  label: str) -> None:
    request = McpServerRequest(command=command, args=args)
    assert server_label(request) == label
    for secret in ("sk-live-123456", "ghp_abcdef", "UTC", "--api-key"):
        assert secret not in server_label(request) and secret.lower() not in server_slug(request)


def test_labels_mask_known_secret_values_and_slugs_follow_the_label() -> None:
    request = McpServerRequest(command="npx", args=("tok-from-env-77",), env=(("TOKEN", "tok-from-env-77"),))
    assert server_label(request) == "npx ***"
    assert server_slug(McpServerRequest(command="uvx", args=("mcp-server-time", "--local-timezone", "UTC"))) \
        == "mcp-server-time"
    assert server_slug(McpServerRequest(command="npx", args=("-y", "@modelcontextprotocol/server-github@1.2"))) \
        == "server-github"
