"""The part of a real launcher every kind shares (model servers now, trainer jobs next): the containers this
controller started, found again by label, probed, logged and removed through the local engine.

Every container gets ``org.lazyllm.controller=<instance>``, ``org.lazyllm.record=<uid>`` and
``org.lazyllm.handle=<JSON>`` (container and service names, the health URL, the endpoint: nothing secret), so a
controller that restarts finds its work without trusting anything but the engine.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator

from ... import LABEL_PREFIX
from . import launcher as L
from .records import Record

CONTROLLER_LABEL = f"{LABEL_PREFIX}.controller"
RECORD_LABEL = f"{LABEL_PREFIX}.record"
HANDLE_LABEL = f"{LABEL_PREFIX}.handle"


def http_ok(url: str, timeout: float = 2.0) -> tuple[bool, str]:
    """(whether URL answers 2xx, what it said), never through a proxy."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as resp:
            return 200 <= resp.status < 300, f"HTTP {resp.status}"
    except urllib.error.HTTPError as exc:
        return False, f"HTTP {exc.code} from {url}"
    except Exception as exc:  # noqa: BLE001 - refused, reset, timeout: all mean "not ready"
        return False, f"{url}: {getattr(exc, 'reason', None) or exc}"


class DockerLogStream:
    """docker-py's log chunks as lines; ``close()`` (any thread) ends a follow."""

    def __init__(self, chunks) -> None:
        self.chunks = chunks

    def __iter__(self) -> Iterator[str]:
        pending = b""
        for chunk in self.chunks:
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                yield line.rstrip(b"\r").decode(errors="replace")
        if pending:
            yield pending.decode(errors="replace")

    def close(self) -> None:
        close = getattr(self.chunks, "close", None)
        if close is not None:
            try:
                close()
            except Exception:  # noqa: BLE001 - closing a dead socket
                pass


class ContainerLauncher:
    """Probe, stop, list and logs for the containers of one controller instance; subclasses add ``prepare`` and
    ``launch`` (what to start)."""

    def __init__(self, instance: str) -> None:
        self.instance = instance

    def labels(self, record: Record, handle: dict) -> dict[str, str]:
        return {CONTROLLER_LABEL: self.instance, RECORD_LABEL: record.uid,
                HANDLE_LABEL: json.dumps(handle, sort_keys=True)}

    @staticmethod
    def _container(name: str):
        import docker.errors

        from ... import engine
        try:
            return engine.client().containers.get(name)
        except docker.errors.NotFound:
            return None

    def observe(self, handle: dict):
        """(container, its State, its status) for HANDLE; None when the container is gone."""
        container = self._container(handle["container"])
        if container is None:
            return None
        state = container.attrs.get("State", {})
        return container, state, state.get("Status", container.status)

    def probe(self, handle: dict) -> L.Probe:
        seen = self.observe(handle)
        if seen is None:
            return L.Probe(L.MISSING, detail="no such container")
        _, state, status = seen
        if status in ("exited", "dead"):
            return L.Probe(L.EXITED, exit_code=int(state.get("ExitCode") or 0), detail=state.get("Error") or "")
        if status != "running":
            return L.Probe(L.STARTING, detail=f"container {status}")
        if not handle.get("health_url"):
            return L.Probe(L.RUNNING)
        ok, said = http_ok(handle["health_url"])
        return L.Probe(L.READY if ok else L.RUNNING, detail=said)

    @staticmethod
    def start_service(service) -> None:
        """``backends.docker.up`` without its wait (the controller polls health or the exit itself): GPU checks,
        then the units; on failure nothing is left."""
        from ...backends import docker as backend
        from ...services.start import check_gpus, device_gids
        check_gpus(service)
        backend.up(service, 0, gids=device_gids(service), wait=False)

    def stop(self, handle: dict) -> None:
        """The whole service the unit belongs to: containers, network, generated files (``lazyllm stop``)."""
        from ...backends import local
        from ...errors import UsageError
        try:
            local().down(handle["service"])
        except UsageError:                      # gone already
            pass

    def list_running(self) -> dict[str, dict]:
        from ... import engine
        flt = engine.managed_filter("service")
        flt["label"].append(f"{CONTROLLER_LABEL}={self.instance}")
        found = {}
        for c in engine.client().containers.list(all=True, filters=flt):
            uid = c.labels.get(RECORD_LABEL)
            try:
                handle = json.loads(c.labels.get(HANDLE_LABEL) or "{}")
            except ValueError:
                handle = {}
            if uid:
                found[uid] = handle or {"container": c.name, "service": c.labels.get(f"{LABEL_PREFIX}.service")}
        return found

    def logs(self, handle: dict, follow: bool = False, tail: int | None = None) -> L.LogStream:
        container = self._container(handle["container"])
        if container is None:
            return L.ListStream([])
        if not follow:
            text = container.logs(tail=tail or "all").decode(errors="replace")
            return L.ListStream(text.splitlines())
        return DockerLogStream(container.logs(stream=True, follow=True, tail=tail or "all"))
