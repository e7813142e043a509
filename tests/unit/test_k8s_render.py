"""The Kubernetes target: Services described by the real service code (dry runs on simulated hosts) rendered to
manifests, every object validated offline against the Kubernetes schemas of two minors (kubernetes-validate,
strict) and by ``k8s_check``'s rules; what has no Kubernetes form is refused; each checker rule catches a crafted
bad manifest. Nothing here reaches a cluster: "schema- and semantics-checked, not applied"."""

from __future__ import annotations

import base64
import copy
import json
import os
import shutil
import stat
import subprocess
from dataclasses import replace

import pytest
import yaml

from lazyllm_images import host as host_mod
from lazyllm_images.errors import UsageError
from lazyllm_images.host import Gpu, HostFacts, NvidiaFacts
from lazyllm_images.launch import k8s, k8s_check, k8s_pod, secrets
from lazyllm_images.launch.spec import (ENGINE_PURPOSE, GpuRequest, HealthCheck, LaunchSpec, MountSpec, PortSpec,
                                        scratch_mount)
from lazyllm_images.launch.unit import Service, Unit
from lazyllm_images.requests import BuildOptions, DeployModelRequest, LaunchOptions, RunRequest
from lazyllm_images.services import deploy, run, trust

pytestmark = pytest.mark.unit
kubernetes_validate = pytest.importorskip("kubernetes_validate")

VERSIONS = ("1.29", "1.33")          # both bundled by kubernetes-validate 1.37 (1.25 .. 1.37)
REGISTRY = "registry.example:5000/team"
TWO_GPUS = HostFacts(nvidia=NvidiaFacts(True, "", "550.54.14", "12.4",
                                        tuple(Gpu(i, f"GPU-{i}aaaaaaa-0000", "NVIDIA A100", 40960, "8.0")
                                              for i in range(2))))
ASCEND = HostFacts(arch="aarch64", nvidia=NvidiaFacts(False, "no NVIDIA driver"), ascend=True)


