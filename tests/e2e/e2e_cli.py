"""Running the real CLI from the e2e tests (imported by name: test modules must not import ``conftest``)."""

from __future__ import annotations

import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

REPO = Path(__file__).resolve().parents[2]


def cli_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "lazyllm_images", *args]


def cli_env(extra: dict | None = None) -> dict[str, str]:
    """The CLI's environment in these tests: the offline base (what a user on an air-gapped host runs)."""
    lock = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"lazyllm-e2e-{os.getpid()}.lock")
    return {**os.environ, "LAZYLLM_BASE": "offline", "LAZYLLM_LOCK_FILE": lock, **(extra or {})}


def lazyllm(*args: str, timeout: float = 1800, env: dict | None = None) -> subprocess.CompletedProcess:
    """The real CLI on the offline base."""
    return subprocess.run(cli_argv(*args), capture_output=True, text=True, timeout=timeout, env=cli_env(env))


def deployed(result: subprocess.CompletedProcess) -> dict[str, str]:
    """``service: / endpoint: / model: / chat:`` lines printed by ``lazyllm deploy``."""
    assert result.returncode == 0, result.stderr[-4000:]
    out = {}
    for line in result.stdout.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("service", "endpoint", "model", "chat") and value.strip():
            out[key.strip()] = value.strip().split(" ")[0]
    return out


@contextmanager
def deployment(*args: str) -> Iterator[dict[str, str]]:
    info = deployed(lazyllm("deploy", *args))
    try:
        yield info
    finally:
        lazyllm("stop", info["service"])
