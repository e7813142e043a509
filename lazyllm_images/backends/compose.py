"""A rendered compose file run on this host's engine: ``lazyllm stack up|down|ps FILE`` for ``--target compose``.

The project is the service's name (``x-lazyllm.service``), so ``lazyllm ps``, ``logs`` and ``stop`` see the same
containers as a launch by ``deploy``/``run``. Compose v2 (``docker compose``) where the docker CLI has it, else
Debian's ``docker-compose`` v1. Health is waited for here, the same way for both (v1 has no ``--wait``): every
container with a health check healthy, the others running; a failure shows the unit's last log lines, then the
stack comes down (unless ``--keep``); named volumes (indexes, caches) stay.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import sys
import time

from .. import LABEL_PREFIX
from ..errors import LaunchError, UsageError

PROJECT = "com.docker.compose.project"


@functools.lru_cache(maxsize=1)
def found_client() -> tuple[tuple[str, ...], str] | None:
    """(argv, version) of ``docker compose`` (v2) when the docker CLI has the plugin, else of ``docker-compose``
    (v1); None when neither answers."""
    for argv in (("docker", "compose"), ("docker-compose",)):
        if not shutil.which(argv[0]):
            continue
        try:
            done = subprocess.run([*argv, "version", "--short"], capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if done.returncode == 0:
            return argv, done.stdout.strip()
    return None


def compose_argv() -> tuple[str, ...]:
    """The compose client's argv prefix, or a UsageError saying what to install."""
    found = found_client()
    if found is not None:
        return found[0]
    raise UsageError("no compose client here: 'docker compose' (v2) fails and docker-compose (v1) is not installed",
                     "install the compose v2 plugin or docker-compose")


def _compose(path: str, project: str, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    argv = [*compose_argv(), "-p", project, "-f", path, *args]
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise LaunchError(f"{' '.join(argv[:2])} {args[0]} did not finish in {timeout:.0f}s",
                          "see 'lazyllm ps' and the engine's log") from exc


def _failed(done: subprocess.CompletedProcess) -> str:
    lines = [ln.strip() for ln in (done.stderr or done.stdout or "").splitlines() if ln.strip()]
    errors = [ln for ln in lines if "error" in ln.lower() or "invalid" in ln.lower()]
    return (errors or lines or ["(no output)"])[-1]


def check(path: str, project: str) -> None:
    """The file as compose reads it: an edited file that compose refuses is one error with compose's reason."""
    done = _compose(path, project, "config", "-q", timeout=120)
    if done.returncode:
        raise UsageError(f"{path} is not a valid compose file: {_failed(done)}",
                         "render it again with --target compose (or fix the line named)")


def containers(project: str) -> list:
    from .. import engine
    return engine.client().containers.list(all=True, filters={"label": f"{PROJECT}={project}"})


def up(path: str, doc: dict, timeout: float, keep: bool = False) -> dict[str, str]:
    """Start the file's services and wait until every one is healthy; the service's URLs."""
    project = doc["x-lazyllm"]["service"]
    check(path, project)
    done = _compose(path, project, "up", "-d", timeout=timeout + 60)
    try:
        if done.returncode:
            raise LaunchError(f"compose could not start {project}: {_failed(done)}",
                              "see 'lazyllm logs " + project + "' or run the compose command by hand")
        wait_healthy(project, timeout)
    except BaseException:
        if not keep:
            _compose(path, project, "down", "--remove-orphans", timeout=120)
        raise
    import json
    urls: dict[str, str] = {}
    for c in containers(project):
        urls.update(json.loads(c.labels.get(f"{LABEL_PREFIX}.urls", "{}")))
    return urls


def wait_healthy(project: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    said = set()
    while True:
        found = containers(project)
        pending = []
        for c in found:
            state = c.attrs.get("State", {})
            health = (state.get("Health") or {}).get("Status")
            if state.get("Status") in ("exited", "dead") or health == "unhealthy":
                from .docker import TAIL, logs_tail
                sys.stderr.write(f"--- last {TAIL} log lines of {c.name}\n{logs_tail(c)}---\n")
                raise LaunchError(f"{c.name} {'is unhealthy' if health == 'unhealthy' else 'exited'} "
                                  f"(exit code {state.get('ExitCode')})", "see its last log lines above")
            if health not in (None, "healthy") or state.get("Status") != "running":
                pending.append(c.name)
                if c.name not in said:
                    said.add(c.name)
                    sys.stderr.write(f"waiting for {c.name} to be healthy\n")
        if found and not pending:
            return
        if time.monotonic() > deadline:
            raise LaunchError(f"{', '.join(pending) or project} not healthy after {timeout:.0f}s", "raise --timeout")
        time.sleep(0.5)


def down(path: str, doc: dict) -> None:
    project = doc["x-lazyllm"]["service"]
    done = _compose(path, project, "down", "--remove-orphans", timeout=300)
    if done.returncode:
        raise LaunchError(f"compose could not remove {project}: {_failed(done)}", "see 'lazyllm ps'")
