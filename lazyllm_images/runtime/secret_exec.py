"""Start a server with secrets that arrive on stdin, so they never sit in the container's inspectable config.

``python3 -m lazyllm_images.runtime.secret_exec -- COMMAND [ARGS...]`` reads ONE JSON line from stdin,
``{"env": {"HF_TOKEN": "..."}, "files": {"/tmp/api-key": "..."}}``, adds ``env`` to the environment, writes
``files`` (mode 0600; only under /tmp, the container's tmpfs, so they never reach a disk) and replaces itself with
COMMAND (no shell). The launcher writes that line through the attach socket right after the container starts.
"""

from __future__ import annotations

import json
import os
import sys


FILE_ROOT = "/tmp/"


def read_secrets(stream=sys.stdin) -> tuple[dict[str, str], dict[str, str]]:
    line = stream.readline()
    if not line.strip():
        return {}, {}
    data = json.loads(line)
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object")
    env = {str(k): str(v) for k, v in (data.get("env") or {}).items()}
    files = {str(k): str(v) for k, v in (data.get("files") or {}).items()}
    for path in files:
        if not os.path.normpath(path).startswith(FILE_ROOT):
            raise ValueError(f"secret files go under {FILE_ROOT} (a tmpfs), not {path}")
    return env, files


def write_files(files: dict[str, str]) -> None:
    for path, text in files.items():
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(text)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        print("usage: python -m lazyllm_images.runtime.secret_exec -- COMMAND [ARGS...]", file=sys.stderr)
        return 2
    try:
        env, files = read_secrets()
    except ValueError as exc:
        print(f"secret_exec: stdin is not one valid JSON line: {exc}", file=sys.stderr)
        return 2
    write_files(files)
    os.environ.update(env)
    devnull = os.open(os.devnull, os.O_RDONLY)      # the server never reads the attach socket
    os.dup2(devnull, 0)
    os.execvp(argv[0], argv)
    return 127


if __name__ == "__main__":
    raise SystemExit(main())
