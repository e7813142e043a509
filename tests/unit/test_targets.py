"""The target options (``--target``, ``-o``, ``--compose``, ``--namespace``, ``--runtime-class``), the compose
rendering of a whole service with its secrets, ``secret_exec --file``, and the tensor-parallel size a GPU count
gives (not the host's GPU count)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

from lazyllm_images.cli import main
from lazyllm_images.frameworks import get
from lazyllm_images.launch import compose, secrets
from lazyllm_images.launch.spec import GpuRequest, HealthCheck, LaunchSpec, MountSpec, PortSpec
from lazyllm_images.launch.unit import Service, Unit

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("argv, words", [
    (["--compose", "a.yaml", "--target", "swarm"], "short for --target compose"),
    (["--compose", "a.yaml", "-o", "b.yaml"], "short for --target compose"),
    (["-o", "x.yaml"], "-o writes files"),
    (["--namespace", "llm"], "are for --target k8s"),
    (["--target", "compose", "--runtime-class", "nvidia"], "are for --target k8s"),
    (["--target", "k8s", "--namespace", "Bad_NS"], "not a Kubernetes namespace"),
    (["--target", "compose", "--foreground"], "--foreground runs the service here"),
    (["--target", "nomad"], "nomad"),
])
def test_contradicting_target_options_are_one_usage_error(capsys, argv, words):
    code = main(["deploy", "all-MiniLM-L6-v2", "--framework", "embedding", *argv])
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2 and words in err and "Traceback" not in err
    assert lines[0].startswith("error: ") and lines[-1].startswith("hint: ")


def _service() -> Service:
    hc = HealthCheck(path="/healthz", port=8000)
    model = LaunchSpec(name="svc-model", image="lazyllm/runtime:abc", command=("python3", "-m", "srv"),
                       ports=(PortSpec("api", 8000, host_port=18000),), healthcheck=hc, network="svc-net",
                       mounts=(MountSpec("bind", "/etc/x.json", "/state/services/svc/x.json", read_only=True),
                               MountSpec("volume", "/var/lib/lazyllm", "svc-index", purpose="index")))
    chat = LaunchSpec(name="svc-chat", image="lazyllm/runtime:abc", command=("python3", "-m", "chat"),
                      ports=(PortSpec("chat", 8000, host_port=18001),), healthcheck=hc, network="svc-net")
    return Service("svc", (Unit(model, secrets={"env": {"HF_TOKEN": "hf_secret"}}, files=(("x.json", "{}"),),
                                urls=(("api", "/v1"),)),
                           Unit(chat, secrets={"files": {"/tmp/lazyllm/api-key": "sk-1"}}, urls=(("chat", "/"),))),
                   primary=1)


def test_compose_render_keeps_secrets_out_of_the_file_and_starts_in_order():
    rendered = compose.render(_service(), "/out/svc.yaml", files_dir="/state/services/svc",
                              labels=lambda kind, **kw: {"org.lazyllm.kind": kind, **kw})
    files = {path: (text, mode) for path, text, mode in rendered.files}
    text = files["svc.yaml"][0]
    assert "hf_secret" not in text and "sk-1" not in text
    doc = yaml.safe_load(text)
    model, chat = doc["services"]["svc-model"], doc["services"]["svc-chat"]
    assert model["command"][:6] == ["python3", "-m", "lazyllm_images.runtime.secret_exec", "--file",
                                    "/run/secrets/svc-model-secrets", "--"]
    assert model["secrets"] == ["svc-model-secrets"] and chat["secrets"] == ["svc-chat-secrets"]
    assert doc["secrets"]["svc-model-secrets"] == {"file": "./svc.secrets/svc-model-secrets"}
    assert json.loads(files["svc.secrets/svc-model-secrets"][0]) == {"env": {"HF_TOKEN": "hf_secret"}}
    assert chat["depends_on"] == {"svc-model": {"condition": "service_healthy"}}
    assert {"type": "bind", "source": "./svc.files/x.json", "target": "/etc/x.json", "read_only": True} in \
        model["volumes"] and files["svc.files/x.json"] == ("{}", 0o644)
    assert doc["volumes"]["svc-index"]["labels"] == {"org.lazyllm.kind": "volume", "purpose": "index"}
    assert doc["networks"]["default"]["name"] == "svc-net"
    assert doc["x-lazyllm"] == {"target": "compose", "service": "svc", "primary": "svc-chat", "urls": {
        "api": {"unit": "svc-model", "port": 8000, "path": "/v1"},
        "chat": {"unit": "svc-chat", "port": 8000, "path": "/"}}}


def test_a_unit_reading_its_own_stdin_gets_the_line_piped():
    spec = LaunchSpec(name="m", image="i", command=("python3", "-m", "bridge", "--secrets-stdin"))
    wrapped = secrets.reading_file(spec, "/run/secrets/m-secrets", wrap=False)
    assert wrapped.command == ("python3", "-m", "lazyllm_images.runtime.secret_exec", "--file",
                               "/run/secrets/m-secrets", "--stdin", "--", "python3", "-m", "bridge",
                               "--secrets-stdin")
    local = secrets.reading_stdin(wrapped.__class__(name="m", image="i", command=("srv",)))
    assert local.command[-2:] == ("--", "srv") and local.stdin_open


def _secret_exec(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lazyllm_images.runtime.secret_exec", *args], input=stdin,
                          capture_output=True, text=True, timeout=60)


def test_secret_exec_reads_a_secret_file(tmp_path):
    target = tmp_path / "key"                      # pytest's tmp_path is under /tmp, where secret files may go
    line = json.dumps({"env": {"TOKEN_X": "v1"}, "files": {str(target): "k2"}})
    (tmp_path / "s").write_text(line + "\n")
    done = _secret_exec("--file", str(tmp_path / "s"), "--", sys.executable, "-c",
                        "import os; print(os.environ['TOKEN_X'])")
    assert done.returncode == 0 and done.stdout.strip() == "v1", done.stderr
    assert target.read_text() == "k2" and oct(target.stat().st_mode & 0o777) == "0o600"
    piped = _secret_exec("--file", str(tmp_path / "s"), "--stdin", "--", sys.executable, "-c",
                         "import sys, os; print(sys.stdin.read().strip()); print(os.environ.get('TOKEN_X'))")
    assert piped.stdout.splitlines() == [line, "None"]
    missing = _secret_exec("--file", str(tmp_path / "nope"), "--", "true")
    assert missing.returncode == 2 and "cannot read the secrets file" in missing.stderr
    assert _secret_exec("--stdin", "--", "true").returncode == 2


def test_tensor_parallelism_follows_the_request_not_the_host():
    vllm = get("vllm")
    one = vllm.server_argv("/model", "m", gpus=GpuRequest.parse("1"), gpu_count=2).argv
    every = vllm.server_argv("/model", "m", gpus=GpuRequest.all(), gpu_count=2).argv
    assert "--tensor-parallel-size" not in one
    assert every[every.index("--tensor-parallel-size") + 1] == "2"


def test_doctor_says_what_each_swarm_state_needs():
    from lazyllm_images.doctor.targets import swarm_state
    said, data = swarm_state({})
    assert "inactive" in said and "docker swarm init" in said and data["manager"] is False
    said, _ = swarm_state({"Swarm": {"LocalNodeState": "active", "ControlAvailable": False}})
    assert "worker" in said and "from a manager" in said


@pytest.mark.parametrize("argv, words", [
    (["--node-label", "gpu=a100"], "is for --target swarm or k8s"),
    (["--target", "swarm", "--node-label", "gpu"], "is not KEY=VALUE"),
    (["--target", "k8s", "--node-label", "bad key=x"], "is not KEY=VALUE"),
])
def test_node_labels_are_checked(capsys, argv, words):
    code = main(["deploy", "all-MiniLM-L6-v2", "--framework", "embedding", *argv])
    err = capsys.readouterr().err
    assert code == 2 and words in err and err.strip().splitlines()[-1].startswith("hint: ")


def test_node_labels_become_the_pods_node_selector():
    import kubernetes_validate
    from lazyllm_images.launch import k8s, k8s_check
    units = (Unit(LaunchSpec("s-a", "lazyllm/runtime:x", command=("a",))),)
    objs = k8s.objects(Service("s", units), "r.example/ns",
                       node_labels=(("gpu", "a100"), ("topology.kubernetes.io/zone", "z1")))
    pod = next(o for o in objs if o["kind"] == "Deployment")["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"gpu": "a100", "topology.kubernetes.io/zone": "z1"}
    assert k8s_check.check(objs) == []
    for obj in objs:
        kubernetes_validate.validate(obj, "1.33", strict=True)
