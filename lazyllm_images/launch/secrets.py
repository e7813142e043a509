"""Where a unit's secrets live on each target, and how its command reads them: one JSON line, one reader.

On the local engine the line goes to ``runtime.secret_exec`` over the container's stdin (never in its config). On
the file-based targets (compose, Swarm, Kubernetes) the same line is a secret file mounted at
``/run/secrets/<key>`` and ``secret_exec --file`` reads it there; a unit whose own command reads the line from its
stdin (the MCP bridge's ``--secrets-stdin``) gets it piped in by ``secret_exec --stdin``. Pure: no I/O.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace

from .spec import LaunchSpec

SECRET_EXEC = ("python3", "-m", "lazyllm_images.runtime.secret_exec")
MOUNT_DIR = "/run/secrets"


def payload(secrets: dict | None) -> str | None:
    """The JSON line of a unit's secrets ({"env": {...}, "files": {...}}, empty parts dropped); None: no secrets."""
    kept = {k: v for k, v in (secrets or {}).items() if v}
    return json.dumps(kept, sort_keys=True) + "\n" if kept else None


def key(unit_name: str) -> str:
    """The secret's name in a compose/stack file (and its file name under /run/secrets)."""
    return f"{unit_name}-secrets"


def digest(text: str) -> str:
    """Eight hex digits of the content: Swarm secrets are immutable, so a new value gets a new name."""
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def path(unit_name: str) -> str:
    return f"{MOUNT_DIR}/{key(unit_name)}"


def reading_stdin(spec: LaunchSpec, wrap: bool = True) -> LaunchSpec:
    """The local engine's form: the command starts behind secret_exec, which reads the line from stdin."""
    if not wrap or _wrapped(spec):
        return replace(spec, stdin_open=True)
    return replace(spec, command=SECRET_EXEC + ("--",) + tuple(spec.command), stdin_open=True)


def reading_file(spec: LaunchSpec, file: str, wrap: bool = True) -> LaunchSpec:
    """The file-based targets' form: secret_exec reads ``file``; ``wrap=False`` (the command reads the line from
    its own stdin) pipes the line into the command's stdin instead of setting env and files."""
    command = tuple(spec.command)
    if _wrapped(spec):
        command = command[command.index("--") + 1:]
    mode = ("--file", file) if wrap else ("--file", file, "--stdin")
    if spec.entrypoint is not None:         # secret_exec must run first: the entrypoint becomes its command
        command = tuple(spec.entrypoint) + command
        return replace(spec, entrypoint=SECRET_EXEC[:1], command=SECRET_EXEC[1:] + mode + ("--",) + command)
    return replace(spec, command=SECRET_EXEC + mode + ("--",) + command, stdin_open=False)


def _wrapped(spec: LaunchSpec) -> bool:
    return tuple(spec.command[:len(SECRET_EXEC)]) == SECRET_EXEC
