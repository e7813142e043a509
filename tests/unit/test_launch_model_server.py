"""model_server_plan: framework + model + GPUs -> the model server's LaunchSpec and what goes with it."""

from __future__ import annotations

import pytest

from lazyllm_images.errors import UsageError
from lazyllm_images.launch.model_server import MODEL_DIR, model_server_plan, served_name_for
from lazyllm_images.launch.spec import GpuRequest


def plan(framework="vllm", gpus="all", **kw):
    kw.setdefault("model_source", "/srv/models/Qwen2-7B/")
    return model_server_plan(framework, name="svc", image="img:1", gpus=GpuRequest.parse(gpus), **kw)


def test_model_mount_and_hardening():
    p = plan()
    model = next(m for m in p.spec.mounts if m.purpose == "model")
    assert (model.kind, model.source, model.target, model.read_only) == ("bind", "/srv/models/Qwen2-7B/", MODEL_DIR,
                                                                         True)
    s = p.spec
    assert s.user == "10001:10001" and s.cap_drop == ("ALL",) and s.init and "no-new-privileges" in s.security_opt
    assert s.env["HOME"] == "/tmp" and any(m.kind == "tmpfs" and m.target == "/tmp" for m in s.mounts)
    assert s.shm_size == "8g" and [u.name for u in s.ulimits] == ["memlock", "stack"]
    assert s.healthcheck.path == "/health" and s.port("api").container_port == 8000
    assert s.labels["org.lazyllm.framework"] == "vllm" and s.labels["org.lazyllm.model"] == "Qwen2-7B"
    assert p.served_name == "Qwen2-7B" and p.api_kind == "openai-chat" and p.api_base == "/v1"


def test_volume_model_with_subdir():
    p = plan(model_mount="volume", model_subdir="hub/qwen", model_source="lazyllm-models")
    assert p.served_name == "qwen" and "/model/hub/qwen" in p.spec.command
    assert served_name_for("/a/b/") == "b" and served_name_for("/") == "model"


def test_cpu_frameworks():
    p = plan("vllm-cpu", "none")
    assert p.spec.cap_add == ("SYS_NICE",) and p.spec.shm_size == "4g" and not p.spec.ulimits
    assert p.spec.env["VLLM_CPU_KVCACHE_SPACE"] == "1" and p.spec.gpus.kind == "none"
    e = plan("embedding", "none")
    assert e.spec.read_only_rootfs and e.spec.healthcheck.path == "/healthz" and e.api_kind == "openai-embeddings"


def test_overrides():
    p = plan(ipc_host=True, host_ip="0.0.0.0", host_port=9000, env={"EXTRA": "1"}, labels={"x": "y"},
             network="lazyllm-net", service="grp")
    s = p.spec
    assert s.ipc_host and s.shm_size is None and s.port("api").host_port == 9000 and s.env["EXTRA"] == "1"
    assert s.labels["x"] == "y" and s.labels["org.lazyllm.service"] == "grp" and s.network == "lazyllm-net"
    assert plan(shm_size="32g").spec.shm_size == "32g"


def test_chat_page_default_params():
    p = plan(options=[("top_p", "0.9"), ("max_tokens", "512")])
    assert p.default_params() == ["top_p=0.9", "max_tokens=512"]


def test_secrets_stay_out_of_the_spec():
    p = plan(options=[("api_key", "s3cret")])
    assert p.secret_env == {"VLLM_API_KEY": "s3cret"} and p.spec.stdin_open
    assert "s3cret" not in repr(p.spec)


def test_capabilities_from_the_framework_and_request():
    p = model_server_plan("vllm", name="svc", image="i", model_source="/m",
                          gpus=GpuRequest.parse("all").with_capabilities("video"))
    assert p.spec.gpus.capabilities == ("compute", "utility", "video")


def test_mindie_files_and_root():
    p = model_server_plan("mindie", name="svc", image="i", model_source="/m", files_dir="/run/lazyllm/svc",
                          gpus=GpuRequest("devices", devices=("0",), vendor="ascend"))
    (host_path, text), = p.files
    assert host_path == "/run/lazyllm/svc/config.json" and '"worldSize": 1' in text
    mount = next(m for m in p.spec.mounts if m.purpose == "config")
    assert mount.source == host_path and mount.read_only and mount.target.endswith("conf/config.json")
    assert p.spec.user is None
    with pytest.raises(ValueError, match="files_dir"):
        model_server_plan("mindie", name="svc", image="i", model_source="/m",
                          gpus=GpuRequest("devices", devices=("0",), vendor="ascend"))


def test_mindie_files_dir_is_a_folder(tmp_path, monkeypatch):
    """A Path, a trailing slash or a relative folder: the files land in it, mounted from an absolute path."""
    ascend = GpuRequest("devices", devices=("0",), vendor="ascend")
    for folder in (tmp_path / "svc", f"{tmp_path}/svc/"):
        p = model_server_plan("mindie", name="svc", image="i", model_source="/m", files_dir=folder, gpus=ascend)
        assert p.files[0][0] == f"{tmp_path}/svc/config.json"
    monkeypatch.chdir(tmp_path)
    p = model_server_plan("mindie", name="svc", image="i", model_source="/m", files_dir="files/svc", gpus=ascend)
    mount = next(m for m in p.spec.mounts if m.purpose == "config")
    assert mount.source == p.files[0][0] == f"{tmp_path}/files/svc/config.json"


def test_unresolved_gpus_and_bad_options():
    with pytest.raises(ValueError, match="resolve"):
        plan(gpus="")
    with pytest.raises(UsageError):
        plan(options=[("nonsense", "1")])
