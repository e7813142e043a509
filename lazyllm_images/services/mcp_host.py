"""``lazyllm deploy mcp_server --no-container``: run the MCP bridge on this host, in the foreground.

The bridge is ``sys.executable -m lazyllm_images.runtime.mcp_bridge`` as a child process. Secrets (the ``-e``
values and the auth token) travel on its stdin as one JSON line (``--secrets-stdin``), never on its command line,
so ``ps`` and ``/proc/<pid>/cmdline`` never show them. Ctrl-C and SIGTERM are forwarded to it; its exit status is
ours.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
from types import FrameType
from typing import Any

from ..errors import LazyllmError, UsageError
from ..requests import McpServerRequest

BRIDGE_MODULE = "lazyllm_images.runtime.mcp_bridge"
LISTENING = "lazyllm-mcp-bridge listening "
RUNTIME_MODULES = ("mcp", "starlette", "uvicorn")
TOKEN_ENV = "LAZYLLM_MCP_TOKEN"          # the CLI's --auth-token may come from here


def bridge_argv(request: McpServerRequest, python: str = sys.executable) -> list[str]:
    """The bridge's command line: options, then ``--`` and the MCP server's argv. No secret ever appears here."""
    argv = [python, "-m", BRIDGE_MODULE, "--host", request.sse_host, "--port", str(request.sse_port),
            "--restart", request.restart]
    for host in request.allowed_hosts:
        argv += ["--allowed-host", host]
    for origin in request.allow_origins:
        argv += ["--allow-origin", origin]
    if request.pass_environment:
        argv.append("--pass-environment")
    if request.isolate:
        argv.append("--isolate")
    if request.url_file:
        argv += ["--url-file", os.path.abspath(request.url_file)]
    if request.env or request.auth_token:
        argv.append("--secrets-stdin")
    return [*argv, "--", request.command, *request.args]


def secrets_line(request: McpServerRequest) -> bytes | None:
    """The one JSON line the bridge reads on stdin (None when there is nothing secret to pass)."""
    if not (request.env or request.auth_token):
        return None
    payload: dict[str, Any] = {"env": dict(request.env)}
    if request.auth_token:
        payload["auth_token"] = request.auth_token
    return json.dumps(payload).encode() + b"\n"


def check(request: McpServerRequest) -> None:
    """Bad input found before anything starts: one error line and a hint."""
    missing = [m for m in RUNTIME_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        raise LazyllmError(f"the MCP bridge needs {', '.join(missing)}, which this Python lacks",
                           "pip install 'lazyllm-images[runtime]' (or drop --no-container)")
    if shutil.which(request.command) is None:
        raise UsageError(f"command {request.command!r} not found on PATH",
                         "install the MCP server first (e.g. 'pip install mcp-server-time'), or give its full path")
    if request.url_file:
        folder = os.path.dirname(os.path.abspath(request.url_file))
        if not os.path.isdir(folder):
            raise UsageError(f"--url-file: folder {folder!r} does not exist", "create it or pick another path")
    if request.name:
        raise UsageError("--name applies to containers", "drop --name with --no-container")


def run_foreground(request: McpServerRequest) -> int:
    """Start the bridge, print its URLs once it listens, relay signals, return its exit status."""
    check(request)
    argv = bridge_argv(request)
    if request.dry_run:
        print(shlex.join(argv))
        names = [k for k, _ in request.env] + (["the auth token"] if request.auth_token else [])
        if names:
            print(f"# on its stdin, not its command line: {', '.join(names)}")
        return 0
    env = {k: v for k, v in os.environ.items() if k != TOKEN_ENV}    # the token goes on stdin, not in environ
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
    _send_secrets(proc, secrets_line(request))
    previous = _forward_signals(proc)
    try:
        _print_urls(proc)
        return proc.wait()
    finally:
        _restore(previous)
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _send_secrets(proc: subprocess.Popen[bytes], line: bytes | None) -> None:
    assert proc.stdin
    try:
        if line:
            proc.stdin.write(line)
        proc.stdin.close()
    except BrokenPipeError:
        pass                                  # the bridge already failed; its own error says why


def _print_urls(proc: subprocess.Popen[bytes]) -> None:
    """Turn the bridge's listening line into what a person reads; then pass on anything else it prints."""
    assert proc.stdout
    for raw in proc.stdout:
        line = raw.decode(errors="replace").rstrip("\n")
        if line.startswith(LISTENING):
            urls = dict(part.split("=", 1) for part in line[len(LISTENING):].split())
            print(f"MCP server ready\n  SSE:             {urls.get('sse')}\n"
                  f"  streamable HTTP: {urls.get('mcp')}\nCtrl-C stops it.", flush=True)
        else:
            print(line, flush=True)


def _forward_signals(proc: subprocess.Popen[bytes]) -> dict[int, Any]:
    """SIGINT/SIGTERM to us -> the same signal to the bridge (it stops its MCP server and exits)."""
    def forward(signum: int, frame: FrameType | None) -> None:
        if proc.poll() is None:
            proc.send_signal(signum)

    return {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}


def _restore(previous: dict[int, Any]) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)
