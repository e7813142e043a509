"""``lazyllm run infer_service``: the controller's unit (what its container holds and nothing more), the host facts
it reads from a file instead of NVML, the frameworks and stacks rule, tokens, and the CLI's parsing. Nothing here
touches an engine (the e2e suite runs the real thing)."""

from __future__ import annotations

import json
import os
import socket
import stat
from dataclasses import replace

import pytest

from lazyllm_images import host
from lazyllm_images.errors import UsageError
from lazyllm_images.host import Gpu, HostFacts, NvidiaFacts
from lazyllm_images.launch import k8s
from lazyllm_images.launch.docker import container_kwargs
from lazyllm_images.launch.spec import ENGINE_PURPOSE, LaunchSpec, MountSpec
from lazyllm_images.requests import BuildOptions, InferServiceRequest, LaunchOptions
from lazyllm_images.services import infer
from test_launch_host_facts import FakeNvml

CPU = HostFacts(nvidia=NvidiaFacts(False, "no NVIDIA driver"))
GPUS = HostFacts(nvidia=NvidiaFacts(True, "", "550.54.15", "12.4", (
    Gpu(0, "GPU-a", "NVIDIA H100", 81559, "9.0"), Gpu(1, "GPU-b", "NVIDIA H100", 81559, "9.0"))))
ALICE, BOB = "alice-0c1e2d5f7a9b8c6d4e3f", "bob-9f8e7d6c5b4a39281706"
OFFLINE = BuildOptions(base="offline")


# ---------------------------------------------------------------- host facts from a file

@pytest.fixture
def facts_env(monkeypatch):
    """LAZYLLM_HOST_FACTS set for the test, every cache of host facts forgotten before and after."""
    def use(path):
        monkeypatch.setenv(host.FACTS_ENV, str(path))
        host.host_facts.cache_clear()
        host._read_facts.cache_clear()
    host.host_facts.cache_clear()
    yield use
    monkeypatch.delenv(host.FACTS_ENV, raising=False)
    host.host_facts.cache_clear()
    host._read_facts.cache_clear()


def test_facts_round_trip_through_the_file(tmp_path, monkeypatch, facts_env) -> None:
    """What the CLI sees on a GPU host (NVML with MIG devices, the hook, CDI specs, device nodes and their groups)
    is what the controller reads back in a container that has none of them."""
    seen = HostFacts(arch="x86_64", nvidia=host.nvidia_facts(FakeNvml()), ascend=True, amd=False)
    assert seen.nvidia.present and seen.nvidia.mig_devices           # the stand-in has MIG devices
    monkeypatch.setattr(host, "host_facts", lambda: seen)
    monkeypatch.setattr(host, "nvidia_hook", lambda: "/usr/bin/nvidia-container-runtime-hook")
    monkeypatch.setattr(host, "cdi_nvidia_specs", lambda: ["/etc/cdi/nvidia.yaml"])
    monkeypatch.setattr(host.glob, "glob", lambda pattern: ["/dev/davinci0", "/dev/davinci3"]
                        if "davinci" in pattern else [])
    monkeypatch.setattr(host, "device_gids",
                        lambda paths=None: {"/dev/davinci0": (1000,), "/dev/davinci_manager": (1000,)})
    doc = host.facts_document()
    path = tmp_path / "host-facts.json"
    path.write_text(json.dumps(doc))
    monkeypatch.undo()                                                 # back to the real functions

    facts_env(path)
    assert host.host_facts() == seen                                  # the MIG devices, UUIDs, capabilities too
    assert host.host_facts().nvidia.gpus[0].mig == seen.nvidia.gpus[0].mig
    plumbing = host.gpu_plumbing({"Runtimes": {"runc": {}, "nvidia": {}}})
    assert plumbing.hook == "/usr/bin/nvidia-container-runtime-hook" and plumbing.cdi_specs == ("/etc/cdi/nvidia.yaml",)
    assert plumbing.runtimes == ("nvidia", "runc")                   # the engine's own answer still counts
    assert host.ascend_devices() == ["/dev/davinci0", "/dev/davinci3"] and host.amd_devices() == []
    assert host.device_gids() == {"/dev/davinci0": (1000,), "/dev/davinci_manager": (1000,)}
    assert host.device_gids(["/nonexistent"]) == {}                   # explicit paths are still looked at here


