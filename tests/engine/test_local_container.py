"""Containers created, watched and removed over the local socket (the launcher's path without docker-py)."""

from __future__ import annotations

import os

import pytest

from lazyllm_images.errors import LaunchError
from lazyllm_images.launch.docker import container_kwargs
from lazyllm_images.launch.spec import LaunchSpec, MountSpec, PortSpec
from lazyllm_images.backends import docker as launcher, docker_api as local_container
from recipe_helpers import unique_mark


def _spec(image: str, **kw) -> LaunchSpec:
    labels = {"org.lazyllm.test-run": os.environ["LAZYLLM_TEST_RUN"]}
    return LaunchSpec(name=f"lazyllm-test-local-{unique_mark()}", image=image, command=("sleep", "60"),
                      labels=labels, **kw)


def test_the_container_runs_as_docker_py_would_have_made_it(offline_base, docker_client):
    spec = _spec(offline_base, env={"A": "1"}, read_only_rootfs=True,
                 ports=(PortSpec("api", 8000, launcher.free_port("127.0.0.1")),),
                 mounts=(MountSpec("tmpfs", "/scratch", options="size=1m"),))
    container = launcher.start(spec)
    try:
        assert isinstance(container, local_container.LocalContainer)
        container.reload()
        assert container.attrs["State"]["Running"]
        seen = docker_client.containers.get(container.id).attrs
        assert "A=1" in seen["Config"]["Env"] and seen["Config"]["User"] == spec.user
        assert seen["HostConfig"]["ReadonlyRootfs"] and seen["HostConfig"]["CapDrop"] == ["ALL"]
        assert seen["HostConfig"]["Init"] and seen["HostConfig"]["Tmpfs"] == {"/scratch": "size=1m"}
        port = spec.ports[0]
        assert seen["HostConfig"]["PortBindings"] == {"8000/tcp": [{"HostIp": "127.0.0.1",
                                                                    "HostPort": str(port.host_port)}]}
        assert b"" == container.logs(tail=5)
    finally:
        container.remove(force=True)
    assert not docker_client.containers.list(all=True, filters={"name": spec.name})


def test_a_missing_image_and_a_taken_name_are_clear_errors(offline_base):
    with pytest.raises(LaunchError, match="is not here"):
        local_container.create_and_start(container_kwargs(_spec(f"lazyllm/none:{unique_mark()}")))
    spec = _spec(offline_base)
    first = local_container.create_and_start(container_kwargs(spec))
    try:
        with pytest.raises(LaunchError, match="refused container"):
            local_container.create_and_start(container_kwargs(spec))
    finally:
        first.remove(force=True)


def test_a_create_the_engine_does_not_answer_in_time_leaves_no_container(offline_base, docker_client, monkeypatch):
    """A slow engine: the create may still happen after the client gave up. It is an EngineTimeout (never a second
    create through docker-py, which met the name with 409 and left an orphan) and the name is removed."""
    from lazyllm_images import engine
    spec = _spec(offline_base)
    monkeypatch.setenv("LAZYLLM_ENGINE_TIMEOUT", "0.001")
    with pytest.raises(engine.EngineTimeout, match="did not answer POST /containers/create"):
        local_container.create_and_start(container_kwargs(spec))
    monkeypatch.delenv("LAZYLLM_ENGINE_TIMEOUT")
    assert not docker_client.containers.list(all=True, filters={"name": spec.name})
