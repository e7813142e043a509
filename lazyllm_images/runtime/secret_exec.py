"""Start a server with secrets that arrive on stdin, so they never sit in the container's inspectable config.

``python3 -m lazyllm_images.runtime.secret_exec -- COMMAND [ARGS...]`` reads ONE JSON line from stdin,
``{"env": {"HF_TOKEN": "..."}, "files": {"/tmp/api-key": "..."}}``, adds ``env`` to the environment, writes
``files`` (mode 0600; only under /tmp, the container's tmpfs, so they never reach a disk) and replaces itself with
COMMAND (no shell). The launcher writes that line through the attach socket right after the container starts.

On the file-based targets (compose, Swarm, Kubernetes) the same line is a mounted secret file:
``secret_exec --file /run/secrets/NAME -- COMMAND`` reads it there. ``--stdin`` (with ``--file``) sets nothing
itself and hands the line to COMMAND on its stdin, for commands that read it themselves (the MCP bridge).
"""

from __future__ import annotations

import io
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


USAGE = "usage: python -m lazyllm_images.runtime.secret_exec [--file PATH [--stdin]] -- COMMAND [ARGS...]"


def parse_args(argv: list[str]) -> tuple[str | None, bool, list[str]]:
    """(secret file or None for stdin, pipe the line to COMMAND's stdin, COMMAND)."""
    file, pipe = None, False
    while argv and argv[0] != "--":
        if argv[0] == "--file" and len(argv) > 1:
            file, argv = argv[1], argv[2:]
        elif argv[0] == "--stdin":
            pipe, argv = True, argv[1:]
        else:
            raise ValueError(f"unknown argument {argv[0]!r}")
    if pipe and file is None:
        raise ValueError("--stdin needs --file")
    return file, pipe, argv[1:]


def pipe_to_stdin(text: str) -> None:
    """fd 0 becomes a pipe holding ``text`` then EOF (a secrets line is far below the pipe's buffer)."""
    read, write = os.pipe()
    os.write(write, text.encode())
    os.close(write)
    os.dup2(read, 0)
    os.close(read)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        file, pipe, argv = parse_args(argv)
    except ValueError as exc:
        print(f"secret_exec: {exc}\n{USAGE}", file=sys.stderr)
        return 2
    if not argv:
        print(USAGE, file=sys.stderr)
        return 2
    try:
        if file is not None:
            with open(file) as stream:
                line = stream.readline()
            if pipe:
                pipe_to_stdin(line)
                os.execvp(argv[0], argv)
            env, files = read_secrets(io.StringIO(line))
        else:
            env, files = read_secrets()
    except OSError as exc:
        print(f"secret_exec: cannot read the secrets file {file}: {exc.strerror}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"secret_exec: {'the secrets file' if file else 'stdin'} is not one valid JSON line: {exc}",
              file=sys.stderr)
        return 2
    write_files(files)
    os.environ.update(env)
    devnull = os.open(os.devnull, os.O_RDONLY)      # the server never reads the attach socket
    os.dup2(devnull, 0)
    os.execvp(argv[0], argv)
    return 127


if __name__ == "__main__":
    raise SystemExit(main())
