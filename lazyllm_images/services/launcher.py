"""Effects of launching: networks, containers (secrets on stdin), health waits, clean removal on failure.

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
from . import local_container

TAIL = 30


CA_TARGET = "/etc/lazyllm/ca.crt"


def with_host_trust(spec: LaunchSpec) -> LaunchSpec:
    """For containers that reach the internet (online APIs, servers that download themselves): the host's CA bundle
    read-only (TLS-intercepting proxies) and its proxy variables, at run time only."""
    from ..host import ca_bundle, proxy_env
    from ..launch.spec import MountSpec
    env = {**proxy_env(), **spec.env}
    mounts = spec.mounts
    bundle = ca_bundle()
    if bundle:
        mounts = mounts + (MountSpec("bind", CA_TARGET, os.path.realpath(bundle), read_only=True, purpose="ca"),)
        env.update({k: CA_TARGET for k in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE",
                                            "NODE_EXTRA_CA_CERTS", "PIP_CERT", "GIT_SSL_CAINFO")})
    return replace(spec, env=env, mounts=mounts)


def free_port(host_ip: str) -> int:
    bind = "127.0.0.1" if host_ip in ("0.0.0.0", "") else host_ip
    with socket.socket() as s:
        s.bind((bind, 0))
        return s.getsockname()[1]


def with_ports(spec: LaunchSpec) -> LaunchSpec:
    """Fill in host ports left to us (None) with free ones, so URLs are known before the start."""
    ports = tuple(p if p.host_port else replace(p, host_port=free_port(p.host_ip)) for p in spec.ports)
    return replace(spec, ports=ports)


def port_in_use(host_ip: str, port: int) -> bool:
    bind = "127.0.0.1" if host_ip in ("0.0.0.0", "") else host_ip
    with socket.socket() as s:
        try:
            s.bind((bind, port))
            return False
        except OSError:
            return True


def url(port: PortSpec, path: str = "") -> str:
    host = "127.0.0.1" if port.host_ip in ("0.0.0.0", "") else port.host_ip
    return f"http://{host}:{port.host_port}{path}"


def service_exists(name: str) -> bool:
    flt = engine.managed_filter("service", service=name)
    found = local_container.labelled_containers(flt)
    if found is None:
        found = engine.client().containers.list(all=True, filters=flt)
    return bool(found)


def ensure_network(service: str) -> str:
    name = f"{service}-net"
    labels = engine.runtime_labels("network", service=service)
    names = local_container.network_names(name)
    if names is not None:                                   # the name filter matches substrings: compare whole
        if name not in names:
            local_container.create_network(name, labels)
        return name
    client = engine.client()
    if not client.networks.list(names=[name]):
        client.networks.create(name, driver="bridge", labels=labels)
    return name


class NetworkInBackground:
    """``ensure_network`` on a thread, started as soon as the service's name is known: the engine creates the
    network (80 ms) while this process plans. ``wait()`` before the first container; ``discard()`` when the
    launch never happens."""

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


SECRET_EXEC = ("python3", "-m", "lazyllm_images.runtime.secret_exec", "--")


def with_secret_exec(spec: LaunchSpec) -> LaunchSpec:
    """Secrets reach the process through runtime.secret_exec reading stdin, never the container's config."""
    if spec.command[:len(SECRET_EXEC)] == SECRET_EXEC:
        return replace(spec, stdin_open=True)
    return replace(spec, command=SECRET_EXEC + tuple(spec.command), stdin_open=True)


def start(spec: LaunchSpec, gpu_mode: str = "runtime", secrets: dict | None = None, wrap: bool = True):
    """Create and start one container. ``secrets`` ({"env": {...}, "files": {"/tmp/x": "..."}}) go through the
    attach socket to runtime.secret_exec, never into the container's config, labels or logs. ``wrap=False``: the
    container's own command reads that JSON line from stdin (the MCP bridge's --secrets-stdin)."""
    secrets = {k: v for k, v in (secrets or {}).items() if v}
    if secrets:
        spec = with_secret_exec(spec) if wrap else replace(spec, stdin_open=True)
    kwargs = container_kwargs(spec, gpu_mode)
    kwargs["labels"] = {**kwargs.get("labels", {}), **labels_from_env(os.environ.get("LAZYLLM_LABELS"))}
    if not secrets:                                         # no stdin to attach: the local socket, no docker-py
        container = local_container.create_and_start(kwargs)
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


@dataclass
class Unit:
    """One container of a service: its spec and the secrets it gets on stdin."""

    spec: LaunchSpec
    secrets: dict | None = None
    wrap: bool = True               # False: the command reads the secrets line itself
    explain: Callable[[str], LaunchError | None] | None = None   # its last log lines -> a clearer error