def test_a_cpu_host_round_trips_too(tmp_path, facts_env) -> None:
    doc = host.facts_document()
    path = tmp_path / "facts.json"
    path.write_text(json.dumps(doc))
    facts_env(path)
    real = HostFacts(arch=os.uname().machine, nvidia=host.nvidia_facts(), ascend=bool(doc["ascend_devices"]),
                     amd=bool(doc["amd_devices"]))
    assert host.host_facts() == real


@pytest.mark.parametrize("text", ["not json", json.dumps({"version": 99, "nvidia": {}}), json.dumps([1]),
                                  json.dumps({"version": 1, "nvidia": {"present": True, "bogus": 1}})])
def test_an_unusable_facts_file_is_an_error_not_this_hosts_facts(tmp_path, facts_env, text) -> None:
    path = tmp_path / "facts.json"
    path.write_text(text)
    facts_env(path)
    with pytest.raises(host.HostFactsError) as err:
        host.host_facts()
    assert host.FACTS_ENV in err.value.message and err.value.hint


def test_a_missing_facts_file_is_an_error(tmp_path, facts_env) -> None:
    facts_env(tmp_path / "absent.json")
    with pytest.raises(host.HostFactsError, match="cannot read"):
        host.gpu_plumbing(None)


# ---------------------------------------------------------------- frameworks and the stacks built at start

def test_default_frameworks_follow_the_host() -> None:
    assert infer.parse_frameworks((), CPU) == ("auto", "embedding", "infinity", "vllm-cpu")
    assert infer.parse_frameworks((), GPUS) == ("auto", "vllm", "vllm-cpu", "lightllm", "lmdeploy", "infinity",
                                                "embedding")
    assert infer.parse_frameworks(("vllm_cpu,Embedding", "embedding", "auto"), CPU) == ("vllm-cpu", "embedding",
                                                                                          "auto")


def test_unknown_and_unsupported_frameworks_are_refused() -> None:
    with pytest.raises(UsageError, match="unknown framework 'vlm'") as err:
        infer.parse_frameworks(("vlm",), CPU)
    assert "vllm" in err.value.hint and "mindie" not in err.value.hint
    with pytest.raises(UsageError, match="mindie: not served by infer_service"):
        infer.parse_frameworks(("mindie",), CPU)


def test_the_build_rule() -> None:
    """Default: only what auto picks here (an LLM's framework and an embedding model's); --frameworks: each named,
    plus auto's picks when auto is named."""
    assert infer.frameworks_to_build(infer.CPU_FRAMEWORKS, False, CPU) == ("vllm-cpu", "embedding")
    assert infer.frameworks_to_build(infer.NVIDIA_FRAMEWORKS, False, GPUS) == ("vllm", "embedding")
    assert infer.frameworks_to_build(("infinity",), True, CPU) == ("infinity",)
    assert infer.frameworks_to_build(("infinity", "auto"), True, CPU) == ("infinity", "vllm-cpu", "embedding")
    arm = HostFacts(arch="aarch64", nvidia=NvidiaFacts(False, "none"))
    assert infer.frameworks_to_build(infer.CPU_FRAMEWORKS, False, arm) == ("embedding",)   # no LLM framework there


