"""What the services describe before any engine is asked: units, their GPUs, files and secrets (simulated hosts,
dry runs: no engine is reachable in these tests)."""

from __future__ import annotations

import json

import pytest

from lazyllm_images import host as host_mod
from lazyllm_images.host import Gpu, HostFacts, NvidiaFacts
from lazyllm_images.paths import service_files_dir
from lazyllm_images.requests import BuildOptions, DeployModelRequest, LaunchOptions, RunRequest
from lazyllm_images.services import deploy, run

TWO_GPUS = HostFacts(nvidia=NvidiaFacts(True, "", "550.54.14", "12.4",
                                        tuple(Gpu(i, f"GPU-{i}aaaaaaa-0000", "NVIDIA A100", 40960, "8.0")
                                              for i in range(2))))
ASCEND = HostFacts(nvidia=NvidiaFacts(False, "no NVIDIA driver"), ascend=True)


@pytest.fixture(autouse=True)
def no_engine(monkeypatch, tmp_path):
    """A dry run must not need the engine: point DOCKER_HOST at nothing."""
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    monkeypatch.setenv("LAZYLLM_HOME", str(tmp_path / "home"))
    from lazyllm_images.services import start
    start.engine_info.cache_clear()


def on_host(monkeypatch, facts: HostFacts) -> None:
    monkeypatch.setattr(host_mod, "host_facts", lambda: facts)


def rag_request(docs, llm_dir, gpus: str | None, embed_gpus: str | None = None) -> RunRequest:
    return RunRequest(target="rag", documents=str(docs), model=str(llm_dir), framework="vllm",
                      embed_gpus=embed_gpus, launch=LaunchOptions(gpus=gpus, dry_run=True),
                      build=BuildOptions(cuda="12.4"))


def test_run_rag_on_a_two_gpu_host_gives_the_gpus_to_the_llm_alone(monkeypatch, docs, llm_dir):
    on_host(monkeypatch, TWO_GPUS)
    service = run.rag(rag_request(docs, llm_dir, "all"))
    gpus = {u.name.removeprefix("lazyllm-rag-"): u.spec.gpus for u in service.units}
    assert set(gpus) == {"embed", "model", "rag", "chat"}
    assert gpus["model"].kind == "all"
    assert not any(g.wants_gpu for k, g in gpus.items() if k != "model")


def test_embed_gpus_give_the_encoders_their_own_devices(monkeypatch, docs, llm_dir):
    on_host(monkeypatch, TWO_GPUS)
    service = run.rag(rag_request(docs, llm_dir, "device=0", embed_gpus="device=1"))
    gpus = {u.name.removeprefix("lazyllm-rag-"): u.spec.gpus for u in service.units}
    assert gpus["model"].devices == ("0",) and gpus["embed"].devices == ("1",)
    assert not gpus["rag"].wants_gpu and not gpus["chat"].wants_gpu


def test_the_gpu_mode_reaches_every_unit_of_a_service(monkeypatch, docs, llm_dir):
    """An engine with CDI on and no NVIDIA runtime, a CDI spec on the host: every GPU unit gets CDI names."""
    from lazyllm_images.backends import docker as backend
    from lazyllm_images.services import start
    on_host(monkeypatch, TWO_GPUS)
    monkeypatch.setattr(host_mod, "cdi_nvidia_specs", lambda: ["/etc/cdi/nvidia.yaml"])
    monkeypatch.setattr(start, "engine_info", lambda: {"Runtimes": {"runc": {}}, "CDISpecDirs": ["/etc/cdi"]})
    monkeypatch.setattr(backend, "unique_service_name", lambda name, explicit: name)
    request = rag_request(docs, llm_dir, "all", embed_gpus="all")
    service = run.rag(RunRequest(**{**request.__dict__, "launch": LaunchOptions(gpus="all")}))
    assert service.gpu_mode == "cdi"
    from lazyllm_images.launch.docker import container_kwargs
    for unit in service.units:
        kwargs = container_kwargs(unit.spec, service.gpu_mode)
        assert ("nvidia.com/gpu=all" in json.dumps(kwargs)) == unit.spec.gpus.wants_gpu


def test_every_model_server_of_run_gets_the_same_unit_as_deploy(monkeypatch, docs, llm_dir):
    """One description of the model unit: its secrets (here a hub token) reach run's model servers too."""
    on_host(monkeypatch, HostFacts())
    monkeypatch.setenv("HF_TOKEN", "hf_secret_value")
    monkeypatch.setenv("HF_ENDPOINT", "http://10.9.9.9:9")
    request = RunRequest(target="rag", documents=str(docs), embed_model="acme/minilm",
                         launch=LaunchOptions(dry_run=True))
    embed = run.rag(request).units[0]
    assert embed.secrets == {"env": {"HF_TOKEN": "hf_secret_value"}}
    assert embed.spec.env["HF_ENDPOINT"] == "http://10.9.9.9:9"
    assert "hf_secret_value" not in json.dumps(embed.spec.env) + json.dumps(embed.spec.labels)
    assert embed.explain is not None


def test_mindie_gets_a_files_folder_for_its_generated_config(monkeypatch, tmp_path, llm_dir):
    on_host(monkeypatch, ASCEND)
    monkeypatch.setattr(host_mod, "ascend_devices", lambda: ["/dev/davinci0", "/dev/davinci1"])
    request = DeployModelRequest(model=str(llm_dir), framework="mindie",
                                 launch=LaunchOptions(dry_run=True, gpus="all", name="svc"))
    service, m = deploy.describe(request)
    unit = service.units[0]
    assert unit.spec.gpus.devices == ("0", "1")
    assert unit.files, "mindie writes its config.json for the server"
    sources = {mount.source for mount in unit.spec.mounts if mount.purpose == "config"}
    assert sources == {str(service_files_dir("svc") / name) for name, _ in unit.files}
    assert not service_files_dir("svc").exists(), "a dry run writes nothing"


def test_host_facts_are_read_once_per_command(monkeypatch, docs, llm_dir):
    """A RAG service plans three servers; NVML is asked once."""
    calls = []
    host_mod.host_facts.cache_clear()
    monkeypatch.setattr(host_mod, "nvidia_facts", lambda: calls.append(1) or NvidiaFacts(False, "no NVIDIA driver"))
    try:
        run.rag(RunRequest(target="rag", documents=str(docs), model=str(llm_dir), framework="vllm-cpu",
                           rerank_model="all-MiniLM-L6-v2", launch=LaunchOptions(dry_run=True)))
    except Exception as exc:  # the packaged model is not a reranker: planning got far enough
        assert "is not a reranker" in str(exc)
    finally:
        host_mod.host_facts.cache_clear()
    assert calls == [1]


def test_the_urls_each_unit_serves(monkeypatch, docs, llm_dir):
    on_host(monkeypatch, HostFacts())
    service = run.rag(RunRequest(target="rag", documents=str(docs), model=str(llm_dir), framework="vllm-cpu",
                                 launch=LaunchOptions(dry_run=True)))
    urls = {key: path for u in service.units for key, path in u.urls}
    assert urls == {"embed": "/v1", "model": "/v1", "rag": "/v1", "chat": "/"}
