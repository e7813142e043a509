"""The compose client that checks generated compose files: the best one for the engine in use.

``docker compose`` (v2, a CLI plugin: found in ``$DOCKER_CONFIG/cli-plugins``, which ``make test`` sets for the
current engine) when ``docker compose version`` works, else Debian's ``docker-compose`` (v1.29), else none.
"""

from __future__ import annotations

import shutil

import pytest


def _found() -> tuple[str, ...] | None:
    from lazyllm_images.backends.compose import found_client      # the product's own choice of client
    found = found_client()
    return found[0] if found is not None else None


def compose_argv() -> list[str] | None:
    """The argv prefix (``["docker", "compose"]`` or ``["docker-compose"]``), or None when neither works."""
    found = _found()
    return list(found) if found is not None else None


def missing_reason() -> str:
    plugin = ("the docker CLI has no compose plugin ('docker compose version' fails)" if shutil.which("docker")
              else "no docker CLI on PATH")
    return (f"no compose client: {plugin}, and docker-compose (v1) is not installed; "
            "install docker-compose or the compose v2 plugin (make test-deps installs docker-compose)")


needs_compose = pytest.mark.skipif(compose_argv() is None, reason=missing_reason())
