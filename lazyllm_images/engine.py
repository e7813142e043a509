"""The Docker engine: one negotiated Engine API version, spoken by the raw local socket and by docker-py alike.

Every object the tool makes carries ``org.lazyllm.*`` labels.

The version is negotiated once per process, as the docker CLI does: ``GET /version`` (unversioned) gives the
engine's ``ApiVersion`` and ``MinAPIVersion``; the tool speaks the newest version both sides know and never one below
the engine's minimum (Docker 29 refuses clients below 1.44). An engine outside the tool's range is one clear error
naming both.

On a local unix socket the common calls (existence checks, labels, container create/start/inspect/remove, networks)
go over one keep-alive HTTP connection without importing docker-py: its import costs 0.15 s, which is on the path
of every no-op ``install``, every ``--dry-run`` and every ``deploy``. Those raw calls report failures themselves: a
status the caller does not expect is an ``EngineError`` carrying the engine's message (never read as "absent"), and
a timeout is an ``EngineTimeout`` (never a reason to repeat the call through docker-py).
"""

from __future__ import annotations

import functools
import os

from . import LABEL_PREFIX, MANAGED_LABEL
from .errors import EngineError

TOOL_API_MIN = "1.41"       # Docker 20.10
TOOL_API_MAX = "1.52"       # Docker 29.0

ENGINE_HINT = ("start it with 'make engine' (Debian/Ubuntu, as root) or your service manager; "
               "'lazyllm doctor' checks the host")


class EngineUnreachable(EngineError):
    """No engine answers at DOCKER_HOST."""


class EngineTimeout(EngineError):
    """The engine took the call but did not answer in time: its outcome is unknown."""


def docker_host() -> str:
    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


def timeout() -> float:
    return float(os.environ.get("LAZYLLM_ENGINE_TIMEOUT", "120"))


def _unreachable(exc: BaseException | str) -> EngineUnreachable:
    why = exc if isinstance(exc, str) else _short(exc)
    return EngineUnreachable(f"cannot reach the Docker engine at {docker_host()} ({why})", ENGINE_HINT)


# ------------------------------------------------------------------ API version negotiation

def _as_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in str(version).split("."))


def negotiate(engine_max: str | None, engine_min: str | None, engine_version: str | None = None) -> str:
    """The API version to speak with an engine that knows ``engine_min``..``engine_max``: the newest both sides
    know. An engine whose range does not meet the tool's (``TOOL_API_MIN``..``TOOL_API_MAX``) is an EngineError
    naming both ranges."""
    docker = f"Docker {engine_version}" if engine_version else "the engine"
    if not engine_max:
        raise EngineError(f"{docker} at {docker_host()} did not say which Engine API versions it speaks",
                          "is DOCKER_HOST a Docker engine? 'lazyllm doctor' checks the host")
    try:
        top, low = _as_tuple(engine_max), _as_tuple(engine_min or "1.12")
    except ValueError:
        raise EngineError(f"{docker} reports Engine API versions {engine_min!r}..{engine_max!r}, which cannot be read",
                          "is DOCKER_HOST a Docker engine? 'lazyllm doctor' checks the host") from None
    chosen = min(top, _as_tuple(TOOL_API_MAX))
    if chosen < _as_tuple(TOOL_API_MIN):
        raise EngineError(f"{docker} speaks Engine API {engine_max} at most; lazyllm needs {TOOL_API_MIN} "
                          f"(Docker 20.10) or newer and speaks {TOOL_API_MIN}..{TOOL_API_MAX}",
                          "upgrade the Docker engine to 20.10 or newer")
    if chosen < low:
        raise EngineError(f"{docker} accepts Engine API {engine_min} and newer; this lazyllm speaks "
                          f"{TOOL_API_MIN}..{TOOL_API_MAX}",
                          "upgrade lazyllm, or start the engine with DOCKER_MIN_API_VERSION="
                          f"{TOOL_API_MAX} (or lower) in its environment")
    return ".".join(map(str, chosen))


