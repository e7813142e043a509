"""Command line and start-up secrets of the bridge: argv -> BridgeConfig, stdin JSON line -> Secrets.

Pure functions (no I/O besides the stream handed in), so they are unit-tested directly.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from dataclasses import dataclass, field
from typing import BinaryIO
from collections.abc import Sequence

from ..netaddr import parse_allowed_host

DEFAULT_IDLE_TIMEOUT = 1800.0          # seconds; the SDK's recommended session idle timeout
DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024
LOG_LEVELS = ("debug", "info", "warning", "error")
MAX_SECRETS_LINE = 1024 * 1024


class ConfigError(Exception):
    """Bad command line or secrets: printed as ``error:`` + ``hint:``; exit 2."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


@dataclass(frozen=True)
class BridgeConfig:
    command: str
    args: tuple[str, ...] = ()
    host: str = "127.0.0.1"
    port: int = 0
    allowed_hosts: tuple[str, ...] = ()
    allow_origins: tuple[str, ...] = ()
    auth_token_file: str | None = None
    secrets_stdin: bool = False
    pass_environment: bool = False
    isolate: bool = False
    restart: str = "no"
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    url_file: str | None = None
    log_level: str = "info"


@dataclass(frozen=True)
class Secrets:
    """What ``--secrets-stdin`` delivered: env for the child only, and the bearer token."""

    env: dict[str, str] = field(default_factory=dict)
    auth_token: str | None = None


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise ConfigError(message, "run 'python -m lazyllm_images.runtime.mcp_bridge --help' for usage")


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port {value} is outside 0-65535")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError("must be a finite number of seconds >= 0 (0 disables)")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be a positive number of bytes")
    return value


def _allowed_host(text: str) -> str:
    try:
        return parse_allowed_host(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _origin(text: str) -> str:
    if text in ("*", "null") or ("://" in text and not text.endswith("/")):
        return text
    raise argparse.ArgumentTypeError(f"{text!r} is not an origin like http://host:port (or '*')")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m lazyllm_images.runtime.mcp_bridge",
                description="Serve a stdio MCP server over SSE (/sse) and streamable HTTP (/mcp).",
                usage="%(prog)s [options] -- COMMAND [ARGS...]")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=_port, default=0, help="port to bind (0: a free one; default 0)")
    p.add_argument("--allowed-host", dest="allowed_hosts", action="append", type=_allowed_host, default=[],
                   metavar="HOST[:PORT]",
                   help="extra Host header to accept (repeatable): HOST:PORT, HOST (any port), or '*' (no Host "
                        "check: loud warning). Bound beyond loopback, this host's addresses and names are accepted "
                        "too; bound to loopback, only localhost, 127.0.0.1, [::1] and these")
    p.add_argument("--allow-origin", dest="allow_origins", action="append", type=_origin, default=[],
                   metavar="ORIGIN", help="enable CORS for ORIGIN (repeatable; '*' for any)")
    p.add_argument("--auth-token-file", metavar="FILE", help="require 'Authorization: Bearer' with this file's token")
    p.add_argument("--secrets-stdin", action="store_true",
                   help='read one JSON line {"env": {...}, "auth_token": "..."} from stdin at start')
    p.add_argument("--pass-environment", action="store_true", help="give the child this process's whole env")
    p.add_argument("--isolate", action="store_true", help="one child per client session instead of one shared")
    p.add_argument("--restart", choices=("no", "on-failure"), default="no",
                   help="restart a child that exits (with backoff); 'no': the bridge exits non-zero")
    p.add_argument("--idle-timeout", type=_seconds, default=DEFAULT_IDLE_TIMEOUT, metavar="SECONDS",
                   help=f"close sessions idle this long (0: never; default {DEFAULT_IDLE_TIMEOUT:.0f})")
    p.add_argument("--max-body-bytes", type=_positive, default=DEFAULT_MAX_BODY_BYTES, metavar="N",
                   help="largest request body accepted (413 above; default 4 MiB)")
    p.add_argument("--url-file", metavar="FILE", help='write {"sse": URL, "mcp": URL} here once listening')
    p.add_argument("--log-level", type=str.lower, choices=LOG_LEVELS, default="info")
    p.add_argument("command_argv", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return p


def split_command(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """Options before the first ``--``, the child's argv after it (used unchanged, never through a shell)."""
    argv = list(argv)
    if "--" in argv:
        cut = argv.index("--")
        return argv[:cut], argv[cut + 1:]
    return argv, []


def parse_args(argv: Sequence[str]) -> BridgeConfig:
    options, command = split_command(argv)
    ns = build_parser().parse_args(options)
    command = command or list(ns.command_argv)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise ConfigError("no MCP server command given", "put it after '--', e.g. -- mcp-server-time")
    if ns.url_file and not os.path.isdir(os.path.dirname(os.path.abspath(ns.url_file))):
        raise ConfigError(f"--url-file: the folder of {ns.url_file!r} does not exist", "create it or pick another")
    return BridgeConfig(command=command[0], args=tuple(command[1:]), host=ns.host, port=ns.port,
                        allowed_hosts=tuple(ns.allowed_hosts), allow_origins=tuple(ns.allow_origins),
                        auth_token_file=ns.auth_token_file, secrets_stdin=ns.secrets_stdin,
                        pass_environment=ns.pass_environment, isolate=ns.isolate, restart=ns.restart,
                        idle_timeout=ns.idle_timeout, max_body_bytes=ns.max_body_bytes, url_file=ns.url_file,
                        log_level=ns.log_level)


def parse_secrets(line: bytes) -> Secrets:
    """The one JSON line of ``--secrets-stdin``: ``{"env": {"K": "V"}, "auth_token": "..."}``, both optional."""
    hint = 'send one JSON line like {"env": {"KEY": "value"}, "auth_token": "..."}'
    if not line.strip():
        raise ConfigError("--secrets-stdin: stdin gave no JSON line", hint)
    try:
        data = json.loads(line)
    except ValueError:
        raise ConfigError("--secrets-stdin: the line on stdin is not JSON", hint) from None
    if not isinstance(data, dict) or set(data) - {"env", "auth_token"}:
        raise ConfigError("--secrets-stdin: expected an object with only 'env' and 'auth_token'", hint)
    env = data.get("env") or {}
    token = data.get("auth_token")
    if not isinstance(env, dict) or not all(isinstance(k, str) and k and isinstance(v, str) for k, v in env.items()):
        raise ConfigError("--secrets-stdin: 'env' must map names to strings", hint)
    if token is not None and (not isinstance(token, str) or not token.strip()):
        raise ConfigError("--secrets-stdin: 'auth_token' must be a non-empty string", hint)
    return Secrets(env=dict(env), auth_token=token.strip() if token else None)


def read_secrets(stream: BinaryIO) -> Secrets:
    """Read exactly one line (never more) from STREAM."""
    return parse_secrets(stream.readline(MAX_SECRETS_LINE))


def resolve_token(config: BridgeConfig, secrets: Secrets) -> str | None:
    """The bearer token: from ``--auth-token-file`` or from the stdin secrets (not both)."""
    if config.auth_token_file and secrets.auth_token:
        raise ConfigError("the auth token was given twice", "use either --auth-token-file or the stdin secrets")
    if not config.auth_token_file:
        return secrets.auth_token
    try:
        with open(config.auth_token_file, encoding="utf-8") as fh:
            token = fh.read().strip()
    except OSError as exc:
        raise ConfigError(f"cannot read --auth-token-file: {exc.strerror}", "give a readable file") from None
    if not token:
        raise ConfigError("--auth-token-file is empty", "write the token into the file")
    return token