@pytest.fixture(autouse=True)
def no_engine(monkeypatch, tmp_path):
    """Dry runs only: no engine, no host CA or proxy, no hub settings from this machine."""
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    monkeypatch.setenv("LAZYLLM_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    for key in ("HF_ENDPOINT", "HF_TOKEN", "HF_HUB_OFFLINE", "LAZYLLM_MODEL_SOURCE", "LAZYLLM_HUB_CACHE_VOLUME",
                "LAZYLLM_LABELS", "LAZYLLM_IMAGE_PREFIX"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setattr(host_mod, "ca_bundle", lambda env=None: None)
    monkeypatch.setattr(host_mod, "proxy_env", lambda env=None: {})
    monkeypatch.setattr(host_mod, "host_facts", lambda: TWO_GPUS)
    from lazyllm_images.services import start
    start.engine_info.cache_clear()


def hub_pair(token: str | None = "s3cret-token") -> Service:
    """``lazyllm deploy Qwen/Qwen2-7B-Instruct --chat=true --gpus 1 --auth-token T --dry-run``."""
    request = DeployModelRequest(model="Qwen/Qwen2-7B-Instruct", framework="vllm", chat=True,
                                 build=BuildOptions(cuda="12.4"),
                                 launch=LaunchOptions(gpus="1", dry_run=True, name="lazyllm-vllm", auth_token=token))
    return deploy.describe(request)[0]


def folder_model(llm_dir) -> Service:
    """``lazyllm deploy ./my-llm --gpus 2 --dry-run``: a model folder of this host."""
    request = DeployModelRequest(model=str(llm_dir), framework="vllm", build=BuildOptions(cuda="12.4"),
                                 launch=LaunchOptions(gpus="2", dry_run=True, name="svc"))
    return deploy.describe(request)[0]


def rag_service(docs, llm_dir) -> Service:
    """``lazyllm run rag --documents DOCS --model ./my-llm --gpus 1 --auth-token T --dry-run``: four units."""
    return run.rag(RunRequest(target="rag", documents=str(docs), model=str(llm_dir), framework="vllm",
                              launch=LaunchOptions(gpus="1", dry_run=True, auth_token="tok"),
                              build=BuildOptions(cuda="12.4")))


def mindie_service(monkeypatch, llm_dir) -> Service:
    """``lazyllm deploy ./my-llm --framework mindie --gpus 1`` on an Ascend host: a generated config.json."""
    monkeypatch.setattr(host_mod, "host_facts", lambda: ASCEND)
    monkeypatch.setattr(host_mod, "ascend_devices", lambda: ["/dev/davinci0", "/dev/davinci1"])
    request = DeployModelRequest(model=str(llm_dir), framework="mindie",
                                 launch=LaunchOptions(dry_run=True, gpus="1", name="npu"))
    return deploy.describe(request)[0]


def validate(objects: list[dict]) -> None:
    """Every object against the strict schemas of both minors, then the semantic rules."""
    for obj in objects:
        for version in VERSIONS:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(f"{obj['kind']}/{obj['metadata']['name']} fails {version}: {exc.message} at "
                            f"{list(exc.path)}")
    assert k8s_check.check(objects) == []


def files(rendered) -> dict[str, tuple[str, int]]:
    return {path: (text, mode) for path, text, mode in rendered.files}


def docs_of(rendered) -> list[dict]:
    out = []
    for path, (text, _) in files(rendered).items():
        if path != "kustomization.yaml":
            out += [d for d in yaml.safe_load_all(text) if d]
    return out


def by_kind(objects: list[dict], kind: str) -> dict[str, dict]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def pod_of(workload: dict) -> dict:
    return workload["spec"]["template"]["spec"]


# ------------------------------------------------------------------ services from the real service code

def test_a_model_and_its_chat_page(monkeypatch):
    rendered = k8s.render(hub_pair(), REGISTRY, namespace="llm", runtime_class="nvidia")
    out = files(rendered)
    assert set(out) == {"manifests.yaml", "secrets.yaml", "kustomization.yaml"}
    assert out["secrets.yaml"][1] == 0o600 and out["manifests.yaml"][1] == 0o644
    assert yaml.safe_load(out["kustomization.yaml"][0])["resources"] == ["manifests.yaml", "secrets.yaml"]
    assert "s3cret-token" not in out["manifests.yaml"][0]
    objects = docs_of(rendered)
    validate(objects)
    assert all(o["metadata"]["namespace"] == "llm" for o in objects)
    assert k8s_check.policy(objects) == []          # Pod Security 'restricted' has nothing to refuse
    deps, svcs = by_kind(objects, "Deployment"), by_kind(objects, "Service")
    assert set(deps) == set(svcs) == {"lazyllm-vllm-model", "lazyllm-vllm-chat"}

    model = deps["lazyllm-vllm-model"]
    pod = pod_of(model)
    (c,) = pod["containers"]
    assert c["image"].startswith(f"{REGISTRY}/lazyllm/") and c["imagePullPolicy"] == "IfNotPresent"
    assert c["resources"] == {"requests": {"nvidia.com/gpu": 1}, "limits": {"nvidia.com/gpu": 1}}
    assert model["spec"]["strategy"] == {"type": "Recreate"} and pod["runtimeClassName"] == "nvidia"
    assert model["spec"]["progressDeadlineSeconds"] >= 1200
    assert pod["securityContext"] == {"runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001,
                                      "fsGroup": 10001, "fsGroupChangePolicy": "OnRootMismatch",
                                      "seccompProfile": {"type": "RuntimeDefault"}}
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert c[probe]["httpGet"]["port"] == "api" and c[probe]["timeoutSeconds"] >= 5
    startup = c["startupProbe"]
    assert startup["failureThreshold"] * startup["periodSeconds"] >= 600     # the model's load time
    vols = {v["name"]: v for v in pod["volumes"]}
    assert vols["shm"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "8Gi"}
    assert vols["scratch"]["emptyDir"] == {}
    assert "hostPath" not in json.dumps(objects)
    assert by_kind(objects, "PersistentVolumeClaim")["lazyllm-hub-cache"]["spec"]["resources"]["requests"]
    assert model["metadata"]["annotations"][k8s.NOTES].startswith("ulimits")

    chat = deps["lazyllm-vllm-chat"]
    pod = pod_of(chat)
    (c,) = pod["containers"]
    assert "resources" not in c and "runtimeClassName" not in pod and "strategy" not in chat["spec"]
    assert {"name": "NVIDIA_VISIBLE_DEVICES", "value": "void"} in c["env"]
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    key = secrets.key("lazyllm-vllm-chat")
    assert c["args"][:6] == ["python3", "-m", "lazyllm_images.runtime.secret_exec", "--file",
                             f"/run/secrets/{key}", "--"]
    assert "http://lazyllm-vllm-model:8000" in c["args"]
    assert {"name": "secrets", "mountPath": "/run/secrets", "readOnly": True} in c["volumeMounts"]
    secret_volume = next(v for v in pod["volumes"] if v["name"] == "secrets")["secret"]
    assert secret_volume["defaultMode"] == 0o440
    secret = by_kind(objects, "Secret")[secret_volume["secretName"]]
    assert json.loads(secret["stringData"][key]) == {"files": {"/tmp/lazyllm/auth-token": "s3cret-token"}}
    assert svcs["lazyllm-vllm-chat"]["spec"]["ports"] == [{"name": "chat", "port": 8000, "targetPort": "chat",
                                                            "protocol": "TCP"}]
    for name, svc in svcs.items():
        assert svc["spec"]["selector"] == deps[name]["spec"]["selector"]["matchLabels"]
        assert set(svc["spec"]["selector"]) == {"app.kubernetes.io/instance", "app.kubernetes.io/part-of"}
    labels = model["metadata"]["labels"]
    assert {"app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/component",
            "app.kubernetes.io/part-of", "app.kubernetes.io/managed-by"} <= set(labels)
    assert any("port-forward service/lazyllm-vllm-model" in n for n in rendered.notes)
    assert any("not applied to a cluster" in n for n in rendered.notes)


def test_no_secrets_no_secrets_file():
    rendered = k8s.render(hub_pair(token=None), REGISTRY)
    assert set(files(rendered)) == {"manifests.yaml", "kustomization.yaml"}
    assert yaml.safe_load(files(rendered)["kustomization.yaml"][0])["resources"] == ["manifests.yaml"]
    objects = docs_of(rendered)
    validate(objects)
    assert not any("namespace" in o["metadata"] for o in objects)


def test_a_model_folder_becomes_a_claim_the_user_fills(llm_dir):
    rendered = k8s.render(folder_model(llm_dir), REGISTRY)
    objects = docs_of(rendered)
    validate(objects)
    text = files(rendered)["manifests.yaml"][0]
    assert str(llm_dir) not in text and "hostPath" not in text
    claim = by_kind(objects, "PersistentVolumeClaim")["svc-models"]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    pod = pod_of(by_kind(objects, "Deployment")["svc-model"])
    (c,) = pod["containers"]
    mount = next(m for m in c["volumeMounts"] if m["mountPath"] == "/model")
    assert mount["readOnly"] is True and mount["subPath"] == "my-llm"
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    assert volume["persistentVolumeClaim"] == {"claimName": "svc-models", "readOnly": True}
    assert c["resources"]["limits"] == {"nvidia.com/gpu": 2}
    assert any(n.startswith("PVC svc-models") and f"copy {llm_dir} to my-llm/" in n for n in rendered.notes)


def test_run_rag_four_units(docs, llm_dir):
    service = rag_service(docs, llm_dir)
    assert len(service.units) == 4
    rendered = k8s.render(service, REGISTRY, namespace="rag")
    objects = docs_of(rendered)
    validate(objects)
    assert k8s_check.policy(objects) == []
    deps = by_kind(objects, "Deployment")
    assert set(deps) == {u.name for u in service.units} == set(by_kind(objects, "Service"))
    claims = by_kind(objects, "PersistentVolumeClaim")
    assert "lazyllm-rag-documents" in claims and "lazyllm-rag-models" in claims
    rag = next(u for u in service.units if u.spec.role == "rag")
    pod = pod_of(deps[rag.name])
    docs_mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["mountPath"] == "/docs")
    assert docs_mount == {"name": docs_mount["name"], "mountPath": "/docs", "subPath": "docs", "readOnly": True}
    assert set(by_kind(objects, "Secret")) == {secrets.key(rag.name), secrets.key(service.units[-1].name)}
    assert str(docs) not in files(rendered)["manifests.yaml"][0]
    gpu_pods = [n for n, d in deps.items() if "resources" in pod_of(d)["containers"][0]]
    assert gpu_pods == [next(u.name for u in service.units if u.spec.role == "model" and u.spec.gpus.wants_gpu)]