@functools.lru_cache(maxsize=4)
def _version_facts(host: str) -> dict:
    """The engine's unversioned ``GET /version``."""
    if _unix_path() is not None:
        (status, body), = _unix_calls([("GET", "/version")], versioned=False)
        if status != 200 or not isinstance(body, dict):
            raise EngineError(f"the engine at {host} answered GET /version with {status}: {message(body)}",
                              "is DOCKER_HOST a Docker engine? 'lazyllm doctor' checks the host")
        return body
    import docker
    try:
        return docker.from_env(version=TOOL_API_MIN, timeout=int(timeout())).api.version(api_version=False)
    except Exception as exc:  # DockerException, requests' ConnectionError, ...
        raise _unreachable(exc) from exc


def version_facts() -> dict:
    """The engine's ``GET /version`` (Version, ApiVersion, MinAPIVersion, ...), asked once per process."""
    return _version_facts(docker_host())


def api_version() -> str:
    """The Engine API version this process speaks to the engine (negotiated once)."""
    facts = version_facts()
    return negotiate(facts.get("ApiVersion"), facts.get("MinAPIVersion"), facts.get("Version"))


@functools.lru_cache(maxsize=4)
def _client(host: str, version: str):
    import docker
    try:
        return docker.from_env(version=version, timeout=int(timeout()))
    except Exception as exc:  # docker raises DockerException, requests' ConnectionError, FileNotFoundError, ...
        raise _unreachable(exc) from exc


def client():
    """A docker-py client speaking the negotiated version, or a clear EngineError."""
    return _client(docker_host(), api_version())


def reset() -> None:
    """Forget the negotiated version and clients (DOCKER_HOST changed, or the engine was replaced)."""
    _version_facts.cache_clear()
    _client.cache_clear()


client.cache_clear = reset          # the name tests and older callers use


def _short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200]


def labels(kind: str, **extra: str) -> dict[str, str]:
    """The labels every object of ``kind`` (base, layer, service, volume, ...) carries."""
    out = {MANAGED_LABEL: "true", f"{LABEL_PREFIX}.kind": kind}
    out.update({f"{LABEL_PREFIX}.{k.replace('_', '-')}": str(v) for k, v in extra.items()})
    return out


def runtime_labels(kind: str, **extra: str) -> dict[str, str]:
    """Labels for containers, volumes and networks: ``labels()`` plus ``LAZYLLM_LABELS`` ("k=v,k2=v2"), which
    lets a CI job or a test run mark (and later remove) everything it launched. Images never get these: they are
    content-addressed and shared."""
    from .launch.spec import labels_from_env
    return {**labels(kind, **extra), **labels_from_env(os.environ.get("LAZYLLM_LABELS"))}


def managed_filter(kind: str | None = None, **extra: str) -> dict:
    """A ``filters`` argument matching only what the tool made."""
    wanted = [f"{MANAGED_LABEL}=true"]
    if kind:
        wanted.append(f"{LABEL_PREFIX}.kind={kind}")
    wanted += [f"{LABEL_PREFIX}.{k.replace('_', '-')}={v}" for k, v in extra.items()]
    return {"label": wanted}


def require() -> None:
    """A clear EngineError unless an engine answers and speaks a version the tool knows."""
    api_version()


def image_exists(ref: str) -> bool:
    found = inspect_images([ref])
    if found is None:
        require()                                   # no engine: its clear error
    return bool(found and found[ref] is not None)


def image_labels(ref: str) -> dict[str, str]:
    info = (inspect_images([ref]) or {}).get(ref)
    return dict(((info or {}).get("Config") or {}).get("Labels") or {})


def tag_image(ref: str, repo: str, tag: str) -> None:
    """``docker tag ref repo:tag``."""
    from urllib.parse import quote, urlencode
    if call("POST", f"/images/{quote(ref, safe='')}/tag?{urlencode({'repo': repo, 'tag': tag})}", ok=(201,)) is None:
        client().images.get(ref).tag(repo, tag)


def images_exist(refs: list[str]) -> dict[str, bool] | None:
    """Which image references exist locally; None when no engine answers."""
    found = inspect_images(refs)
    return None if found is None else {ref: found[ref] is not None for ref in refs}


