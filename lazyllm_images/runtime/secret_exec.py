"""Start a server with secrets that arrive on stdin, so they never sit in the container's inspectable config.

``python3 -m lazyllm_images.runtime.secret_exec -- COMMAND [ARGS...]`` reads ONE JSON line from stdin,
``{"env": {"HF_TOKEN": "..."}}``, adds it to the environment and replaces itself with COMMAND (no shell).
The launcher writes that line through the attach socket right after the container starts, then closes stdin.
"""

from __future__ import annotations

import json
import os
import sys


def read_secrets(stream=sys.stdin) -> dict[str, str]:
    line = stream.readline()
    if not line.strip():
        return {}
    data = json.loads(line)
    env = data.get("env", {}) if isinstance(data, dict) else {}
    return {str(k): str(v) for k, v in env.items()}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        print("usage: python -m lazyllm_images.runtime.secret_exec -- COMMAND [ARGS...]", file=sys.stderr)
        return 2
    try:
        secrets = read_secrets()
    except ValueError as exc:
        print(f"secret_exec: stdin is not one JSON line: {exc}", file=sys.stderr)
        return 2
    os.environ.update(secrets)
    devnull = os.open(os.devnull, os.O_RDONLY)      # the server never reads the attach socket
    os.dup2(devnull, 0)
    os.execvp(argv[0], argv)
    return 127


if __name__ == "__main__":
    raise SystemExit(main())
