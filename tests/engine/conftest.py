"""Engine tests need a real Docker engine ('make test' starts one) and the offline base."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def docker_client():
    import docker
    try:
        client = docker.from_env()
        client.ping()
    except Exception as exc:  # fail loudly: CI must never skip the engine tests silently
        pytest.fail(f"no Docker engine answers ({exc}); run 'make engine' first")
    return client


@pytest.fixture(scope="session")
def offline_base(docker_client):
    from lazyllm_images.bootstrap import bootstrap_base
    ref, _ = bootstrap_base(echo=lambda s: None)
    return ref
