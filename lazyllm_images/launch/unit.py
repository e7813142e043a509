"""What a service is before any target runs it: named units, each a LaunchSpec plus what launching it needs.

Pure data. ``services/`` build these; a backend (``backends/``) runs them: the local engine today, Swarm or
Kubernetes through the same interface later. A unit says which stack (plan) its image comes from, the secrets it
gets on stdin, the files generated for it, which URLs its published port serves, and whether it is a job that runs
to completion instead of a server that must become healthy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from .spec import LaunchSpec


@dataclass(frozen=True)
class Unit:
    spec: LaunchSpec
    stack: object = None                # the Plan its image is the top of (built before launch); None: built
    secrets: dict | None = None         # {"env": {...}, "files": {path: text}}: on stdin, never in the config
    wrap: bool = True                   # False: the command reads the secrets line itself (the MCP bridge)
    files: tuple[tuple[str, str], ...] = ()   # generated files (name, text), bind-mounted from the service's folder
    urls: tuple[tuple[str, str], ...] = ()    # (key, path) served on the first published port: ("api", "/v1")
    explain: Callable[[str], object] | None = field(default=None, compare=False)   # last logs -> a clearer error
    job: bool = False                   # runs to completion: its exit code is the outcome, no health wait
    ready_path: str | None = None       # a unit without a port: ready when this host path exists (a socket)

    @property
    def name(self) -> str:
        return self.spec.name


@dataclass(frozen=True)
class Service:
    """One service: its units in start order (each healthy before the next), the GPU rendering mode for all of
    them, and which unit's logs ``lazyllm logs`` and ``--foreground`` follow."""

    name: str
    units: tuple[Unit, ...]
    gpu_mode: str = "runtime"           # runtime (--gpus) | cdi
    primary: int = 0
    notes: tuple[str, ...] = ()         # lines a dry run prints first ("framework: vllm (auto: ...)")

    def __post_init__(self):
        names = [u.name for u in self.units]
        if len(set(names)) != len(names):
            raise ValueError(f"unit names repeat in service {self.name}: {names}")
        if not 0 <= self.primary < max(len(self.units), 1):
            raise ValueError(f"primary unit {self.primary} is not one of {len(self.units)}")

    def stacks(self) -> list:
        """The plans to build, each stack once (two units may share one)."""
        return list({p.top.ref: p for p in (u.stack for u in self.units) if p is not None}.values())

    @property
    def specs(self) -> list[LaunchSpec]:
        return [u.spec for u in self.units]

    def unit(self, name: str) -> Unit:
        return next(u for u in self.units if u.name == name)
