"""The local-engine backend: the effects of launching a ``launch.unit.Service`` on this host's Docker engine.

Networks, volumes, generated files, containers (secrets on stdin), health waits (or a job's exit), clean removal
on failure; ``up`` is what every command that launches calls (deploy, run chatbot|rag, deploy mcp_server).
Everything created carries the tool's labels (plus ``LAZYLLM_LABELS``) so ``ps``, ``logs`` and ``stop`` find it,
and nothing else is ever touched.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, replace
from typing import Callable, Iterator

from .. import engine
from ..errors import LaunchError, UsageError
from ..launch.docker import container_kwargs
from ..launch.spec import LaunchSpec, PortSpec, labels_from_env
from ..launch.unit import Service, Unit
from ..launch import secrets as secret_files
from ..paths import service_files_dir
from . import docker_api

TAIL = 30


def _bind_address(host_ip: str) -> tuple[int, str]:
    """(socket family, address) to probe a port the engine would publish on ``host_ip`` (all: loopback)."""
    if ":" in host_ip:
        return socket.AF_INET6, "::1" if host_ip in ("::", "") else host_ip
    return socket.AF_INET, "127.0.0.1" if host_ip in ("0.0.0.0", "") else host_ip


def free_port(host_ip: str) -> int:
    family, bind = _bind_address(host_ip)
    with socket.socket(family) as s:
        try:
            s.bind((bind, 0))
        except OSError:         # an address of the engine's host that this process does not have (a controller
            s.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", 0))   # in a container): any free port
        return s.getsockname()[1]


def with_ports(spec: LaunchSpec) -> LaunchSpec:
    """Fill in host ports left to us (None) with free ones, so URLs are known before the start."""
    ports = tuple(p if p.host_port else replace(p, host_port=free_port(p.host_ip)) for p in spec.ports)
    return replace(spec, ports=ports)


def port_in_use(host_ip: str, port: int) -> bool:
    """Whether a server could not listen there now. SO_REUSEADDR, as servers (docker-proxy) bind: connections a
    stopped server left in TIME_WAIT do not hold the port."""
    family, bind = _bind_address(host_ip)
    with socket.socket(family) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((bind, port))
            return False
        except OSError:
            return True


def url(port: PortSpec, path: str = "") -> str:
    family, host = _bind_address(port.host_ip)
    if family == socket.AF_INET6:
        host = f"[{host}]"
    return f"http://{host}:{port.host_port}{path}"


def service_exists(name: str) -> bool:
    flt = engine.managed_filter("service", service=name)
    found = docker_api.labelled_containers(flt)
    if found is None:
        found = engine.client().containers.list(all=True, filters=flt)
    return bool(found)


def ensure_network(service: str) -> str:
    name = f"{service}-net"
    labels = engine.runtime_labels("network", service=service)
    names = docker_api.network_names(name)
    if names is not None:                                   # the name filter matches substrings: compare whole
        if name not in names:
            docker_api.create_network(name, labels)
        return name
    client = engine.client()
    if not client.networks.list(names=[name]):
        client.networks.create(name, driver="bridge", labels=labels)
    return name


class NetworkInBackground:
    """``ensure_network`` on a thread, started before the service's stacks are checked: the engine creates the
    network (80 ms) meanwhile. ``wait()`` before the first container; ``discard()`` when the launch never
    happens."""

    def __init__(self, service: str) -> None:
        self.service, self.error = service, None
        self.thread = threading.Thread(target=self._run, name=f"network-{service}", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            ensure_network(self.service)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread by wait()
            self.error = exc

    def wait(self) -> None:
        self.thread.join()
        if self.error is not None:
            raise self.error

    def discard(self) -> None:
        self.thread.join()
        if self.error is None:
            remove([], self.service)

    @staticmethod
    @contextlib.contextmanager
    def discarded_on_error(job: "NetworkInBackground | None") -> Iterator[None]:
        """Any failure inside: the network goes (nothing will run on it), then the failure goes on."""
        try:
            yield
        except BaseException:
            if job is not None:
                job.discard()
            raise


def start(spec: LaunchSpec, gpu_mode: str = "runtime", secrets: dict | None = None, wrap: bool = True,
          gids: dict | None = None):
    """Create and start one container (``_start``), then join the other services' networks it names."""
    container = _start(spec, gpu_mode, secrets, wrap, gids)
    try:
        for net in spec.extra_networks:
            connect(container, net)
    except BaseException:
        _remove_quietly(engine.client(), container.id)
        raise
    return container


