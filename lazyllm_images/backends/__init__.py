"""Backends: what runs a described service (``launch.unit.Service``) somewhere. One today, the local engine
(``backends.docker``, with ``state`` for ps/logs/stop and ``foreground`` for --foreground); Swarm and Kubernetes
implement the same interface later.

    up(service, timeout, keep) -> running     start the units in order, each healthy (a job: ended) before the
                                             next; on failure remove what started; URLs from published ports
    down(name)                               remove the service's containers, network and generated files
    list()                                   the services, from labels (ps)
    logs(name, follow, tail)                 the primary unit's logs (and the others' when not following)
    run_to_completion(unit, timeout) -> int  a job (training): its exit code
"""

from __future__ import annotations

from typing import Protocol

from ..launch.unit import Service, Unit


class Backend(Protocol):
    def up(self, service: Service, timeout: float, keep: bool = False): ...

    def down(self, name: str) -> None: ...

    def list(self) -> list[dict]: ...

    def logs(self, name: str, follow: bool = False, tail: str = "all") -> None: ...

    def run_to_completion(self, unit: Unit, timeout: float) -> int: ...


class LocalEngine:
    """The local Docker engine (``DOCKER_HOST``)."""

    def up(self, service: Service, timeout: float, keep: bool = False):
        from . import docker
        return docker.up(service, timeout, keep)

    def down(self, name: str) -> None:
        from . import state
        state.stop([name], echo=lambda _: None)

    def list(self) -> list[dict]:
        from . import state
        return state.list_services(show_all=True)

    def logs(self, name: str, follow: bool = False, tail: str = "all") -> None:
        from . import state
        state.show_logs(name, follow=follow, tail=tail)

    def run_to_completion(self, unit: Unit, timeout: float) -> int:
        from . import jobs
        return jobs.run_to_completion(unit, timeout)


def local() -> Backend:
    return LocalEngine()