def test_stack_plans_are_deploys_own(tmp_path) -> None:
    """The stacks built at start are those ``deploy.model_server`` (what the controller calls) launches: a folder's
    stack per framework, and one per packaged model of a kind it serves."""
    from lazyllm_images.requests import DeployModelRequest
    from lazyllm_images.services.deploy import model_server
    model = tmp_path / "tiny-llama"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"]}))
    plans = dict(infer.stack_plans(("vllm-cpu", "embedding"), OFFLINE, CPU))
    assert set(plans) == {"vllm-cpu", "embedding", "embedding + all-MiniLM-L6-v2"}
    hostfacts = host.host_facts
    try:
        host.host_facts = lambda: CPU
        launch = LaunchOptions(dry_run=True, gpus="none")
        llm = model_server(DeployModelRequest(model=str(model), framework="vllm-cpu", launch=launch,
                                              build=OFFLINE), "s")
        emb = model_server(DeployModelRequest(model="all-MiniLM-L6-v2", framework="embedding", launch=launch,
                                              build=OFFLINE), "s")
    finally:
        host.host_facts = hostfacts
    assert plans["vllm-cpu"].top.ref == llm.plan.top.ref
    assert plans["embedding + all-MiniLM-L6-v2"].top.ref == emb.plan.top.ref


# ---------------------------------------------------------------- GPUs, roots, the engine's socket, tokens

def test_controller_gpus() -> None:
    assert infer.controller_gpus(None, CPU) == () and infer.controller_gpus("none", CPU) == ()
    assert infer.controller_gpus(None, GPUS) == (0, 1) and infer.controller_gpus("all", GPUS) == (0, 1)
    assert infer.controller_gpus("1", GPUS) == (0,) and infer.controller_gpus("1", GPUS) == (0,)
    assert infer.controller_gpus("device=1", GPUS) == (1,)
    with pytest.raises(UsageError, match="this host has no NVIDIA GPU"):
        infer.controller_gpus("1", CPU)
    with pytest.raises(UsageError, match="no GPU 2 here; this host's GPUs are 0, 1"):
        infer.controller_gpus("0,2", GPUS)
    with pytest.raises(UsageError):
        infer.controller_gpus("x", GPUS)


def test_model_roots(tmp_path) -> None:
    a, b, private = tmp_path / "a", tmp_path / "b", tmp_path / "private"
    for d in (a, b, private):
        d.mkdir()
    a.chmod(0o755), b.chmod(0o755), private.chmod(0o700)
    roots = infer.model_roots((str(a), str(b) + "/", str(a)))
    assert [(r.host, r.inner) for r in roots] == [(str(a), "/models/0"), (str(b), "/models/1")]
    with pytest.raises(UsageError, match="no such folder"):
        infer.model_roots((str(tmp_path / "nope"),))
    with pytest.raises(UsageError, match="uid 10001 and cannot list") as err:
        infer.model_roots((str(private),))
    assert f"chmod a+rx {private}" in err.value.hint


def test_engine_socket(tmp_path, monkeypatch) -> None:
    path = tmp_path / "d.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    try:
        path.chmod(0o660)
        monkeypatch.setenv("DOCKER_HOST", f"unix://{path}")
        assert infer.engine_socket() == (str(path), os.stat(path).st_gid)
        path.chmod(0o600)
        with pytest.raises(UsageError, match="not read-write for its group"):
            infer.engine_socket()
    finally:
        server.close()
    monkeypatch.setenv("DOCKER_HOST", "tcp://10.0.0.5:2376")
    with pytest.raises(UsageError, match="local unix socket"):
        infer.engine_socket()
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path / 'absent.sock'}")
    with pytest.raises(UsageError, match="not there"):
        infer.engine_socket()
    assert infer.engine_socket(dry_run=True) == (str(tmp_path / "absent.sock"), None)   # a dry run needs no engine


