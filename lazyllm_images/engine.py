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
    """Which image references exist locally; None when no engine answers.

    The common case (a local unix socket) uses one keep-alive HTTP connection and no docker-py import: this is
    on the path of every no-op ``install`` and every ``--dry-run``.
    """
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if host.startswith("unix://"):
        return _images_exist_unix(host[len("unix://"):], refs)
    try:
        client()
    except EngineError:
        return None
    return {ref: image_exists(ref) for ref in refs}


def _images_exist_unix(path: str, refs: list[str]) -> dict[str, bool] | None:
    import http.client
    import socket
    from urllib.parse import quote

    class UnixConnection(http.client.HTTPConnection):
        def connect(self):
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(10)
            self.sock.connect(path)

    conn = UnixConnection("localhost")
    out: dict[str, bool] = {}
    try:
        for ref in refs:
            conn.request("GET", f"/v1.41/images/{quote(ref, safe='')}/json")
            resp = conn.getresponse()
            resp.read()
            if resp.status not in (200, 404):
                return None
            out[ref] = resp.status == 200
    except OSError:
        return None
    finally:
        conn.close()
    return out
