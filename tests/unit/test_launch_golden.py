"""Golden files: every framework x every GPU request shape, rendered to ``docker run``, docker-py kwargs and a
compose service; CDI mode, AMD and Ascend; Kubernetes manifests for a few cases.

``LAZYLLM_UPDATE_GOLDEN=1`` rewrites the files under tests/golden/launch/; otherwise the comparison is exact.
Every rendered compose service also goes through ``docker compose config -q`` or ``docker-compose config -q``
(tests/compose_cli.py; grouped into a few files: the command takes over a second each).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml

from compose_cli import compose_argv, needs_compose
from lazyllm_images.errors import LazyllmError
from lazyllm_images.frameworks import NAMES, get
from lazyllm_images.host import Gpu, HostFacts, NvidiaFacts
from lazyllm_images.launch import compose, docker, gpu, k8s
from lazyllm_images.launch.model_server import model_server_plan
from lazyllm_images.launch.spec import GpuRequest, LaunchSpec

GOLDEN = Path(__file__).resolve().parent.parent / "golden" / "launch"
UPDATE = os.environ.get("LAZYLLM_UPDATE_GOLDEN") == "1"
UUIDS = ("GPU-11111111-2222-3333-4444-555555555555", "GPU-66666666-7777-8888-9999-000000000000")
SHAPES = {"none": "none", "all": "all", "count2": "2", "devices01": "0,1", "uuid": ",".join(UUIDS)}
NVIDIA_HOST = HostFacts(nvidia=NvidiaFacts(True, "", "550.54", "12.4", tuple(
    Gpu(i, u, "NVIDIA H100", 81559, "9.0") for i, u in enumerate(UUIDS))))
AMD_HOST = HostFacts(nvidia=NvidiaFacts(False, "no NVIDIA driver"), amd=True)
ASCEND_HOST = HostFacts(arch="aarch64", nvidia=NvidiaFacts(False, "no NVIDIA driver"), ascend=True)
LLM_OPTIONS = (("temperature", "0.7"), ("top_p", "0.9"), ("max_tokens", "2048"))
# the simulated hosts' device groups (host.device_gids) and files: an Ascend host without /usr/local/sbin/npu-smi
GIDS = {"/dev/davinci0": (1000,), "/dev/davinci1": (1000,), "/dev/davinci_manager": (1000,),
        "/dev/devmm_svm": (1000,), "/dev/hisi_hdc": (1000,), "/dev/kfd": (109,), "/dev/dri": (44, 109)}


def path_exists(path: str) -> bool:
    return path != "/usr/local/sbin/npu-smi"


def check_golden(relpath: str, text: str) -> None:
    path = GOLDEN / relpath
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return
    assert path.exists(), f"no golden file {path}: run the tests with LAZYLLM_UPDATE_GOLDEN=1 and review the diff"
    assert text == path.read_text(), f"{relpath} differs from its golden file (LAZYLLM_UPDATE_GOLDEN=1 rewrites it)"


def argv_text(argv: list[str]) -> str:
    """One flag (with its value) per line, shell-quoted: exact, and readable in a diff."""
    lines: list[str] = [shlex.join(argv[:2])]
    for arg in argv[2:]:
        if arg.startswith("-") or not lines[-1].lstrip().startswith("-") or lines[-1].count(" ") > 2:
            lines.append("  " + shlex.quote(arg))
        else:
            lines[-1] += " " + shlex.quote(arg)
    return " \\\n".join(lines) + "\n"


def plan_for(framework: str, gpus_text: str, host: HostFacts, vendor: str = "nvidia"):
    fw = get(framework)
    llm = fw.model_kinds == ("llm",)
    request = gpu.resolve(GpuRequest.parse(gpus_text, vendor), fw.needs.gpu, host, framework=fw.name,
                          vendors=fw.needs.vendors, ascend_indexes=(0, 1) if host.ascend else (),
                          min_compute_capability=fw.needs.min_compute_capability)
    return model_server_plan(
        fw, name=f"lazyllm-{framework}", image=f"lazyllm/{framework}:test",
        model_source="/srv/models/" + ("Qwen2-7B-Instruct" if llm else "bge-small-en-v1.5"), gpus=request,
        options=LLM_OPTIONS if fw.generation_mode != "reject" else (("batch_size", "32"),) * (fw.name != "mindie"),
        gpu_count=len(host.nvidia.gpus) or None, files_dir=f"/var/lib/lazyllm/files/lazyllm-{framework}",
        service=f"lazyllm-{framework}")


def render_case(plan, mode: str = "runtime") -> str:
    spec = plan.spec
    host = dict(gids=GIDS, path_exists=path_exists)
    svc = compose.compose_dict([spec], gpu_mode=mode, **host)
    out = ["# docker run\n", argv_text(docker.run_argv(spec, gpu_mode=mode, **host)),
           "# docker-py containers.create(**kwargs)\n",
           json.dumps(docker.container_kwargs(spec, gpu_mode=mode, **host), indent=2, sort_keys=True) + "\n",
           "# compose\n", yaml.safe_dump(svc, sort_keys=False, width=1000),
           "# chat page request defaults\n",
           json.dumps({"generation": plan.generation, "on_server": list(plan.generation_on_server),
                       "api": [plan.api_kind, plan.api_base, plan.served_name]}, sort_keys=True) + "\n"]
    for host_path, text in plan.files:
        out += [f"# file {host_path}\n", text]
    return "".join(out)


def cases() -> list[tuple[str, str, object, str]]:
    """(golden path, compose group, plan maker, GPU mode) for every docker/compose case."""
    out = [(f"nvidia/{fw}--{shape}.txt", "nvidia", (fw, SHAPES[shape], NVIDIA_HOST, "nvidia"), "runtime")
           for fw in NAMES for shape in SHAPES]
    out += [(f"cdi/vllm--{shape}.txt", "cdi", ("vllm", SHAPES[shape], NVIDIA_HOST, "nvidia"), "cdi")
            for shape in ("all", "count2", "devices01", "uuid")]
    out += [(f"amd/{fw}--{shape}.txt", "amd", (fw, SHAPES[shape], AMD_HOST, "amd"), "runtime")
            for fw, shape in (("vllm", "all"), ("vllm", "devices01"), ("embedding", "count2"), ("infinity", "none"))]
    out += [(f"ascend/{fw}--{shape}.txt", "ascend", (fw, SHAPES[shape], ASCEND_HOST, "ascend"), "runtime")
            for fw, shape in (("mindie", "all"), ("mindie", "count2"), ("lmdeploy", "devices01"), ("vllm", "all"))]
    return out


CASES = cases()


@pytest.mark.parametrize("relpath,group,args,mode", CASES, ids=[c[0] for c in CASES])
def test_golden_case(relpath, group, args, mode):
    try:
        plan = plan_for(*args)
    except LazyllmError as exc:
        check_golden(relpath, f"error: {exc.message}\nhint: {exc.hint}\n")
        return
    check_golden(relpath, render_case(plan, mode))


def test_every_framework_meets_every_gpu_shape():
    covered = {(c[2][0], c[2][1]) for c in CASES if c[1] == "nvidia"}
    assert covered == {(fw, text) for fw in NAMES for text in SHAPES.values()}


def production_pair(monkeypatch, gpus: str) -> list[LaunchSpec]:
    """The model server and chat page exactly as ``lazyllm deploy ... --chat=true`` describes them (the same
    code path users run), on the simulated NVIDIA host, with no host CA, proxy or hub settings."""
    from lazyllm_images import host as host_mod
    from lazyllm_images.requests import BuildOptions, DeployModelRequest, LaunchOptions
    from lazyllm_images.services import deploy
    monkeypatch.setattr(host_mod, "host_facts", lambda: NVIDIA_HOST)
    monkeypatch.setattr(host_mod, "ca_bundle", lambda env=None: None)
    monkeypatch.setattr(host_mod, "proxy_env", lambda env=None: {})
    for key in ("HF_ENDPOINT", "HF_TOKEN", "HF_HUB_OFFLINE", "LAZYLLM_MODEL_SOURCE", "LAZYLLM_HUB_CACHE_VOLUME",
                "LAZYLLM_LABELS", "LAZYLLM_HOME"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", "/home/user/.cache")
    request = DeployModelRequest(model="Qwen/Qwen2-7B-Instruct", framework="vllm", chat=True,
                                 options=LLM_OPTIONS, build=BuildOptions(cuda="12.4"),
                                 launch=LaunchOptions(gpus=gpus, dry_run=True, name="lazyllm-vllm"))
    service, _ = deploy.describe(request)
    return service.specs


def stable(text: str) -> str:
    """Content tags (they move with every recipe or template change) as TAG: the golden checks the structure."""
    return re.sub(r"(lazyllm/[a-z0-9.-]+):[0-9a-f]{16}\b", r"\1:TAG", text)


def test_model_and_chat_compose(monkeypatch):
    text = compose.compose_yaml(production_pair(monkeypatch, "all"), volume_labels={"org.lazyllm.managed": "true"})
    check_golden("compose/vllm-with-chat.yaml", stable(text))


@pytest.mark.parametrize("case", ["vllm-count2", "embedding-none", "vllm-with-chat", "mindie-ascend"])
def test_k8s(case, monkeypatch):
    """manifests.yaml (and the notes, as comments) of ``--target k8s --registry R --namespace lazyllm``."""
    from lazyllm_images.launch.unit import Service, Unit
    if case == "vllm-with-chat":
        units = tuple(Unit(s) for s in production_pair(monkeypatch, "1"))
        service = Service("lazyllm-vllm", units)
    else:
        fw, gpus, host, vendor = {"vllm-count2": ("vllm", "2", NVIDIA_HOST, "nvidia"),
                                  "embedding-none": ("embedding", "none", NVIDIA_HOST, "nvidia"),
                                  "mindie-ascend": ("mindie", "1", ASCEND_HOST, "ascend")}[case]
        plan = plan_for(fw, gpus, host, vendor)
        files = tuple((path.rsplit("/", 1)[-1], text) for path, text in plan.files)
        service = Service(plan.spec.name, (Unit(plan.spec, files=files),))
    runtime_class = "nvidia" if case != "mindie-ascend" else None
    rendered = k8s.render(service, "registry.example:5000/team", namespace="lazyllm", runtime_class=runtime_class)
    (text,) = [text for path, text, _ in rendered.files if path == "manifests.yaml"]
    notes = "".join(f"# note: {n}\n" for n in rendered.notes)
    check_golden(f"k8s/{case}.yaml", stable(text) + notes)


@needs_compose
def test_docker_compose_accepts_every_rendered_service(tmp_path, monkeypatch):
    """Every service of every case above, one file per group (the command takes over a second a file)."""
    groups: dict[str, dict] = {}
    for relpath, group, args, mode in CASES:
        try:
            plan = plan_for(*args)
        except LazyllmError:
            continue
        key = relpath.replace("/", "-").replace(".txt", "").replace("--", "-")
        svc = compose.compose_dict([plan.spec], gpu_mode=mode, gids=GIDS, path_exists=path_exists)["services"][
            plan.spec.name]
        groups.setdefault(group, {"services": {}})["services"][key] = {**svc, "container_name": key}
    groups["pair"] = compose.compose_dict(production_pair(monkeypatch, "all"),
                                          volume_labels={"org.lazyllm.managed": "1"})
    assert {"nvidia", "cdi", "amd", "ascend"} <= set(groups)
    for group, data in groups.items():
        path = tmp_path / f"{group}.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        done = subprocess.run([*compose_argv(), "-f", str(path), "config", "-q"], capture_output=True, text=True,
                              cwd=tmp_path, timeout=120)
        assert done.returncode == 0, f"{group}: {done.stderr}"