def labelled(specs: list[LaunchSpec], urls: dict[str, str], primary: int = 0) -> list[LaunchSpec]:
    """Every container of a service carries the service's URLs; ``ps`` and ``logs`` start from the primary one."""
    return [replace(s, labels={**s.labels, "org.lazyllm.urls": json.dumps(urls),
                               **({"org.lazyllm.primary": "true"} if i == primary else {})})
            for i, s in enumerate(specs)]


def launch_all(service: str, units: list[Unit], gpu_mode: str, timeout: float, keep: bool = False,
               network: NetworkInBackground | None = None) -> list:
    """Start the units in order, each healthy before the next; on any failure (or Ctrl-C) remove what was
    started, unless ``keep``. ``network``: the service's network, already on its way."""
    if network is not None:
        network.wait()
    else:
        ensure_network(service)
    ensure_volumes([u.spec for u in units])
    started = []
    try:
        for unit in units:
            spec = unit.spec
            container = start(spec, gpu_mode, unit.secrets, unit.wrap)
            started.append(container)
            health = url(spec.ports[0], spec.healthcheck.path if spec.healthcheck else "/")
            sys.stderr.write(f"waiting for {spec.name} to be healthy ({health})\n")
            try:
                wait_healthy(container, health, timeout)
            except LaunchError as exc:
                tail = logs_tail(container)
                sys.stderr.write(f"--- last {TAIL} log lines of {container.name}\n{tail}---\n")
                clearer = unit.explain(tail) if unit.explain else None
                if clearer is not None:
                    raise clearer from exc
                raise
    except BaseException:
        if not keep:
            remove(started, service)
        raise
    return started


@contextlib.contextmanager
def interrupts_as_flag() -> Iterator[threading.Event]:
    """Within: Ctrl-C and SIGTERM only set the yielded event. A KeyboardInterrupt raised at an arbitrary point can
    land inside a lazy import (a half-imported ``requests`` then breaks every later docker-py call, the removal
    included) or between two engine calls; a flag is read where stopping is safe."""
    import signal
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _stream_logs(primary) -> None:
    try:
        for chunk in primary.logs(stream=True, follow=True):
            sys.stdout.write(chunk.decode(errors="replace"))
            sys.stdout.flush()
    except Exception:       # the container was removed under the stream: the end of it
        pass


def hand_over(containers, primary, service: str, announce: Callable[[], None], foreground: bool) -> None:
    """The end of every launch: print the service's summary (``announce``) and return, or with ``--foreground``
    stay attached (``attend``)."""
    if foreground:
        attend(containers, primary, service, announce)
    else:
        announce()


def attend(containers, primary, service: str, announce: Callable[[], None]) -> None:
    """``--foreground``: announce the service, stream the primary container's logs until Ctrl-C, SIGTERM or its
    end, then remove every container and the network, and say so. Signals only set a flag from the start, so an
    early Ctrl-C (even while the summary prints) still removes everything, and a second one cannot cut the
    removal short. The logs stream on a thread: signals never interrupt its imports or reads. A primary that
    fails on its own (``describe_end``) is an error, raised after the removal."""
    reader = threading.Thread(target=_stream_logs, args=(primary,), daemon=True)
    ended = None
    with interrupts_as_flag() as stop:
        try:
            announce()
            sys.stdout.flush()
            reader.start()
            while reader.is_alive() and not stop.wait(0.2):
                pass
            ended = None if stop.is_set() else describe_end(_state(primary))
        finally:
            remove(containers, service)
            if reader.is_alive():
                reader.join(timeout=2)
    sys.stdout.flush()
    print(f"stopped {service}" + ("" if ended is None else f" ({primary.name} {ended[0]})"), flush=True)
    if ended and ended[1]:
        raise LaunchError(f"{primary.name} {ended[0]}", "see its log lines above")


SIGNALLED = (130, 137, 143)     # 128 + SIGINT, SIGKILL, SIGTERM: stopped by someone (docker stop, lazyllm stop)


def describe_end(state: dict | None) -> tuple[str, bool]:
    """How a container ended (its inspected ``State``; None: it is gone), and whether that is a failure: a
    non-zero exit of its own, or the OOM killer. A stop by signal is not."""
    if state is None:
        return "was removed by another command", False
    if state.get("OOMKilled"):
        return "was killed: out of memory", True
    code = state.get("ExitCode")
    return f"exited with code {code}", code not in (0, *SIGNALLED)


def _state(container) -> dict | None:
    try:
        container.reload()
    except Exception:
        return None
    return container.attrs.get("State", {})


def unique_service_name(base: str, explicit: bool) -> str:
    if not service_exists(base):
        return base
    if explicit:
        raise UsageError(f"a service named {base!r} exists", f"'lazyllm stop {base}' first, or choose another --name")
    for i in range(2, 100):
        if not service_exists(f"{base}-{i}"):
            return f"{base}-{i}"
    raise UsageError(f"too many services named {base}-*", "'lazyllm stop --all' or choose --name")
