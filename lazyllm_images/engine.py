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


def image_exists(ref: str) -> bool:
    import docker.errors
    try:
        client().images.get(ref)
        return True
    except docker.errors.ImageNotFound:
        return False


def image_labels(ref: str) -> dict[str, str]:
    import docker.errors
    try:
        return dict(client().images.get(ref).labels or {})
    except docker.errors.ImageNotFound:
        return {}


def images_exist(refs: list[str]) -> dict[str, bool] | None:
    """Which image references exist locally; None when no engine answers."""
    found = inspect_images(refs)
    return None if found is None else {ref: found[ref] is not None for ref in refs}


def inspect_images(refs: list[str]) -> dict[str, dict | None] | None:
    """Each reference's inspect data (None when absent); None when no engine answers.

    The common case (a local unix socket) uses one keep-alive HTTP connection and no docker-py import: this is
    on the path of every no-op ``install`` and every ``--dry-run``.
    """
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if host.startswith("unix://"):
        return _inspect_unix(host[len("unix://"):], refs)
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


def _inspect_unix(path: str, refs: list[str]) -> dict[str, dict | None] | None:
    import http.client
    import socket
    from urllib.parse import quote

    class UnixConnection(http.client.HTTPConnection):
        def connect(self):
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(10)
            self.sock.connect(path)

    import json
    conn = UnixConnection("localhost")
    out: dict[str, dict | None] = {}
    try:
        for ref in refs:
            conn.request("GET", f"/v1.41/images/{quote(ref, safe='')}/json")
            resp = conn.getresponse()
            body = resp.read()
            if resp.status not in (200, 404):
                return None
            out[ref] = json.loads(body) if resp.status == 200 else None
    except (OSError, ValueError):
        return None
    finally:
        conn.close()
    return out
