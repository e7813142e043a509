"""The create body the launcher sends itself equals the one docker-py would send, for every golden launch case."""

from __future__ import annotations

from dataclasses import replace

import pytest

from lazyllm_images.launch import docker as docker_render
from lazyllm_images.launch.engine_api import create_body, parse_bytes
from lazyllm_images.launch.spec import MountSpec, Ulimit
from test_launch_golden import CASES, plan_for


def docker_py_body(kwargs: dict) -> tuple[str, dict]:
    import docker
    from docker.models.containers import _create_container_args
    args = _create_container_args({**{k: v for k, v in kwargs.items() if k != "detach"}, "version": "1.41"})
    name = args.pop("name")
    config = docker.APIClient(version="1.41").create_container_config(**args)
    body = {k: v for k, v in config.items() if v is not None}
    body.pop("NetworkingConfig", None)    # docker-py's {network: null}: not the API's shape, ignored by the engine
    return name, body


def _specs():
    for relpath, _group, args, mode in CASES:
        try:
            spec = plan_for(*args).spec
        except Exception:      # the cases whose golden file is an error
            continue
        yield relpath, spec, mode
    plan = plan_for("vllm", "0,1", CASES[0][2][2])
    yield "everything-else", replace(plan.spec, network="svc-net", stdin_open=True, working_dir="/w",
                                     entrypoint=("python3", "-m"), restart="on-failure", devices=("/dev/kfd",),
                                     group_add=("video",), ipc_host=True, shm_size=None, cap_add=("SYS_NICE",),
                                     ulimits=(Ulimit("nofile", 1024, 4096),),
                                     mounts=plan.spec.mounts + (MountSpec("volume", "/cache", "vol", read_only=False,
                                                                          purpose="cache"),)), "runtime"


SPECS = list(_specs())


@pytest.mark.parametrize("relpath,spec,mode", SPECS, ids=[s[0] for s in SPECS])
def test_body_equals_docker_pys(relpath, spec, mode):
    kwargs = docker_render.container_kwargs(spec, gpu_mode=mode)
    assert create_body(kwargs) == docker_py_body(kwargs)


@pytest.mark.parametrize("text,expected", [("8g", 8 << 30), ("512m", 512 << 20), ("1gb", 1 << 30), ("100", 100),
                                           ("1.5g", int(1.5 * (1 << 30)))])
def test_sizes_read_as_docker_reads_them(text, expected):
    from docker.utils import parse_bytes as theirs
    assert parse_bytes(text) == expected == theirs(text)


def test_a_key_it_cannot_render_is_an_error():
    with pytest.raises(ValueError, match="privileged"):
        create_body({"image": "x", "name": "y", "privileged": True})