def test_a_generated_token_is_kept_private_and_reused(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("LAZYLLM_HOME", str(tmp_path / "home"))
    request = InferServiceRequest()
    dry = infer.tokens_for(request, "svc-state", dry_run=True)
    assert dry.text is None and not dry.where.exists()               # a dry run generates nothing
    first = infer.tokens_for(request, "svc-state", dry_run=False)
    assert first.generated and first.where == tmp_path / "home" / "infer" / "svc-state.token"
    assert stat.S_IMODE(first.where.stat().st_mode) == 0o600
    assert stat.S_IMODE(first.where.parent.stat().st_mode) == 0o700
    assert infer.tokens_for(request, "svc-state", dry_run=False).text == first.text   # same volume, same token
    assert infer.tokens_for(request, "other-state", dry_run=False).text != first.text


def test_a_token_file_is_checked_before_anything_starts(tmp_path) -> None:
    good = tmp_path / "tokens"
    good.write_text(f"# two users\n{ALICE}\n\n{BOB}\n")
    found = infer.tokens_for(InferServiceRequest(token_file=str(good)), "v", dry_run=True)
    assert found.text == f"{ALICE}\n{BOB}\n" and found.count == 2 and not found.generated
    weak = tmp_path / "weak"
    weak.write_text("short\n")
    with pytest.raises(UsageError, match="at least 16 characters") as err:
        infer.tokens_for(InferServiceRequest(token_file=str(weak)), "v", dry_run=True)
    assert "short" not in err.value.message.replace(str(tmp_path), "")


# ---------------------------------------------------------------- the controller's unit

@pytest.fixture
def described(tmp_path, monkeypatch):
    """``describe`` for a CPU host with a model root and a two-token file (a dry run: no engine)."""
    root = tmp_path / "models"
    root.mkdir()
    root.chmod(0o755)
    tokens = tmp_path / "tokens"
    tokens.write_text(f"{ALICE}\n{BOB}\n")
    monkeypatch.setattr(host, "host_facts", lambda: CPU)
    monkeypatch.setattr(infer, "engine_socket", lambda dry_run=False: ("/run/docker.sock", 105))
    monkeypatch.setenv("HF_TOKEN", "hf_secret_token_value_123")
    monkeypatch.setenv("LAZYLLM_LABELS", "org.lazyllm.test-run=abc")
    monkeypatch.setenv("HTTPS_PROXY", "http://user:pw@proxy:3128")
    monkeypatch.setenv("LAZYLLM_HOME", str(tmp_path / "home"))

    def make(**kw):
        launch = LaunchOptions(dry_run=True, **kw.pop("launch", {}))
        request = InferServiceRequest(models=(str(root),), token_file=str(tokens), launch=launch, build=OFFLINE, **kw)
        return infer.describe(request)
    make.root = root
    return make


def test_the_controller_holds_only_what_it_needs(described) -> None:
    found = described()
    (unit,) = found.service.units
    spec = unit.spec
    assert found.service.name == "lazyllm-infer" and spec.name == "lazyllm-infer-controller" and spec.role == "infer"
    assert spec.user == "10001:10001" and spec.cap_drop == ("ALL",) and spec.cap_add == ()
    assert spec.security_opt == ("no-new-privileges",) and spec.read_only_rootfs and spec.group_add == ("105",)
    assert spec.gpus.kind == "none" and not spec.ipc_host and not spec.devices
    mounts = {m.target: m for m in spec.mounts}
    engine = mounts["/var/run/docker.sock"]
    assert (engine.kind, engine.source, engine.purpose) == ("bind", "/run/docker.sock", ENGINE_PURPOSE)
    assert (mounts["/var/lib/lazyllm"].kind, mounts["/var/lib/lazyllm"].source) == ("volume", "lazyllm-infer-state")
    assert mounts["/models/0"].source == str(described.root) and mounts["/models/0"].read_only
    assert mounts["/etc/lazyllm/host-facts.json"].read_only and mounts["/tmp"].kind == "tmpfs"
    assert all(m.read_only for m in spec.mounts if m.purpose == "cli")
    assert {m.target for m in spec.mounts if m.purpose == "cli"} >= {"/opt/lazyllm/cli/lazyllm_images"}
    writable = {m.target for m in spec.mounts if not m.read_only}
    assert writable == {"/var/run/docker.sock", "/var/lib/lazyllm", "/tmp"}
    assert spec.ports[0].host_ip == "127.0.0.1" and spec.ports[0].host_port == 31340
    assert spec.env["PYTHONPATH"] == "/opt/lazyllm/cli" and spec.env["LAZYLLM_HOST_FACTS"] == infer.FACTS_TARGET
    assert spec.env["LAZYLLM_LABELS"] == "org.lazyllm.test-run=abc"
    cmd = list(spec.command)
    assert cmd[:3] == ["python3", "-m", "lazyllm_images.runtime.infer"]
    assert cmd[cmd.index("--models") + 1] == f"{described.root}=/models/0"
    assert cmd[cmd.index("--engine-network") + 1] == "lazyllm-infer-net" == spec.network
    assert cmd[cmd.index("--frameworks") + 1] == "auto,embedding,infinity,vllm-cpu"
    assert cmd[cmd.index("--gpus") + 1] == "none" and cmd[cmd.index("--base") + 1] == "offline"
    assert cmd[cmd.index("--publish-host") + 1] == "127.0.0.1" == cmd[cmd.index("--endpoint-host") + 1]
    assert cmd[cmd.index("--token-file") + 1] == infer.TOKENS_TARGET
    assert [f for f, _ in unit.files] == [infer.FACTS_FILE]
    assert json.loads(unit.files[0][1])["version"] == host.FACTS_VERSION


def test_secrets_reach_only_stdin(described) -> None:
    """Tokens (the API's, the hub's, a proxy's credentials) travel in the unit's secrets: never in the container's
    config, labels, command or the generated files."""
    found = described()
    (unit,) = found.service.units
    config = json.dumps([container_kwargs(unit.spec), unit.files])
    for secret in (ALICE, BOB, "hf_secret_token_value_123", "user:pw"):
        assert secret not in config
    assert unit.secrets["files"] == {infer.TOKENS_TARGET: f"{ALICE}\n{BOB}\n"}
    assert unit.secrets["env"]["HF_TOKEN"] == "hf_secret_token_value_123"
    assert unit.secrets["env"]["HTTPS_PROXY"] == "http://user:pw@proxy:3128"


def test_published_beyond_loopback(described) -> None:
    found = described(launch={"host": "0.0.0.0", "port": 8080, "name": "infer-a"})
    spec = found.service.units[0].spec
    assert spec.ports[0].host_ip == "0.0.0.0" and spec.ports[0].host_port == 8080
    assert found.endpoint_host == "127.0.0.1" and "--volume" not in spec.command
    assert found.volume == "infer-a-state"
    named = described(launch={"host": "0.0.0.0"}, endpoint_host="gpu1.lan", allow_hub=False)
    cmd = list(named.service.units[0].spec.command)
    assert cmd[cmd.index("--endpoint-host") + 1] == "gpu1.lan" and "--no-hub" in cmd


def test_the_dry_run_says_what_starts_and_never_a_token(described, capsys) -> None:
    from lazyllm_images.services.start import print_dry_run
    print_dry_run(described().service)
    out = capsys.readouterr().out
    assert "frameworks clients may ask for: auto, embedding, infinity, vllm-cpu" in out
    assert "stack for vllm-cpu:" in out and "stack for embedding + all-MiniLM-L6-v2:" in out
    assert "docker run --name lazyllm-infer-controller" in out and "--group-add 105" in out
    assert "secrets (tokens" in out and ALICE not in out and BOB not in out


def test_on_an_nvidia_host(described, monkeypatch) -> None:
    """Every GPU by default, the NVIDIA frameworks, vllm's CUDA stack built first; the facts file says the GPUs."""
    monkeypatch.setattr(host, "host_facts", lambda: GPUS)
    monkeypatch.setattr(host, "nvidia_facts", lambda nvml=None: GPUS.nvidia)
    found = infer.describe(InferServiceRequest(launch=LaunchOptions(dry_run=True)))
    (unit,) = found.service.units
    cmd = list(unit.spec.command)
    assert cmd[cmd.index("--gpus") + 1] == "0,1" and found.gpus == (0, 1)
    assert cmd[cmd.index("--frameworks") + 1] == "auto,vllm,vllm-cpu,lightllm,lmdeploy,infinity,embedding"
    plans = dict(found.stacks)
    assert found.built == ("vllm", "embedding") and plans["vllm"].accelerator == "nvidia"
    assert unit.spec.gpus.kind == "none"                       # the controller itself never holds a GPU
    assert [g["uuid"] for g in json.loads(unit.files[0][1])["nvidia"]["gpus"]] == ["GPU-a", "GPU-b"]


@pytest.mark.parametrize("target", ["swarm", "k8s"])
def test_cluster_targets_are_refused_before_any_build(described, target) -> None:
    request = InferServiceRequest(launch=LaunchOptions(target=target, dry_run=True))
    with pytest.raises(UsageError, match="this host's Docker engine") as err:
        infer.run(request)
    assert "--target compose" in err.value.hint


# ---------------------------------------------------------------- the spec's rules for the engine's socket

def _engine_spec(**kw) -> LaunchSpec:
    mount = MountSpec("bind", "/var/run/docker.sock", "/run/docker.sock", purpose=ENGINE_PURPOSE)
    return LaunchSpec(**{"name": "c", "image": "i", "role": "infer", "mounts": (mount,), **kw})


def test_only_an_unprivileged_controller_gets_the_engine() -> None:
    assert _engine_spec().role == "infer"
    with pytest.raises(ValueError, match="only a controller"):
        _engine_spec(role="model")
    with pytest.raises(ValueError, match="unprivileged"):
        _engine_spec(user="0:0")
    with pytest.raises(ValueError, match="unprivileged"):
        _engine_spec(user=None)


def test_kubernetes_refuses_the_engine_socket(described) -> None:
    with pytest.raises(UsageError, match="no Kubernetes form") as err:
        k8s.render(described().service, "registry.example:5000")
    assert "--target compose" in err.value.hint


def test_a_port_is_in_use_only_while_something_listens() -> None:
    """A restart right after a stop: the old server's connections in TIME_WAIT do not hold the port."""
    from lazyllm_images.backends.docker import port_in_use
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    conn, _ = server.accept()
    assert port_in_use("127.0.0.1", port)
    conn.close()                                # the server closes first: its side goes to TIME_WAIT
    client.close()
    server.close()
    assert not port_in_use("127.0.0.1", port)


def test_free_port_for_an_address_this_process_does_not_have() -> None:
    """The controller picks host ports from inside its container, where the host's own addresses are absent."""
    from lazyllm_images.backends.docker import free_port
    assert 0 < free_port("203.0.113.7") < 65536


# ---------------------------------------------------------------- the command line

def parse(argv):
    from lazyllm_images.cli import cli
    captured: list = []
    cli.main(args=argv, prog_name="lazyllm", standalone_mode=False, obj={"capture": captured})
    return captured[0]


def test_cli_parses_its_own_options() -> None:
    r = parse(["run", "infer_service", "--models", "/a", "--models", "/b", "--token-file", "t", "--gpus", "0,1",
               "--frameworks", "vllm,embedding", "--frameworks", "auto", "--host", "0.0.0.0", "--endpoint-host",
               "gpu1.lan", "--no-hub", "--name", "infer-a", "--base", "offline", "--dry-run"])
    assert isinstance(r, InferServiceRequest) and r.target == "infer_service"
    assert (r.models, r.token_file, r.gpus, r.frameworks) == (("/a", "/b"), "t", "0,1", ("vllm,embedding", "auto"))
    assert (r.endpoint_host, r.allow_hub, r.launch.host, r.launch.port, r.launch.name) == \
        ("gpu1.lan", False, "0.0.0.0", 31340, "infer-a")
    assert r.launch.dry_run and r.build.base == "offline"
    default = parse(["run", "infer_service"])
    assert default == replace(default, models=(), token_file=None, frameworks=(), allow_hub=True)
    assert default.launch.port == 31340 and default.launch.host == "127.0.0.1"


def test_cli_rejects_bad_values(capsys) -> None:
    from lazyllm_images.cli import main
    assert main(["run", "infer_service", "--name", "Bad_Name"]) == 2
    assert main(["run", "infer_service", "--host", "nowhere"]) == 2
    assert main(["run", "infer_service", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("error: ") == 3