def inspect_images(refs: list[str]) -> dict[str, dict | None] | None:
    """Each reference's inspect data (None when absent); None when no engine answers (a dry run needs none).

    A status other than 200 or 404 (the engine refused the call) is an EngineError with the engine's message.
    """
    from urllib.parse import quote
    if _unix_path() is not None:
        try:
            api_version()
            done = _unix_calls([("GET", f"/images/{quote(ref, safe='')}/json") for ref in refs])
        except EngineUnreachable:
            return None
        for ref, (status, body) in zip(refs, done):
            if status not in (200, 404):
                raise refused("GET", f"/images/{ref}/json", status, body)
        return {ref: (body if status == 200 else None) for ref, (status, body) in zip(refs, done)}
    import docker.errors
    try:
        c = client()
    except EngineUnreachable:
        return None
    out: dict[str, dict | None] = {}
    for ref in refs:
        try:
            out[ref] = c.images.get(ref).attrs
        except docker.errors.ImageNotFound:
            out[ref] = None
    return out


# ------------------------------------------------------------------ raw calls on the local socket

def _unix_path() -> str | None:
    host = docker_host()
    return host[len("unix://"):] if host.startswith("unix://") else None


def message(data: object) -> str:
    if isinstance(data, dict) and data.get("message"):
        return str(data["message"]).strip()
    return "no reason given"


def refused(method: str, url: str, status: int, body: object) -> EngineError:
    """The error for a call the engine answered with a status the caller did not expect."""
    return EngineError(f"the engine refused {method} {url.split('?')[0]} ({status}): {message(body)}",
                       "'lazyllm doctor' checks the host")


def call(method: str, url: str, body: object = None, ok: tuple[int, ...] = (200,)) -> tuple[int, object] | None:
    """One Engine API call on the local socket, at the negotiated version: (status, decoded JSON or None). None
    when DOCKER_HOST is not a local socket (the caller uses docker-py). A status outside ``ok`` is an EngineError
    with the engine's message; an engine that cannot be reached is ``EngineUnreachable``, one that does not
    answer in time ``EngineTimeout``."""
    done = local_call(method, url, body)
    if done is not None and done[0] not in ok:
        raise refused(method, url, *done)
    return done


def local_call(method: str, url: str, body: object = None, wait: float | None = None) -> tuple[int, object] | None:
    """Like ``call`` without the status check: the caller reads the status. ``wait``: seconds for this call
    (default ``LAZYLLM_ENGINE_TIMEOUT``)."""
    if _unix_path() is None:
        return None
    api_version()
    return _unix_calls([(method, url, body)], wait=wait)[0]


def _unix_calls(calls: list[tuple], versioned: bool = True, wait: float | None = None) -> list[tuple[int, object]]:
    """(method, path[, JSON body]) calls over one keep-alive connection to the local socket: [(status, decoded
    JSON body or None)]."""
    import http.client
    import json
    import socket

    path = _unix_path()
    wait = timeout() if wait is None else wait
    prefix = f"/v{api_version()}" if versioned else ""

    class UnixConnection(http.client.HTTPConnection):
        def connect(self):
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(wait)
            self.sock.connect(path)

    conn = UnixConnection("localhost")
    out: list[tuple[int, object]] = []
    try:
        try:
            conn.connect()
        except OSError as exc:
            raise _unreachable(exc) from exc
        for method, url, *payload in calls:
            data = json.dumps(payload[0]).encode() if payload and payload[0] is not None else None
            try:
                conn.request(method, prefix + url, body=data,
                             headers={"Content-Type": "application/json"} if data is not None else {})
                resp = conn.getresponse()
                raw = resp.read()
            except TimeoutError as exc:
                raise EngineTimeout(f"the engine at {docker_host()} did not answer {method} {url.split('?')[0]} "
                                    f"within {wait:.0f}s", "the engine is overloaded or stuck: see its log; "
                                    "LAZYLLM_ENGINE_TIMEOUT sets the wait") from exc
            except (OSError, http.client.HTTPException) as exc:
                raise _unreachable(exc) from exc
            is_json = resp.getheader("Content-Type", "").startswith("application/json")
            try:
                out.append((resp.status, json.loads(raw) if is_json and raw else None))
            except ValueError:
                out.append((resp.status, None))
    finally:
        conn.close()
    return out
