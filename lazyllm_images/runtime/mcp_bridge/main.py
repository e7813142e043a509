"""Entry point: parse argv, read the stdin secrets (once), install redaction and logging, run the bridge.

Errors are one ``error:`` line and one ``hint:`` line on stderr: exit 2 for bad usage, 1 for failures.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Coroutine, Sequence
from typing import Any

from .config import BridgeConfig, ConfigError, Secrets, parse_args, read_secrets, resolve_token
from .redact import Redactor, install, setup_logging


def _fail(message: str, hint: str | None, code: int) -> int:
    sys.stderr.write(f"error: {message}\n")
    if hint:
        sys.stderr.write(f"hint: {hint}\n")
    sys.stderr.flush()
    return code


def load(argv: Sequence[str]) -> tuple[BridgeConfig, Secrets, str | None]:
    """Config, secrets and token; raises ConfigError. Reads stdin only with --secrets-stdin, and one line only."""
    config = parse_args(argv)
    secrets = read_secrets(sys.stdin.buffer) if config.secrets_stdin else Secrets()
    return config, secrets, resolve_token(config, secrets)


def _run(coro: Coroutine[Any, Any, int]) -> int:
    """On uvloop when it is installed (faster event loop), else asyncio's own."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        config, secrets, token = load(sys.argv[1:] if argv is None else argv)
    except ConfigError as exc:
        return _fail(exc.message, exc.hint, 2)
    install(Redactor([*secrets.env.values(), token]))
    setup_logging(config.log_level)

    from ..netaddr import host_check_off_warning, shout
    from .child import ChildStartError
    from .security import exposure_warning
    from .server import BindError, run_bridge

    shout(exposure_warning(config.host, token))
    shout(host_check_off_warning(config.allowed_hosts))
    try:
        return _run(run_bridge(config, secrets.env, token))
    except BindError as exc:
        return _fail(str(exc), "pick another --port (0 picks a free one) or stop what uses it", 1)
    except ChildStartError as exc:
        return _fail(str(exc), "check the MCP server command, and that it speaks MCP on stdio", 1)
    except KeyboardInterrupt:
        return 130