def connect(container, network: str) -> None:
    done = engine.call("POST", f"/networks/{network}/connect", {"Container": container.id}, ok=(200,))
    if done is None:
        engine.client().networks.get(network).connect(container.id)


def _start(spec: LaunchSpec, gpu_mode: str = "runtime", secrets: dict | None = None, wrap: bool = True,
           gids: dict | None = None):
    """Create and start one container. ``secrets`` ({"env": {...}, "files": {"/tmp/x": "..."}}) go through the
    attach socket to runtime.secret_exec, never into the container's config, labels or logs. ``wrap=False``: the
    container's own command reads that JSON line from stdin (the MCP bridge's --secrets-stdin)."""
    secrets = {k: v for k, v in (secrets or {}).items() if v}
    if secrets:
        spec = secret_files.reading_stdin(spec, wrap)
    kwargs = container_kwargs(spec, gpu_mode, gids=gids)
    kwargs["labels"] = {**kwargs.get("labels", {}), **labels_from_env(os.environ.get("LAZYLLM_LABELS"))}
    if not secrets:                                         # no stdin to attach: the local socket, no docker-py
        container = docker_api.create_and_start(kwargs)
        if container is not None:
            return container
    import docker.errors
    import requests.exceptions
    client = engine.client()
    try:
        container = client.containers.create(**kwargs)
    except docker.errors.ImageNotFound as exc:
        raise LaunchError(f"image {spec.image} is not here", "run 'lazyllm install' first") from exc
    except docker.errors.APIError as exc:
        raise LaunchError(f"the engine refused container {spec.name}: {exc.explanation or exc}",
                          "'lazyllm doctor' checks the host") from exc
    except requests.exceptions.RequestException as exc:   # a timeout: the create may have happened
        _remove_quietly(client, spec.name)
        raise engine.EngineTimeout(f"the engine did not create container {spec.name} in time ({exc})",
                                   "the engine is overloaded or stuck: see its log") from exc
    try:
        if secrets:
            sock = container.attach_socket(params={"stdin": 1, "stream": 1})
            container.start()
            raw = getattr(sock, "_sock", sock)
            raw.sendall((json.dumps(secrets) + "\n").encode())
            raw.close()
        else:
            container.start()
    except BaseException as exc:            # an attach failure or a Ctrl-C here must not orphan the container
        _remove_quietly(client, container.id)
        if isinstance(exc, docker.errors.APIError):
            raise LaunchError(f"container {spec.name} did not start: {exc.explanation or exc}",
                              "another process may hold the port: choose another with --port") from exc
        raise
    return container


def _remove_quietly(client, name: str) -> None:
    try:
        client.containers.get(name).remove(force=True)
    except Exception:  # gone already, or the engine is still stuck: nothing more to do here
        pass


def logs_tail(container, n: int = TAIL) -> str:
    try:
        return container.logs(tail=n).decode(errors="replace")
    except Exception:
        return ""


def _http_ok(target: str) -> bool:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(target, timeout=3) as resp:
            return 200 <= resp.status < 300
    except Exception:
        return False


