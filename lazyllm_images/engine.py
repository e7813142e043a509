"""The Docker engine, through the Engine API SDK. Every object the tool makes carries ``org.lazyllm.*`` labels."""

from __future__ import annotations

import functools
import os

from . import LABEL_PREFIX, MANAGED_LABEL
from .errors import EngineError

ENGINE_HINT = ("start it with 'make engine' (Debian/Ubuntu, as root) or your service manager; "
               "'lazyllm doctor' checks the host")


@functools.lru_cache(maxsize=1)
def client():
    """A connected docker-py client, or a clear EngineError."""
    import docker
    try:
        c = docker.from_env(timeout=int(os.environ.get("LAZYLLM_ENGINE_TIMEOUT", "120")))
        c.ping()
        return c
    except Exception as exc:  # docker raises DockerException, requests' ConnectionError, FileNotFoundError, ...
        where = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
        raise EngineError(f"cannot reach the Docker engine at {where} ({_short(exc)})", ENGINE_HINT) from exc


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
    out = labels(kind, **extra)
    for pair in filter(None, os.environ.get("LAZYLLM_LABELS", "").split(",")):
        key, _, value = pair.partition("=")
        if key.strip():
            out[key.strip()] = value.strip()
    return out


def managed_filter(kind: str | None = None, **extra: str) -> dict:
    """A ``filters`` argument matching only what the tool made."""
    wanted = [f"{MANAGED_LABEL}=true"]
    if kind:
        wanted.append(f"{LABEL_PREFIX}.kind={kind}")
    wanted += [f"{LABEL_PREFIX}.{k.replace('_', '-')}={v}" for k, v in extra.items()]
    return {"label": wanted}


def require() -> None:
    """A clear EngineError unless an engine answers (a raw ping on a local socket: no docker-py import)."""
    if local_call("GET", "/_ping") is None:
        client()


def image_exists(ref: str) -> bool:
    found = inspect_images([ref])
    if found is None:
        client()                                   # no engine: its clear error
        return False
    return found[ref] is not None


def image_labels(ref: str) -> dict[str, str]:
    info = (inspect_images([ref]) or {}).get(ref)
    return dict(((info or {}).get("Config") or {}).get("Labels") or {})


def tag_image(ref: str, repo: str, tag: str) -> None:
    """``docker tag ref repo:tag``."""
    from urllib.parse import quote, urlencode
    done = local_call("POST", f"/images/{quote(ref, safe='')}/tag?{urlencode({'repo': repo, 'tag': tag})}")
    if done is not None and done[0] == 201:
        return
    client().images.get(ref).tag(repo, tag)


def images_exist(refs: list[str]) -> dict[str, bool] | None:
    """Which image references exist locally; None when no engine answers."""
    found = inspect_images(refs)
    return None if found is None else {ref: found[ref] is not None for ref in refs}


def inspect_images(refs: list[str]) -> dict[str, dict | None] | None:
    """Each reference's inspect data (None when absent); None when no engine answers.

    The common case (a local unix socket) uses one keep-alive HTTP connection and no docker-py import: this is
    on the path of every no-op ``install`` and every ``--dry-run``.
    """
    from urllib.parse import quote
    if _unix_path() is not None:
        done = _unix_calls([("GET", f"/images/{quote(ref, safe='')}/json") for ref in refs])
        if done is None or any(status not in (200, 404) for status, _ in done):
            return None
        return {ref: (body if status == 200 else None) for ref, (status, body) in zip(refs, done)}
    import docker.errors
    try:
        c = client()
    except EngineError:
        return None
    out: dict[str, dict | None] = {}
    for ref in refs:
        try:
            out[ref] = c.images.get(ref).attrs
        except docker.errors.ImageNotFound:
            out[ref] = None
    return out


API = "/v1.41"     # Docker 20.10 and later


def _unix_path() -> str | None:
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    return host[len("unix://"):] if host.startswith("unix://") else None


def local_call(method: str, url: str, body: object = None) -> tuple[int, object] | None:
    """One Engine API call on the local socket: (status, decoded JSON or None); None when there is no local
    socket or it does not answer (the caller falls back to docker-py, which explains the failure)."""
    if _unix_path() is None:
        return None
    done = _unix_calls([(method, url, body)])
    return None if done is None else done[0]


def _unix_calls(calls: list[tuple]) -> list[tuple[int, object]] | None:
    """(method, path[, JSON body]) calls over one keep-alive connection to the local socket: [(status, decoded
    JSON body or None)], or None when the engine cannot be reached."""
    import http.client
    import json
    import socket

    path = _unix_path()

    class UnixConnection(http.client.HTTPConnection):
        def connect(self):
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(10)
            self.sock.connect(path)

    conn = UnixConnection("localhost")
    out: list[tuple[int, object]] = []
    try:
        for method, url, *payload in calls:
            data = json.dumps(payload[0]).encode() if payload and payload[0] is not None else None
            conn.request(method, url if url == "/_ping" else API + url, body=data,
                         headers={"Content-Type": "application/json"} if data is not None else {})
            resp = conn.getresponse()
            body = resp.read()
            is_json = resp.getheader("Content-Type", "").startswith("application/json")
            out.append((resp.status, json.loads(body) if is_json and body else None))
    except (OSError, ValueError, http.client.HTTPException):
        return None
    finally:
        conn.close()
    return out