def test_generated_files_become_a_config_map(monkeypatch, llm_dir):
    service = mindie_service(monkeypatch, llm_dir)
    (unit,) = service.units
    assert unit.files
    rendered = k8s.render(service, REGISTRY)
    objects = docs_of(rendered)
    validate(objects)
    (cm,) = by_kind(objects, "ConfigMap").values()
    assert cm["data"] == dict(unit.files)
    pod = pod_of(by_kind(objects, "Deployment")[unit.name])
    (c,) = pod["containers"]
    assert c["resources"]["limits"] == {"huawei.com/Ascend910": 1}
    for name, _ in unit.files:
        mount = next(m for m in c["volumeMounts"] if m.get("subPath") == name)
        assert next(v for v in pod["volumes"] if v["name"] == mount["name"])["configMap"]["name"] == \
            cm["metadata"]["name"]
    host_paths = [v["hostPath"]["path"] for v in pod["volumes"] if "hostPath" in v]
    assert host_paths == ["/usr/local/Ascend/driver"]
    assert any("optional node paths" in n for n in rendered.notes)


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="no kubectl (its kustomize runs offline)")
def test_kubectl_kustomize_builds_the_folder(tmp_path, docs, llm_dir):
    for path, text, mode in k8s.render(rag_service(docs, llm_dir), REGISTRY, namespace="rag").files:
        (tmp_path / path).write_text(text)
        (tmp_path / path).chmod(mode)
    assert stat.S_IMODE((tmp_path / "secrets.yaml").stat().st_mode) == 0o600
    done = subprocess.run(["kubectl", "kustomize", str(tmp_path)], capture_output=True, text=True, timeout=60,
                          env={"KUBECONFIG": "/dev/null", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    kinds = [d["kind"] for d in yaml.safe_load_all(done.stdout)]
    assert kinds.count("Deployment") == 4 and kinds.count("Secret") == 2


# ------------------------------------------------------------------ built by hand: jobs, names, refusals

def spec(**kw) -> LaunchSpec:
    base = dict(name="My_Model.1", image="lazyllm/vllm:abc", command=("serve",), env={"A": "1"},
                ports=(PortSpec("api", 8000, 9000),),
                mounts=(MountSpec("bind", "/model", "/srv/m", read_only=True, purpose="model"),
                        MountSpec("volume", "/cache", "lazyllm_cache"), scratch_mount()),
                gpus=GpuRequest.parse("2"), shm_size="512m",
                healthcheck=HealthCheck("/health", 8000, timeout_s=1, start_period_s=300))
    base.update(kw)
    return LaunchSpec(**base)


def test_names_urls_ports_and_notes():
    chat = spec(name="chat", command=("chat", "--upstream", "http://My_Model.1:8000/v1"), gpus=GpuRequest.none(),
                mounts=(scratch_mount(),), shm_size=None, depends_on=("My_Model.1",), ports=(PortSpec("chat", 80),),
                healthcheck=HealthCheck("/healthz", 9100))
    service = Service("Svc", (Unit(spec()), Unit(chat)))
    rendered = k8s.render(service, REGISTRY)
    objects = docs_of(rendered)
    validate(objects)
    deps = by_kind(objects, "Deployment")
    assert set(deps) == {"my-model-1", "chat"} and "my-model-1" in by_kind(objects, "Service")
    c = pod_of(deps["chat"])["containers"][0]
    assert c["args"] == ["chat", "--upstream", "http://my-model-1:8000/v1"]
    assert {"name": "health", "containerPort": 9100, "protocol": "TCP"} in c["ports"]     # probe on a named port
    assert c["livenessProbe"]["httpGet"]["port"] == "health"
    assert pod_of(deps["my-model-1"])["containers"][0]["startupProbe"]["timeoutSeconds"] == 5
    notes = deps["my-model-1"]["metadata"]["annotations"][k8s.NOTES]
    assert "host port 9000" in notes
    assert "no start order" in deps["chat"]["metadata"]["annotations"][k8s.NOTES]
    assert any("My_Model.1 -> my-model-1" in n for n in rendered.notes)
    claims = by_kind(objects, "PersistentVolumeClaim")
    assert set(claims) == {"svc-models", "lazyllm-cache"}
    assert k8s.service_name("1model") == "x-1model" and k8s.k8s_name("A__b..C") == "a-b-c"
    with pytest.raises(ValueError):
        k8s.k8s_name("___")


def test_amd_and_ascend_counts():
    amd = spec(gpus=GpuRequest("count", count=2, vendor="amd"))
    c = pod_of(by_kind(k8s.objects(Service("m", (Unit(amd),)), REGISTRY), "Deployment")["my-model-1"])["containers"][0]
    assert c["resources"]["limits"] == {"amd.com/gpu": 2} and not any(e["name"].startswith("NVIDIA") for e in c["env"])


def test_a_job_unit_is_a_job():
    job = spec(name="graph-run", ports=(), gpus=GpuRequest.none(), shm_size=None, healthcheck=None,
               mounts=(MountSpec("bind", "/graph/g.json", "/home/u/g.json", read_only=True, purpose="graph"),
                       scratch_mount()), read_only_rootfs=True)
    rendered = k8s.render(Service("graph", (Unit(job, job=True),)), REGISTRY)
    objects = docs_of(rendered)
    validate(objects)
    (obj,) = [o for o in objects if o["kind"] not in ("PersistentVolumeClaim",)]
    assert obj["apiVersion"] == "batch/v1" and obj["kind"] == "Job"
    assert pod_of(obj)["restartPolicy"] == "Never" and "selector" not in obj["spec"]
    mount = next(m for m in pod_of(obj)["containers"][0]["volumeMounts"] if m["mountPath"] == "/graph/g.json")
    assert mount["subPath"] == "g.json"
    assert any("copy /home/u/g.json to g.json" in n for n in rendered.notes)


# ------------------------------------------------------------------ files of this host: ConfigMaps, not claims

GRAPH_TEXT = '{"nodes": [{"id": "e", "kind": "LocalEmbedding"}],\n "edges": [], "note": "caf\u00e9 \u2713"}\n'
DER = bytes(range(256)) + b"\x30\x82\xff\xfe"          # no UTF-8: binaryData


def file_units(tmp_path, monkeypatch, *, ca: bytes = DER, model_ca: bool = True) -> Service:
    """A graph runner (its graph JSON, the host's CA bundle, a config folder) and a model server that trusts the
    same bundle: what ``lazyllm run g.json --target k8s`` mounts, built by hand."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    graph = tmp_path / "g.json"
    graph.write_text(GRAPH_TEXT, encoding="utf-8")
    bundle = tmp_path / "certs" / "ca-certificates.crt"
    bundle.parent.mkdir()
    bundle.write_bytes(ca)
    conf = tmp_path / "conf.d"
    conf.mkdir()
    (conf / "a.toml").write_text("a = 1\n")
    monkeypatch.setattr(host_mod, "ca_bundle", lambda env=None: str(bundle))
    runner = spec(name="run", ports=(PortSpec("api", 8000),), gpus=GpuRequest.none(), shm_size=None,
                  healthcheck=None, read_only_rootfs=True,
                  mounts=(MountSpec("bind", "/graph/graph.json", str(graph), read_only=True, purpose="graph"),
                          MountSpec("bind", "/etc/app", str(conf), read_only=True, purpose="config"),
                          scratch_mount()))
    runner, _ = trust.with_host_trust(runner)
    model = spec(name="model")
    if model_ca:
        model, _ = trust.with_host_trust(model)
    return Service("kgraph", (Unit(runner), Unit(model)))


def test_a_graph_file_and_the_ca_bundle_become_config_maps(tmp_path, monkeypatch):
    service = file_units(tmp_path, monkeypatch)
    rendered = k8s.render(service, REGISTRY, namespace="g", read_file=k8s.small_file)
    objects = docs_of(rendered)
    validate(objects)
    cms = by_kind(objects, "ConfigMap")
    assert set(cms) == {"kgraph-graph", "kgraph-ca"}           # the CA bundle once, for both units
    assert cms["kgraph-graph"]["data"] == {"g.json": GRAPH_TEXT} and "binaryData" not in cms["kgraph-graph"]
    ca = cms["kgraph-ca"]
    assert "data" not in ca and base64.b64decode(ca["binaryData"]["ca-certificates.crt"]) == DER
    assert ca["metadata"]["namespace"] == "g" and ca["metadata"]["labels"]["app.kubernetes.io/part-of"] == "kgraph"
    claims = by_kind(objects, "PersistentVolumeClaim")
    assert "kgraph-graph" not in claims and "kgraph-ca" not in claims and "kgraph-config" in claims
    text = files(rendered)["manifests.yaml"][0]
    assert str(tmp_path) not in text and "hostPath" not in text
    deps = by_kind(objects, "Deployment")
    for unit, mounts in (("run", {"/graph/graph.json": ("kgraph-graph", "g.json"),
                                  trust.CA_TARGET: ("kgraph-ca", "ca-certificates.crt")}),
                         ("model", {trust.CA_TARGET: ("kgraph-ca", "ca-certificates.crt")})):
        pod = pod_of(deps[unit])
        volumes = {v["name"]: v for v in pod["volumes"]}
        for target, (cm, key) in mounts.items():
            (mount,) = [m for m in pod["containers"][0]["volumeMounts"] if m["mountPath"] == target]
            assert mount["subPath"] == key and mount["readOnly"] is True
            assert volumes[mount["name"]]["configMap"] == {"name": cm}
    folder = next(m for m in pod_of(deps["run"])["containers"][0]["volumeMounts"] if m["mountPath"] == "/etc/app")
    assert folder["subPath"] == "conf.d"
    assert any("PVC kgraph-config" in n and "copy " + str(tmp_path / "conf.d") + " to conf.d/" in n
               for n in rendered.notes)
    assert not any("PVC kgraph-graph" in n or "PVC kgraph-ca" in n for n in rendered.notes)
    assert any(n.startswith("ConfigMap kgraph-ca holds a copy of") and "run, model" in n for n in rendered.notes)


def test_a_text_ca_bundle_is_data(tmp_path, monkeypatch):
    pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    service = file_units(tmp_path, monkeypatch, ca=pem.encode(), model_ca=False)
    objects = k8s.objects(service, REGISTRY, read_file=k8s.small_file)
    validate(objects)
    assert by_kind(objects, "ConfigMap")["kgraph-ca"]["data"] == {"ca-certificates.crt": pem}


def test_without_read_file_files_stay_claims(tmp_path, monkeypatch):
    rendered = k8s.render(file_units(tmp_path, monkeypatch), REGISTRY)
    objects = docs_of(rendered)
    validate(objects)
    assert not by_kind(objects, "ConfigMap")
    assert {"kgraph-graph", "kgraph-ca", "kgraph-config"} <= set(by_kind(objects, "PersistentVolumeClaim"))
    assert any("PVC kgraph-graph" in n and f"copy {tmp_path / 'g.json'} to g.json/" in n for n in rendered.notes)


def test_a_file_over_1_mib_stays_a_claim(tmp_path, monkeypatch):
    big = b"a" * (k8s.CONFIG_MAP_MAX + 1)
    rendered = k8s.render(file_units(tmp_path, monkeypatch, ca=big), REGISTRY, read_file=k8s.small_file)
    objects = docs_of(rendered)
    validate(objects)
    assert set(by_kind(objects, "ConfigMap")) == {"kgraph-graph"}
    assert "kgraph-ca" in by_kind(objects, "PersistentVolumeClaim")
    assert any("PVC kgraph-ca" in n and "copy " in n and "ca-certificates.crt" in n for n in rendered.notes)
    # what a reader gives beyond the limit is not trusted either
    objects = k8s.objects(file_units(tmp_path / "x", monkeypatch), REGISTRY, read_file=lambda path: big)
    assert not by_kind(objects, "ConfigMap")


def test_small_file_reads_regular_files_that_fit(tmp_path):
    exact = tmp_path / "exact"
    exact.write_bytes(b"\0" * k8s.CONFIG_MAP_MAX)
    over = tmp_path / "over"
    over.write_bytes(b"\0" * (k8s.CONFIG_MAP_MAX + 1))
    link = tmp_path / "link"
    link.symlink_to(exact)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert k8s.small_file(str(exact)) == b"\0" * k8s.CONFIG_MAP_MAX
    assert k8s.small_file(str(link)) == k8s.small_file(str(exact))
    for path in (over, tmp_path, tmp_path / "missing", fifo):
        assert k8s.small_file(str(path)) is None


def test_a_1_mib_binary_file_fits(tmp_path, monkeypatch):
    data = bytes(range(256)) * (k8s.CONFIG_MAP_MAX // 256)
    objects = k8s.objects(file_units(tmp_path, monkeypatch, ca=data, model_ca=False), REGISTRY,
                          read_file=k8s.small_file)
    ca = by_kind(objects, "ConfigMap")["kgraph-ca"]
    assert base64.b64decode(ca["binaryData"]["ca-certificates.crt"]) == data
    assert k8s_check.check(objects) == []
    rendered = k8s.render(file_units(tmp_path / "b", monkeypatch, ca=data, model_ca=False), REGISTRY,
                          read_file=k8s.small_file)
    assert any("ConfigMap kgraph-ca is too big for client-side apply" in n and "--server-side" in n
               for n in rendered.notes)


def test_files_of_one_purpose_get_their_own_config_maps(tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b" / "a.json"
    b.parent.mkdir()
    f = tmp_path / "f.json"
    a.write_text("{}")
    b.write_text("[]")
    f.write_text("1")
    one = spec(name="one", mounts=(MountSpec("bind", "/c/a.json", str(a), read_only=True, purpose="config"),
                                   MountSpec("bind", "/c/b.json", str(b), purpose="config"),
                                   MountSpec("bind", "/c/..hidden", str(tmp_path / "a.json"), read_only=True,
                                             purpose="config"),
                                   MountSpec("bind", "/c/f.json", str(f), read_only=True, purpose="files")))
    # a unit named like the service: its generated files' ConfigMap svc-files is taken
    two = spec(name="svc", ports=(PortSpec("api", 8000),),
               mounts=(MountSpec("bind", "/etc/x", str(tmp_path / "gen" / "x"), read_only=True, purpose="config"),))
    rendered = k8s.render(Service("svc", (Unit(one), Unit(two, files=(("x", "y"),)))), REGISTRY,
                          read_file=k8s.small_file)
    objects = docs_of(rendered)
    validate(objects)
    cms = by_kind(objects, "ConfigMap")
    assert set(cms) == {"svc-config", "svc-config-2", "svc-files", "svc-files-2"}
    assert cms["svc-config"]["data"] == {"a.json": "{}"} and cms["svc-config-2"]["data"] == {"a.json": "[]"}
    assert cms["svc-files"]["data"] == {"x": "y"} and cms["svc-files-2"]["data"] == {"f.json": "1"}
    mounts = {m["mountPath"]: m for m in pod_of(by_kind(objects, "Deployment")["one"])["containers"][0]["volumeMounts"]}
    assert mounts["/c/a.json"]["name"] == mounts["/c/..hidden"]["name"]       # the same file: one volume
    assert mounts["/c/b.json"]["readOnly"] is True
    assert any("one: /c/b.json is a read-only copy" in n for n in rendered.notes)
    assert k8s_pod.config_key("/x/..a", "config") == "a" and k8s_pod.config_key("/x/..", "ca") == "ca"
    assert k8s_pod.config_key("/x/a b+c.crt", "ca") == "a-b-c.crt"


def test_start_reads_the_files_of_this_host(tmp_path, monkeypatch):
    """``lazyllm ... --target k8s`` (services.start.render) passes a reader: the files become ConfigMaps."""
    from lazyllm_images.services import start
    service = file_units(tmp_path, monkeypatch)
    rendered = start.render(service, LaunchOptions(target="k8s", output=str(tmp_path / "out")),
                            BuildOptions(registry=REGISTRY))
    objects = docs_of(rendered)
    assert {"kgraph-graph", "kgraph-ca"} <= set(by_kind(objects, "ConfigMap"))


def test_a_command_reading_its_own_stdin_gets_the_line_piped():
    unit = Unit(spec(name="bridge", command=("bridge", "--secrets-stdin")), secrets={"env": {"K": "v"}}, wrap=False)
    c = pod_of(by_kind(k8s.objects(Service("m", (unit,)), REGISTRY), "Deployment")["bridge"])["containers"][0]
    assert c["args"][3:7] == ["--file", "/run/secrets/bridge-secrets", "--stdin", "--"]
    assert "stdin" not in c


def test_a_public_image_needs_no_registry():
    unit = Unit(spec(image="docker.io/vllm/vllm-openai:v0.6.0"))
    c = pod_of(by_kind(k8s.objects(Service("m", (unit,)), None), "Deployment")["my-model-1"])["containers"][0]
    assert c["image"] == "docker.io/vllm/vllm-openai:v0.6.0"


def test_a_local_image_needs_a_registry():
    with pytest.raises(UsageError, match="--target k8s needs --registry") as err:
        k8s.render(hub_pair(), None)
    assert "lazyllm install" in err.value.hint and "--registry R --push" in err.value.hint


def test_preflight_says_it_before_any_build():
    k8s.preflight(hub_pair(), REGISTRY)
    with pytest.raises(UsageError, match="needs --registry"):
        k8s.preflight(hub_pair(), None)
    with pytest.raises(UsageError, match="index"):
        k8s.preflight(Service("m", (Unit(spec(gpus=GpuRequest.parse("0,1"))),)), REGISTRY)


def test_root_is_said_not_hidden():
    rendered = k8s.render(Service("m", (Unit(spec(user=None)),)), REGISTRY)
    pod = pod_of(by_kind(docs_of(rendered), "Deployment")["my-model-1"])
    assert "runAsNonRoot" not in pod["securityContext"] and pod["securityContext"]["fsGroup"] == 10001
    assert any("restricted' refuses" in n for n in rendered.notes)
    assert any("/dev/shm (512Mi) counts as the pod's memory" in n for n in rendered.notes)


@pytest.mark.parametrize("gpus", ["0,1", "GPU-aaaa-1111", "all", "0:1"])
def test_gpus_by_id_are_refused(gpus):
    with pytest.raises(UsageError) as err:
        k8s.render(Service("m", (Unit(spec(gpus=GpuRequest.parse(gpus))),)), REGISTRY)
    assert "count" in err.value.hint


def test_the_engine_socket_and_a_shared_socket_folder_are_refused():
    controller = LaunchSpec(name="c", image="i", role="infer", mounts=(
        MountSpec("bind", "/var/run/docker.sock", "/run/docker.sock", purpose=ENGINE_PURPOSE),))
    with pytest.raises(UsageError, match="no Kubernetes form") as err:
        k8s.render(Service("c", (Unit(controller),)), REGISTRY)
    assert "--target compose" in err.value.hint
    graph = spec(name="g", mounts=(MountSpec("bind", "/run/lazyllm", "/home/u/sock", purpose="socket"),))
    with pytest.raises(UsageError, match="Unix sockets") as err:
        k8s.render(Service("g", (Unit(graph),)), REGISTRY)
    assert "--target compose" in err.value.hint


def test_unit_names_that_collide_are_refused():
    with pytest.raises(UsageError, match="same Kubernetes name"):
        k8s.render(Service("m", (Unit(spec(name="a_b")), Unit(spec(name="a.b")))), REGISTRY)


def test_the_renderer_runs_the_checker(monkeypatch):
    monkeypatch.setattr(k8s_check, "check", lambda objects: ["Deployment/x: made up"])
    with pytest.raises(ValueError, match="a bug of lazyllm"):
        k8s.render(Service("m", (Unit(spec()),)), REGISTRY)


# ------------------------------------------------------------------ the checker: each rule on a bad manifest

def good() -> list[dict]:
    return k8s.objects(Service("m", (Unit(spec(), secrets={"env": {"K": "v"}}, files=()),)), REGISTRY, "ns")


def deployment(objects):
    return next(o for o in objects if o["kind"] == "Deployment")


def container(objects):
    return pod_of(deployment(objects))["containers"][0]


def service(objects):
    return next(o for o in objects if o["kind"] == "Service")


def config_map(objects, data=None, binary=None, sub=None) -> None:
    """A ConfigMap ``cm`` in the set, the pod's volume ``cm`` of it, mounted at /cm by ``sub`` when given."""
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}}
    cm.update({k: v for k, v in (("data", data), ("binaryData", binary)) if v is not None})
    objects.append(cm)
    pod_of(deployment(objects))["volumes"].append({"name": "cm", "configMap": {"name": "cm"}})
    if sub:
        container(objects)["volumeMounts"].append({"name": "cm", "mountPath": "/cm", "subPath": sub})