def wait_healthy(container, health_url: str, timeout: float, on_tick: Callable[[float], None] | None = None) -> None:
    start_time = time.monotonic()
    while True:
        container.reload()
        state = container.attrs.get("State", {})
        if state.get("Status") in ("exited", "dead"):
            raise LaunchError(f"{container.name} exited with code {state.get('ExitCode')} before it was ready",
                              "see its last log lines above")
        if _http_ok(health_url):
            return
        elapsed = time.monotonic() - start_time
        if elapsed > timeout:
            raise LaunchError(f"{container.name} was not healthy after {timeout:.0f}s ({health_url})",
                              "raise --timeout, or see its last log lines above")
        if on_tick:
            on_tick(elapsed)
        # a quick server is seen at once; a slow one costs little
        time.sleep(0.05 if elapsed < 10 else 0.1 if elapsed < 60 else 0.5)


def remove(containers, service: str | None = None) -> None:
    """Remove ``containers``; with ``service``, also its network and generated files."""
    for c in containers:
        try:
            c.remove(force=True)
        except Exception:
            pass
    if service:
        for net in engine.client().networks.list(filters=engine.managed_filter("network", service=service)):
            try:
                net.remove()
            except Exception:
                pass
        remove_files(service)


def ensure_volumes(specs: list[LaunchSpec]) -> None:
    """The named volumes the specs mount, made with the tool's labels where missing (the engine would make them
    unlabelled, out of reach of ``prune --volumes``)."""
    wanted = {m.source: m.purpose for s in specs for m in s.mounts if m.kind == "volume"}
    if not wanted:
        return
    from urllib.parse import urlencode
    for name, purpose in wanted.items():
        labels = engine.runtime_labels("volume", purpose=purpose or "data")
        done = engine.call("GET", f"/volumes?{urlencode({'filters': json.dumps({'name': [name]})})}")
        if done is not None:
            if name not in [v.get("Name") for v in (done[1] or {}).get("Volumes") or []]:
                engine.call("POST", "/volumes/create", {"Name": name, "Labels": labels}, ok=(201,))
            continue
        client = engine.client()
        if name not in [v.name for v in client.volumes.list(filters={"name": name})]:
            client.volumes.create(name, labels=labels)


def urls_of(units: list[Unit]) -> dict[str, str]:
    """key -> URL of every unit's published first port (ports filled in)."""
    return {key: url(u.spec.ports[0], path) for u in units for key, path in u.urls if u.spec.ports}


def with_urls(service: Service) -> tuple[list[Unit], dict[str, str]]:
    """The units with their host ports filled in and the service's URLs on their labels, and those URLs: what a
    launch here and a compose file for this host both need before anything starts."""
    units = [replace(u, spec=with_ports(u.spec)) for u in service.units]
    found = urls_of(units)
    return labelled(units, found, service.primary), found


def labelled(units: list[Unit], urls: dict[str, str], primary: int) -> list[Unit]:
    """Every container of a service carries the service's URLs; ``ps`` and ``logs`` start from the primary one."""
    return [replace(u, spec=replace(u.spec, labels={**u.spec.labels, "org.lazyllm.urls": json.dumps(urls),
                                                    **({"org.lazyllm.primary": "true"} if i == primary else {})}))
            for i, u in enumerate(units)]


def write_files(service: Service) -> None:
    """The units' generated files, in the service's files folder (0644), before any container mounts them; and
    the socket folders units share there (writable by the containers' unprivileged user)."""
    folder = service_files_dir(service.name)
    wanted = [(name, text) for u in service.units for name, text in u.files]
    sockets = {m.source for u in service.units for m in u.spec.mounts
               if m.kind == "bind" and m.purpose == "socket" and m.source.startswith(str(folder))}
    if not wanted and not sockets:
        return
    folder.mkdir(parents=True, exist_ok=True)
    for path in sockets:
        os.makedirs(path, exist_ok=True)
        os.chmod(path, 0o777)       # the containers' user (10001) makes its socket here
    for name, text in wanted:
        path = folder / name
        path.write_text(text)
        path.chmod(0o644)


def remove_files(service: str) -> None:
    import shutil
    shutil.rmtree(service_files_dir(service), ignore_errors=True)


