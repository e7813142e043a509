"""Compose files from LaunchSpecs; ``docker compose config`` (v2) or ``docker-compose config`` (Debian's 1.29),
whichever the engine in use has (tests/compose_cli.py), checks what it can."""

from __future__ import annotations

import subprocess

import pytest
import yaml

from compose_cli import compose_argv, needs_compose
from lazyllm_images.launch import compose
from lazyllm_images.launch.spec import (GpuRequest, HealthCheck, LaunchSpec, MountSpec, PortSpec, Ulimit,
                                        scratch_mount)

def model(**kw) -> LaunchSpec:
    base = dict(name="m", image="img:1", command=("serve", "--price", "$5"), env={"A": "$HOME"},
                ports=(PortSpec("api", 8000),),
                mounts=(MountSpec("volume", "/model", "lazyllm-models", read_only=True, purpose="model"),
                        MountSpec("volume", "/cache", "lazyllm-cache"), scratch_mount()),
                gpus=GpuRequest.parse("2"), shm_size="8g", ulimits=(Ulimit("memlock", -1, -1),),
                healthcheck=HealthCheck("/health", 8000))
    base.update(kw)
    return LaunchSpec(**base)


def chat(**kw) -> LaunchSpec:
    return LaunchSpec(**{"name": "c", "image": "img:2", "role": "chat", "ports": (PortSpec("chat", 8080, 20500),),
                         "depends_on": ("m",), **kw})


def config_ok(tmp_path, text: str) -> str:
    path = tmp_path / "compose.yaml"
    path.write_text(text)
    done = subprocess.run([*compose_argv(), "-f", str(path), "config"], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "is not set" not in done.stderr, done.stderr       # nothing was taken for a variable
    return done.stdout


def test_services_volumes_and_order():
    data = compose.compose_dict([model(), chat()], volume_labels={"org.lazyllm.managed": "true"})
    assert list(data["services"]) == ["m", "c"]
    assert data["volumes"] == {v: {"name": v, "labels": {"org.lazyllm.managed": "true"}}
                               for v in ("lazyllm-cache", "lazyllm-models")}
    assert data["services"]["c"]["depends_on"] == {"m": {"condition": "service_healthy"}}
    assert data["services"]["m"]["volumes"][0] == {"type": "volume", "source": "lazyllm-models", "target": "/model",
                                                   "read_only": True}
    assert data["services"]["c"]["ports"] == ["127.0.0.1:20500:8080"]


def test_dollars_are_escaped():
    svc = compose.compose_dict([model()])["services"]["m"]
    assert svc["command"][-1] == "$$5" and svc["environment"]["A"] == "$$HOME"


def test_gpu_blocks():
    runtime = compose.compose_dict([model()])["services"]["m"]
    assert runtime["deploy"]["resources"]["reservations"]["devices"] == [
        {"driver": "nvidia", "count": 2, "capabilities": ["gpu"]}]
    assert "devices" not in runtime
    cdi = compose.compose_dict([model()], gpu_mode="cdi")["services"]["m"]
    assert cdi["devices"] == ["nvidia.com/gpu=0", "nvidia.com/gpu=1"] and "deploy" not in cdi
    amd = compose.compose_dict([model(gpus=GpuRequest.parse("all", "amd"))])["services"]["m"]
    assert amd["devices"] == ["/dev/kfd:/dev/kfd", "/dev/dri:/dev/dri"] and amd["group_add"] == ["video", "render"]
    none = compose.compose_dict([model(gpus=GpuRequest.none())])["services"]["m"]
    assert "deploy" not in none and none["environment"]["NVIDIA_VISIBLE_DEVICES"] == "void"


def test_mig_and_optional_mounts():
    mig = compose.compose_dict([model(gpus=GpuRequest.parse("0:1,MIG-aaaa"))])["services"]["m"]
    assert mig["deploy"]["resources"]["reservations"]["devices"] == [
        {"driver": "nvidia", "device_ids": ["0:1", "MIG-aaaa"], "capabilities": ["gpu"]}]
    cdi = compose.compose_dict([model(gpus=GpuRequest.parse("0:1"))], gpu_mode="cdi")["services"]["m"]
    assert cdi["devices"] == ["nvidia.com/gpu=0:1"]
    ascend = model(gpus=GpuRequest("devices", devices=("0",), vendor="ascend"))
    svc = compose.compose_dict([ascend], gids={"/dev/davinci0": (1001,)},
                               path_exists=lambda path: path != "/usr/local/dcmi")["services"]["m"]
    targets = [v["target"] for v in svc["volumes"]]
    assert "/usr/local/Ascend/driver" in targets and "/usr/local/dcmi" not in targets
    assert svc["group_add"] == ["1001"]


def test_network_modes():
    assert compose.compose_dict([model(network="none")])["services"]["m"]["network_mode"] == "none"
    assert "network_mode" not in compose.compose_dict([model(network="lazyllm-x")])["services"]["m"]


def test_bad_input():
    with pytest.raises(ValueError, match="not in this compose file"):
        compose.compose_dict([chat()])
    with pytest.raises(ValueError, match="share a name"):
        compose.compose_dict([model(), model()])


@needs_compose
def test_docker_compose_reads_it_back(tmp_path):
    # container names of two characters at least: compose v2 checks Docker's name pattern, v1 does not
    text = compose.compose_yaml([model(name="m1"), chat(name="c1", depends_on=("m1",), stdin_open=True,
                                                         ipc_host=True, restart="unless-stopped")],
                                volume_labels={"org.lazyllm.managed": "true"})
    out = yaml.safe_load(config_ok(tmp_path, text))
    svc = out["services"]["m1"]
    # config prints the escaped form back; the container gets "$5" and "$HOME"
    assert svc["command"] == ["serve", "--price", "$$5"] and svc["environment"]["A"] == "$$HOME"
    assert svc["shm_size"] in ("8g", "8gb", 8589934592, "8589934592")
    assert svc["ulimits"]["memlock"] == {"soft": -1, "hard": -1}
    assert out["services"]["c1"]["depends_on"]["m1"]["condition"] == "service_healthy"
    assert out["volumes"]["lazyllm-models"]["name"] == "lazyllm-models"


@needs_compose
def test_docker_compose_reads_cdi_and_amd(tmp_path):
    text = compose.compose_yaml([model(gpus=GpuRequest.parse("all"), name="n1"),
                                 model(gpus=GpuRequest.parse("1", "amd"), name="n2")], gpu_mode="cdi")
    config_ok(tmp_path, text)
