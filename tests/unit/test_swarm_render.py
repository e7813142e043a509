"""Stack files for ``docker stack deploy`` (``launch.swarm``), built by hand from LaunchSpecs, no engine.

Where the 28.x CLI is present, ``docker stack config`` (offline: DOCKER_HOST points nowhere) loads and validates
each rendered file against the schema; it never prints Swarm's "Ignoring unsupported options", so the keys Swarm
ignores are checked here directly."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
import yaml

from lazyllm_images.errors import UsageError
from lazyllm_images.launch import secrets, swarm
from lazyllm_images.launch.spec import (
    GpuRequest,
    HealthCheck,
    LaunchSpec,
    MountSpec,
    PortSpec,
    Ulimit,
    scratch_mount,
    service_labels,
)
from lazyllm_images.launch.unit import Service, Unit

pytestmark = pytest.mark.unit

REGISTRY = "127.0.0.1:5000/team"
# docker/cli types.UnsupportedProperties (20.10 and HEAD), the deprecated ones, and those no stack loader converts
SWARM_IGNORES = {"build", "cgroupns_mode", "cgroup_parent", "devices", "domainname", "external_links", "ipc", "links",
                 "mac_address", "network_mode", "pid", "privileged", "restart", "security_opt", "shm_size",
                 "userns_mode", "container_name", "expose", "depends_on", "tmpfs", "gpus", "runtime", "group_add"}


def model(**kw) -> LaunchSpec:
    base = {"name": "svc-model", "image": "lazyllm/stack:abc", "command": ("serve", "--price", "$5"),
            "env": {"A": "1"}, "ports": (PortSpec("api", 8000),),
            "mounts": (MountSpec("bind", "/model", "/srv/models/m", read_only=True, purpose="model"), scratch_mount(),
                       MountSpec("bind", "/etc/mindie/config.json", "/state/svc/config.json", read_only=True,
                                 purpose="config")),
            "gpus": GpuRequest.parse("2"), "shm_size": "8g", "ulimits": (Ulimit("memlock", -1, -1),),
            "labels": service_labels("svc", "model"),
            "healthcheck": HealthCheck("/health", 8000, start_period_s=300), "network": "svc-net"}
    base.update(kw)
    return LaunchSpec(**base)


def chat(**kw) -> LaunchSpec:
    return LaunchSpec(**{"name": "svc-chat", "image": "lazyllm/stack:def", "role": "chat", "command": ("chat",),
                         "ports": (PortSpec("chat", 8080, 20500),), "depends_on": ("svc-model",),
                         "mounts": (scratch_mount(),), "labels": service_labels("svc", "chat"),
                         "healthcheck": HealthCheck("/healthz", 8080), **kw})


def service(model_unit: Unit | None = None, *more: Unit) -> Service:
    m = model_unit or Unit(model(), secrets={"env": {"HF_TOKEN": "hf_secret_value"}},
                           files=(("config.json", '{"x": 1}'),), urls=(("api", "/v1"),))
    return Service("svc", (m, Unit(chat(), urls=(("chat", "/"),)), *more))


def rendered(svc: Service | None = None, registry: str | None = REGISTRY, node: str | None = None):
    out = swarm.render(svc or service(), registry, "/out/svc.stack.yaml", node_hostname=node)
    files = {path: (text, mode) for path, text, mode in out.files}
    return yaml.safe_load(files["svc.stack.yaml"][0]), files, out.notes


def stack_config(tmp_path, files: dict) -> subprocess.CompletedProcess | None:
    """``docker stack config -c`` of the 28.x CLI, offline; None where no CLI has the command."""
    cli = next((c for c in ("/usr/local/bin/docker", shutil.which("docker")) if c and os.access(c, os.X_OK)), None)
    if cli is None:
        return None
    probe = subprocess.run([cli, "stack", "config", "--help"], capture_output=True, text=True, timeout=30, check=False,
                           env={**os.environ, "DOCKER_HOST": "unix:///nonexistent"})
    if probe.returncode != 0:
        return None
    for path, (text, mode) in files.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
    return subprocess.run([cli, "stack", "config", "-c", "svc.stack.yaml"], capture_output=True, text=True,
                          cwd=tmp_path, timeout=60, check=False, env={**os.environ, "DOCKER_HOST": "unix:///nonexistent"})


def test_stack_config_accepts_it(tmp_path):
    _, files, _ = rendered()
    done = stack_config(tmp_path, files)
    if done is None:
        pytest.skip("no docker CLI with 'docker stack config' (23.0+) here")
    assert done.returncode == 0, done.stderr
    loaded = yaml.safe_load(done.stdout)
    assert set(loaded["services"]) == {"svc-model", "svc-chat"}
    assert loaded["services"]["svc-model"]["deploy"]["endpoint_mode"] == "dnsrr"


def test_stack_config_refuses_a_bad_edit(tmp_path):
    doc, files, _ = rendered()
    doc["services"]["svc-model"]["gpus"] = "all"
    files["svc.stack.yaml"] = (yaml.safe_dump(doc), 0o644)
    done = stack_config(tmp_path, files)
    if done is None:
        pytest.skip("no docker CLI with 'docker stack config' (23.0+) here")
    assert done.returncode != 0 and "gpus" in done.stderr


def test_shape_version_network_and_ports():
    doc, _, _ = rendered()
    assert doc["version"] == "3.9"
    assert list(doc["services"]) == ["svc-model", "svc-chat"]
    for svc in doc["services"].values():
        assert not SWARM_IGNORES & set(svc), SWARM_IGNORES & set(svc)
        assert not {"devices"} & set(svc["deploy"].get("resources", {}).get("reservations", {}))
        assert svc["deploy"]["endpoint_mode"] == "dnsrr"
        assert svc["networks"] == ["svc-net"]
        assert all(p["mode"] == "host" for p in svc["ports"])
        assert svc["deploy"]["placement"]["max_replicas_per_node"] == 1
        assert svc["deploy"]["restart_policy"]["condition"] == "any"
        assert svc["deploy"]["update_config"]["order"] == "stop-first"
        assert svc["deploy"]["update_config"]["failure_action"] == "rollback"
        assert svc["labels"]["org.lazyllm.service"] == "svc" == svc["deploy"]["labels"]["org.lazyllm.service"]
    assert doc["networks"]["svc-net"]["driver"] == "overlay" and doc["networks"]["svc-net"]["attachable"]
    assert doc["services"]["svc-chat"]["ports"] == [{"target": 8080, "published": 20500, "protocol": "tcp",
                                                    "mode": "host"}]
    assert doc["services"]["svc-model"]["ports"] == [{"target": 8000, "protocol": "tcp", "mode": "host"}]
    assert doc["x-lazyllm"] == {"target": "swarm", "service": "svc", "urls": {
        "api": {"unit": "svc-model", "port": 8000, "path": "/v1"},
        "chat": {"unit": "svc-chat", "port": 8080, "path": "/"}}}


def test_monitor_covers_the_health_start():
    doc, _, _ = rendered()
    hc = doc["services"]["svc-model"]["healthcheck"]
    assert hc["test"][:2] == ["CMD", "python3"] and hc["start_period"] == "300s"
    monitor = int(doc["services"]["svc-model"]["deploy"]["update_config"]["monitor"].rstrip("s"))
    assert monitor >= 300 + 10 * 3


def test_images_from_the_registry_or_pinned_here():
    doc, _, notes = rendered()
    assert doc["services"]["svc-model"]["image"] == "127.0.0.1:5000/team/lazyllm/stack:abc"
    assert "constraints" not in doc["services"]["svc-model"]["deploy"]["placement"]
    doc, _, notes = rendered(registry=None, node="node-a")
    assert doc["services"]["svc-model"]["image"] == "lazyllm/stack:abc"
    for svc in doc["services"].values():
        assert svc["deploy"]["placement"]["constraints"] == ["node.hostname == node-a"]
    assert any("only on this node" in n for n in notes)
    with pytest.raises(UsageError) as err:
        rendered(registry=None, node=None)
    assert err.value.hint and "--registry" in err.value.hint


def test_gpus_as_generic_resources_and_cpu_units_void():
    doc, _, notes = rendered()
    m, c = doc["services"]["svc-model"], doc["services"]["svc-chat"]
    assert m["deploy"]["resources"]["reservations"]["generic_resources"] == [
        {"discrete_resource_spec": {"kind": "NVIDIA-GPU", "value": 2}}]
    assert "NVIDIA_VISIBLE_DEVICES" not in m["environment"]
    assert m["environment"]["NVIDIA_DRIVER_CAPABILITIES"] == "compute,utility"
    assert c["environment"]["NVIDIA_VISIBLE_DEVICES"] == "void"
    assert "resources" not in c["deploy"]
    assert any("node-generic-resources" in n and "DOCKER_RESOURCE_NVIDIA-GPU" in n for n in notes)


@pytest.mark.parametrize("gpus", ["all", "0,1", "device=0", "GPU-abc"])
def test_gpus_by_index_or_all_are_refused(gpus):
    with pytest.raises(UsageError) as err:
        rendered(service(Unit(model(gpus=GpuRequest.parse(gpus)))))
    assert "count" in err.value.hint


def test_other_vendors_are_refused():
    with pytest.raises(UsageError):
        rendered(service(Unit(model(gpus=GpuRequest("count", count=1, vendor="amd")))))


def test_secrets_are_files_never_inline():
    doc, files, _ = rendered()
    key = secrets.key("svc-model")
    text, mode = files[f"svc.stack.secrets/{key}"]
    assert mode == 0o600 and "hf_secret_value" in text
    assert "hf_secret_value" not in files["svc.stack.yaml"][0]
    assert doc["secrets"][key]["file"] == f"./svc.stack.secrets/{key}"
    assert doc["secrets"][key]["name"] == f"svc_{key}_{secrets.digest(text)}"
    m = doc["services"]["svc-model"]
    assert m["secrets"] == [{"source": key, "target": key, "uid": "10001", "gid": "10001", "mode": 0o400}]
    assert m["command"][:6] == ["python3", "-m", "lazyllm_images.runtime.secret_exec", "--file",
                                f"/run/secrets/{key}", "--"]
    assert m["command"][6:] == ["serve", "--price", "$$5"]      # stack files interpolate $VAR too
    assert "secrets" not in doc["services"]["svc-chat"]


def test_a_new_secret_value_is_a_new_secret_name():
    a, _, _ = rendered()
    b, _, _ = rendered(service(Unit(model(), secrets={"env": {"HF_TOKEN": "other"}},
                                    files=(("config.json", "{}"),))))
    key = secrets.key("svc-model")
    assert a["secrets"][key]["name"] != b["secrets"][key]["name"]


def test_unwrapped_units_get_the_line_on_stdin():
    unit = Unit(model(command=("bridge", "--secrets-stdin")), secrets={"env": {"K": "v"}}, wrap=False,
                files=(("config.json", "{}"),))
    doc, _, _ = rendered(service(unit))
    assert "--stdin" in doc["services"]["svc-model"]["command"]


def test_generated_files_are_configs_at_their_targets():
    doc, files, _ = rendered()
    text, mode = files["svc.stack.files/svc-model/config.json"]
    assert text == '{"x": 1}' and mode == 0o644
    (key, config), = doc["configs"].items()
    assert config["file"] == "./svc.stack.files/svc-model/config.json"
    assert doc["services"]["svc-model"]["configs"][0]["source"] == key
    assert doc["services"]["svc-model"]["configs"][0]["target"] == "/etc/mindie/config.json"
    targets = [v["target"] for v in doc["services"]["svc-model"]["volumes"]]
    assert "/etc/mindie/config.json" not in targets


def test_tmp_is_a_volume_and_shm_a_sized_tmpfs():
    doc, _, _ = rendered()
    vols = doc["services"]["svc-model"]["volumes"]
    assert {"type": "volume", "target": "/tmp"} in vols
    assert {"type": "tmpfs", "target": "/dev/shm", "tmpfs": {"size": 8 * 1024 ** 3}} in vols
    assert {"type": "bind", "source": "/srv/models/m", "target": "/model", "read_only": True} in vols


def test_dropped_settings_are_notes():
    unit = Unit(model(shm_size=None, ipc_host=True, devices=("/dev/fuse",)), files=(("config.json", "{}"),))
    _, _, notes = rendered(service(unit))
    text = "\n".join(notes)
    for word in ("ipc", "security_opt", "/dev/fuse", "no order", "/srv/models/m", "every address"):
        assert word in text, word


def test_named_volumes_declared_with_their_name():
    unit = Unit(model(mounts=(MountSpec("volume", "/cache", "lazyllm-hub-cache"), scratch_mount())))
    doc, _, _ = rendered(service(unit))
    assert doc["volumes"]["lazyllm-hub-cache"]["name"] == "lazyllm-hub-cache"


def test_jobs_do_not_restart():
    job = Unit(LaunchSpec("svc-job", "lazyllm/stack:abc", command=("train",), role="training"), job=True)
    doc, _, _ = rendered(service(None, job))
    assert doc["services"]["svc-job"]["deploy"]["restart_policy"] == {"condition": "none"}


def test_engine_socket_and_shared_sockets_are_refused():
    ctl = LaunchSpec("svc-infer", "lazyllm/stack:abc", role="infer",
                     mounts=(MountSpec("bind", "/var/run/docker.sock", "/var/run/docker.sock", purpose="engine"),))
    with pytest.raises(UsageError) as err:
        rendered(Service("svc", (Unit(ctl),)))
    assert "compose" in err.value.hint
    runner = LaunchSpec("svc-runner", "lazyllm/stack:abc", role="workflow",
                        mounts=(MountSpec("bind", "/run/sandbox", "/state/svc/sandbox", purpose="socket"),))
    with pytest.raises(UsageError):
        rendered(Service("svc", (Unit(runner),)))


def test_node_labels_become_placement_constraints_of_every_unit(tmp_path):
    from lazyllm_images.launch import swarm
    from lazyllm_images.launch.spec import LaunchSpec
    from lazyllm_images.launch.unit import Service, Unit
    import yaml
    units = (Unit(LaunchSpec("s-a", "lazyllm/runtime:x", command=("a",))),
             Unit(LaunchSpec("s-b", "lazyllm/runtime:x", command=("b",))))
    out = swarm.render(Service("s", units), "r.example/ns", str(tmp_path / "s.yaml"),
                       node_labels=(("gpu", "a100"), ("zone", "z1")))
    doc = yaml.safe_load(out.files[0][1])
    for name in ("s-a", "s-b"):
        assert doc["services"][name]["deploy"]["placement"]["constraints"] == [
            "node.labels.gpu == a100", "node.labels.zone == z1"]