@dataclass
class Running:
    """A service up on the local engine: its containers (in unit order) and URLs."""

    service: Service
    containers: list
    urls: dict[str, str]

    @property
    def primary(self):
        return self.containers[self.service.primary]


def up(service: Service, timeout: float, keep: bool = False, network: NetworkInBackground | None = None,
       gids: dict | None = None, wait: bool = True) -> Running:
    """Start the units in order, each healthy before the next (a job: until it ends); on any failure (or Ctrl-C)
    remove what was started, unless ``keep``. ``network``: the service's network, already on its way (made here
    when a unit is on it); ``gids``: device node -> owning groups (Ascend, AMD); ``wait=False``: start them all and
    return (a controller that polls health itself)."""
    units, found = with_urls(service)
    try:
        if network is not None:
            network.wait()
        elif f"{service.name}-net" in {u.spec.network for u in units}:
            ensure_network(service.name)
        ensure_volumes([u.spec for u in units])
        write_files(service)
    except BaseException:
        if not keep:
            remove([], service.name)
        raise
    started: list = []
    try:
        for unit in units:
            container = start(unit.spec, service.gpu_mode, unit.secrets, unit.wrap, gids)
            started.append(container)
            if not wait:
                continue
            try:
                if unit.job:
                    wait_exit(container, timeout)
                elif not unit.spec.ports:
                    wait_path(container, unit.ready_path, timeout)
                else:
                    health = url(unit.spec.ports[0], unit.spec.healthcheck.path if unit.spec.healthcheck else "/")
                    sys.stderr.write(f"waiting for {unit.name} to be healthy ({health})\n")
                    wait_healthy(container, health, timeout)
            except LaunchError as exc:
                raise explained(unit, container, exc) from exc
    except BaseException:
        if not keep:
            remove(started, service.name)
        raise
    return Running(service, started, found)


def explained(unit: Unit, container, exc: LaunchError) -> LaunchError:
    """Show the unit's last log lines; its ``explain`` may turn them into a clearer error."""
    tail = logs_tail(container)
    sys.stderr.write(f"--- last {TAIL} log lines of {container.name}\n{tail}---\n")
    clearer = unit.explain(tail) if unit.explain else None
    return clearer if clearer is not None else exc


def wait_path(container, path: str | None, timeout: float) -> None:
    """A unit without a port: ready when ``path`` (on this host: a socket in a bind-mounted folder) exists, or at
    once without one; an exit before that is a LaunchError."""
    start_time = time.monotonic()
    while path is not None and not os.path.exists(path):
        container.reload()
        state = container.attrs.get("State", {})
        if state.get("Status") in ("exited", "dead"):
            raise LaunchError(f"{container.name} exited with code {state.get('ExitCode')} before it was ready",
                              "see its last log lines above")
        if time.monotonic() - start_time > timeout:
            raise LaunchError(f"{container.name} was not ready after {timeout:.0f}s ({path})", "raise --timeout")
        time.sleep(0.05)


def wait_exit(container, timeout: float) -> int:
    """A job: wait until it ends; a non-zero exit is a LaunchError, its code the outcome."""
    deadline = time.monotonic() + timeout
    while True:
        container.reload()
        state = container.attrs.get("State", {})
        if state.get("Status") in ("exited", "dead"):
            code = int(state.get("ExitCode") or 0)
            if code:
                raise LaunchError(f"{container.name} exited with code {code}", "see its last log lines above")
            return code
        if time.monotonic() > deadline:
            raise LaunchError(f"{container.name} did not finish within {timeout:.0f}s", "raise --timeout")
        time.sleep(0.2)


def unique_service_name(base: str, explicit: bool) -> str:
    if not service_exists(base):
        return base
    if explicit:
        raise UsageError(f"a service named {base!r} exists", f"'lazyllm stop {base}' first, or choose another --name")
    for i in range(2, 100):
        if not service_exists(f"{base}-{i}"):
            return f"{base}-{i}"
    raise UsageError(f"too many services named {base}-*", "'lazyllm stop --all' or choose --name")