BREAKS = {
    "a Service name starting with a digit":
        (lambda o: service(o)["metadata"].update(name="1model"), "DNS-1035"),
    "a Deployment name with an upper-case letter":
        (lambda o: deployment(o)["metadata"].update(name="Model"), "DNS-1123 label"),
    "a 64-character name":
        (lambda o: deployment(o)["metadata"].update(name="m" * 64), "DNS-1123 label"),
    "a PVC name with an underscore":
        (lambda o: next(x for x in o if x["kind"] == "PersistentVolumeClaim")["metadata"].update(name="a_b"),
         "subdomain"),
    "a 16-character port name":
        (lambda o: container(o)["ports"][0].update(name="a-very-long-port"), "IANA_SVC_NAME"),
    "a port name of digits":
        (lambda o: container(o)["ports"][0].update(name="8000"), "IANA_SVC_NAME"),
    "a double dash in a port name":
        (lambda o: container(o)["ports"][0].update(name="a--b"), "IANA_SVC_NAME"),
    "memory: 8g":
        (lambda o: container(o)["resources"]["limits"].update(memory="8g"), "not a quantity"),
    "sizeLimit 8g":
        (lambda o: next(v for v in pod_of(deployment(o))["volumes"] if v["name"] == "shm")["emptyDir"].update(
            sizeLimit="8g"), "sizeLimit"),
    "ramalama's nvidia.com/gpu=all":
        (lambda o: container(o)["resources"].update(limits={"nvidia.com/gpu=all": 1}), "resource name"),
    "a GPU fraction":
        (lambda o: container(o)["resources"].update(limits={"nvidia.com/gpu": "0.5"},
                                                    requests={"nvidia.com/gpu": "0.5"}), "whole number"),
    "GPU requests unlike limits":
        (lambda o: container(o)["resources"].update(requests={"nvidia.com/gpu": 1}), "must be equal"),
    "a GPU in requests only":
        (lambda o: container(o)["resources"].update(limits={}), "go in limits"),
    "a selector the template lacks":
        (lambda o: deployment(o)["spec"]["selector"]["matchLabels"].update(app="other"), "not all template"),
    "a Service selecting nothing":
        (lambda o: service(o)["spec"].update(selector={"app": "none"}), "matches no pod"),
    "a label value with a slash":
        (lambda o: deployment(o)["metadata"]["labels"].update({"org.lazyllm.documents": "/srv/docs"}),
         "value Kubernetes rejects"),
    "a 64-character label value":
        (lambda o: pod_of(deployment(o)) and deployment(o)["spec"]["template"]["metadata"]["labels"].update(
            x="v" * 64), "value Kubernetes rejects"),
    "a label key with two slashes":
        (lambda o: deployment(o)["metadata"]["labels"].update({"a/b/c": "x"}), "not a qualified name"),
    "a targetPort the container lacks":
        (lambda o: service(o)["spec"]["ports"][0].update(targetPort="http"), "no container port"),
    "a probe on a port the container lacks":
        (lambda o: container(o)["livenessProbe"]["httpGet"].update(port="http"), "does not declare"),
    "a mount of an undeclared volume":
        (lambda o: container(o)["volumeMounts"].append({"name": "ghost", "mountPath": "/ghost"}), "names no volume"),
    "two mounts at one path":
        (lambda o: container(o)["volumeMounts"].append({**container(o)["volumeMounts"][0]}), "share the mountPath"),
    "a volume declared twice":
        (lambda o: pod_of(deployment(o))["volumes"].append({**pod_of(deployment(o))["volumes"][0]}),
         "declared twice"),
    "a claim nothing creates":
        (lambda o: o.remove(next(x for x in o if x["kind"] == "PersistentVolumeClaim")), "does not create"),
    "a Secret nothing creates":
        (lambda o: o.remove(next(x for x in o if x["kind"] == "Secret")), "does not create"),
    "a ConfigMap nothing creates":
        (lambda o: pod_of(deployment(o))["volumes"].append({"name": "cm", "configMap": {"name": "gone"}}),
         "does not create"),
    "a ConfigMap key starting with '..'":
        (lambda o: config_map(o, data={"..a": "x"}), "is not [-._a-zA-Z0-9]+"),
    "a ConfigMap key in data and binaryData":
        (lambda o: config_map(o, data={"a": "x"}, binary={"a": "eA=="}), "both"),
    "a ConfigMap over 1 MiB":
        (lambda o: config_map(o, data={"a": "x" * k8s.CONFIG_MAP_MAX, "b": "y"}), "over the 1 MiB"),
    "a subPath key the ConfigMap lacks":
        (lambda o: config_map(o, data={"a": "x"}, binary={"b": "eA=="}, sub="c"), "lacks"),
    "an env var from a ConfigMap nothing creates":
        (lambda o: container(o)["env"].append({"name": "X", "valueFrom": {"configMapKeyRef": {"name": "gone",
                                                                                             "key": "k"}}}),
         "does not create"),
    "an env var wanting a key the Secret lacks":
        (lambda o: container(o)["env"].append({"name": "X", "valueFrom": {"secretKeyRef": {
            "name": next(x for x in o if x["kind"] == "Secret")["metadata"]["name"], "key": "nope"}}}), "lacks"),
    "a projected ConfigMap nothing creates":
        (lambda o: pod_of(deployment(o))["volumes"].append(
            {"name": "p", "projected": {"sources": [{"configMap": {"name": "gone"}}]}}), "does not create"),
    "a PVC storage of 10g":
        (lambda o: next(x for x in o if x["kind"] == "PersistentVolumeClaim")["spec"]["resources"]["requests"]
         .update(storage="10g"), "not a quantity"),
    "two Deployments of one name":
        (lambda o: o.append(copy.deepcopy(deployment(o))), "share the name"),
}


