"""The targets a described service can go to, and what a file-based target renders: files beside each other.

``docker`` launches on the local engine (``backends.docker``); ``compose``, ``swarm`` and ``k8s`` render the same
``launch.unit.Service`` into files (``launch.compose``, ``launch.swarm``, ``launch.k8s``) that ``lazyllm stack`` or
the cluster's own tools run. Pure: rendering writes nothing; ``services.start`` writes ``Rendered.files``.
"""

from __future__ import annotations

from dataclasses import dataclass

TARGETS = ("docker", "compose", "swarm", "k8s")
FILE_TARGETS = TARGETS[1:]


@dataclass(frozen=True)
class Rendered:
    files: tuple[tuple[str, str, int], ...]   # (path relative to the output's folder, text, mode)
    notes: tuple[str, ...] = ()               # what the target cannot say, printed, never silently dropped
    folders: tuple[tuple[str, int], ...] = ()  # empty folders to make (relative, mode): units' shared socket folders


def check_portable(service, target: str) -> None:
    """Units that only make sense on this host's engine are refused on the cluster targets: a controller that
    drives the engine through its socket, and units sharing a socket folder (a graph's runner and sandbox)."""
    if target not in ("swarm", "k8s"):
        return
    from ..errors import UsageError
    from .spec import ENGINE_PURPOSE
    for unit in service.units:
        purposes = {m.purpose for m in unit.spec.mounts if m.kind == "bind"}
        if ENGINE_PURPOSE in purposes:
            raise UsageError(f"--target {target}: {unit.name} starts containers through this host's Docker engine, "
                             "which a cluster does not give a task",
                             "run it on this host, or as a compose stack: --target compose")
        if "socket" in purposes:
            raise UsageError(f"--target {target}: {unit.name} shares a socket folder with another unit of "
                             f"{service.name}, which needs one host", "use --target compose, or run it here")
