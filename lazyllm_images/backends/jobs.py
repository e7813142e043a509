"""Units that run to completion on the local engine (a graph's one-shot runner, training jobs): started, waited
for with the engine's wait call, their output read, removed."""

from __future__ import annotations

from dataclasses import dataclass, replace

from .. import engine
from ..errors import LaunchError
from ..launch.unit import Service, Unit
from .docker import remove, start, up


def container_wait(container, timeout: float) -> int:
    """Block until the container ends (the engine's wait call: no polling); its exit code."""
    import requests.exceptions
    try:
        done = engine.local_call("POST", f"/containers/{container.id}/wait", wait=timeout)
    except engine.EngineTimeout:
        raise LaunchError(f"{container.name} did not finish within {timeout:.0f}s", "raise --timeout") from None
    if done is not None:
        if done[0] != 200:
            raise engine.refused("POST", "/containers/ID/wait", *done)
        return int((done[1] or {}).get("StatusCode") or 0)
    try:
        return int(engine.client().containers.get(container.id).wait(timeout=timeout).get("StatusCode") or 0)
    except requests.exceptions.RequestException:
        raise LaunchError(f"{container.name} did not finish within {timeout:.0f}s", "raise --timeout") from None


@dataclass
class JobResult:
    code: int
    stdout: str
    stderr: str


def run_job(unit: Unit, timeout: float) -> JobResult:
    """A unit that runs to completion on its own (no network of the service, no health): started, waited for, its
    output read, removed. A Ctrl-C or a timeout removes it too."""
    container = start(unit.spec, "runtime", unit.secrets, unit.wrap)
    try:
        code = container_wait(container, timeout)
        out = container.logs(stdout=True, stderr=False).decode(errors="replace")
        err = container.logs(stdout=False, stderr=True).decode(errors="replace")
        return JobResult(code, out, err)
    finally:
        remove([container])


def run_to_completion(unit: Unit, timeout: float) -> int:
    """A job as a one-unit service of its own name: started, waited for, removed; its exit code."""
    service = Service(unit.spec.labels.get("org.lazyllm.service", unit.name), (replace(unit, job=True),))
    running = up(service, timeout)
    try:
        running.primary.reload()
        return int(running.primary.attrs.get("State", {}).get("ExitCode") or 0)
    finally:
        remove(running.containers, service.name)
