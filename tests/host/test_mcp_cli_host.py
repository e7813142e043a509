"""``lazyllm deploy mcp_server --no-container``: the CLI runs the bridge on this host, end to end."""

from __future__ import annotations

import json
import os
import selectors
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from test_mcp_harness import FIXTURE_CMD, ROOT, BridgeProcess, children_of, connect, run, text, wait_gone

LAZYLLM = str(Path(sys.executable).parent / "lazyllm")
ENV = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_until(proc: subprocess.Popen[bytes], marker: str, timeout: float = 30) -> list[str]:
    """Lines of the CLI's stdout up to and including the one containing MARKER (waiting on the pipe)."""
    assert proc.stdout
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    lines: list[str] = []
    try:
        while not any(marker in line for line in lines):
            if not sel.select(timeout):
                raise AssertionError(f"no {marker!r} within {timeout} s; got {lines}")
            line = proc.stdout.readline().decode()
            if not line:
                raise AssertionError(f"CLI exited ({proc.wait()}) before {marker!r}; got {lines}")
            lines.append(line.rstrip("\n"))
    finally:
        sel.close()
    return lines


def start_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen([LAZYLLM, "deploy", "mcp_server", "--no-container", *args], cwd=ROOT,
                            env={**ENV, **(env or {})},
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0)


def stop_cli(proc: subprocess.Popen[bytes]) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for stream in (proc.stdout, proc.stderr):
        if stream:
            stream.close()
    return proc.returncode


def test_cli_host_path_serves_mcp_server_time(tmp_path: Path) -> None:
    port, url_file = free_port(), tmp_path / "urls.json"
    proc = start_cli("--sse-port", str(port), "--url-file", str(url_file), "mcp-server-time", "--",
                     "--local-timezone", "UTC")
    try:
        lines = read_until(proc, "streamable HTTP:")
        assert f"SSE:             http://127.0.0.1:{port}/sse" in "\n".join(lines)
        urls = json.loads(url_file.read_text())
        assert urls == {"sse": f"http://127.0.0.1:{port}/sse", "mcp": f"http://127.0.0.1:{port}/mcp"}
        bridge = BridgeProcess([])
        bridge.sse, bridge.mcp = urls["sse"], urls["mcp"]
        (bridge_pid,) = children_of(proc.pid)
        (child_pid,) = children_of(bridge_pid)

        async def call() -> None:
            for transport in ("sse", "mcp"):
                async with connect(bridge, transport) as s:
                    result = await s.call_tool("get_current_time", {"timezone": "Europe/Paris"})
                    assert "Europe/Paris" in text(result)
        run(call())
    finally:
        code = stop_cli(proc)
    assert code == 0
    assert wait_gone(bridge_pid, 3) and wait_gone(child_pid, 3)


def test_cli_host_path_passes_env_values_on_stdin_only(tmp_path: Path) -> None:
    """-e values and the token ($LAZYLLM_MCP_TOKEN here) reach the bridge on stdin: not in its argv or environ."""
    secret, token = "cli-secret-5e1d0a", "cli-token-77aa"
    proc = start_cli("-e", "FIXTURE_SECRET", secret, "--pass-environment", FIXTURE_CMD[0], "--", *FIXTURE_CMD[1:],
                     env={"LAZYLLM_MCP_TOKEN": token})
    try:
        lines = read_until(proc, "streamable HTTP:")
        sse_url = next(line.split()[-1] for line in lines if "SSE:" in line)
        (bridge_pid,) = children_of(proc.pid)
        for part in ("cmdline", "environ"):
            with open(f"/proc/{bridge_pid}/{part}", "rb") as fh:
                seen = fh.read()
            assert secret.encode() not in seen and token.encode() not in seen
        bridge = BridgeProcess([])
        bridge.sse = sse_url

        async def call() -> None:
            async with connect(bridge, "sse", token=token) as s:
                assert text(await s.call_tool("env", {"name": "FIXTURE_SECRET"})) == secret
                assert text(await s.call_tool("env", {"name": "LAZYLLM_MCP_TOKEN"})) == "<unset>"
        run(call())
    finally:
        assert stop_cli(proc) == 0


@pytest.mark.parametrize("args,words", [
    (["no-such-mcp-server-xyz"], "not found on PATH"),
    (["--url-file", "/no/such/dir/urls.json", "mcp-server-time"], "--url-file"),
])
def test_cli_host_path_bad_input(args: list[str], words: str) -> None:
    done = subprocess.run([LAZYLLM, "deploy", "mcp_server", "--no-container", *args], cwd=ROOT, env=ENV,
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert lines[0].startswith("error: ") and words in lines[0] and lines[1].startswith("hint: ")
    assert "Traceback" not in done.stderr