def test_the_good_set_passes():
    objects = good()
    validate(objects)
    config_map(objects, data={"a": "x"}, binary={"b": "eA=="}, sub="b")       # a key of binaryData by subPath
    container(objects)["env"].append({"name": "X", "valueFrom": {"configMapKeyRef": {"name": "gone", "key": "k",
                                                                                     "optional": True}}})
    assert k8s_check.check(objects) == []


@pytest.mark.parametrize("case", list(BREAKS))
def test_the_checker_catches(case):
    objects = good()
    assert k8s_check.check(objects) == []
    edit, expected = BREAKS[case]
    edit(objects)
    problems = k8s_check.check(objects)
    assert any(expected in p for p in problems), problems


@pytest.mark.parametrize("case", ["a Service name starting with a digit", "memory: 8g",
                                  "ramalama's nvidia.com/gpu=all", "a selector the template lacks",
                                  "a 16-character port name"])
def test_the_schemas_alone_miss_it(case):
    """Why the checker exists: these pass kubernetes-validate --strict (scale-out §3.3)."""
    objects = good()
    BREAKS[case][0](objects)
    for obj in objects:
        kubernetes_validate.validate(obj, VERSIONS[-1], strict=True)


def test_checker_helpers():
    assert k8s_check.port_name("api") and not k8s_check.port_name("-api") and not k8s_check.port_name("api-")
    assert k8s_check.quantity("8Gi") and k8s_check.quantity("500m") and k8s_check.quantity(2)
    assert not k8s_check.quantity("8 Gi") and not k8s_check.quantity(True)
    assert k8s_check.qualified_name("app.kubernetes.io/name") and not k8s_check.qualified_name("/x")
    assert k8s_check.resource_name("hugepages-2Mi") and not k8s_check.resource_name("gpu")
    assert k8s._quantity("8g") == "8Gi" and k8s._quantity("1024") == "1024" and k8s._quantity("64k") == "64Ki"
    assert replace(spec(), shm_size="1g").shm_size == "1g"


def test_policy_warnings():
    """The rendered GPU pod is clean under 'restricted'; a root Ascend pod with a driver hostPath is said to be
    not; a default rolling update of a GPU Deployment and a GPU server without startupProbe are warned."""
    assert k8s_check.policy(good()) == []
    objects = good()
    dep = deployment(objects)
    del dep["spec"]["strategy"]
    del container(objects)["startupProbe"]
    pod_of(dep)["hostIPC"] = True
    warnings = k8s_check.policy(objects)
    assert any("surge" in w for w in warnings) and any("startupProbe" in w for w in warnings)
    assert any("hostIPC" in w for w in warnings)
    root = k8s.objects(Service("m", (Unit(spec(user=None, gpus=GpuRequest("count", count=1, vendor="ascend"))),)),
                       REGISTRY)
    warnings = k8s_check.policy(root)
    assert any("hostPath /usr/local/Ascend/driver" in w for w in warnings)
    assert any("runAsNonRoot" in w for w in warnings)
