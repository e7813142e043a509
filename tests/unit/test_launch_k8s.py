"""Kubernetes manifests from LaunchSpecs."""

from __future__ import annotations

import pytest
import yaml

from lazyllm_images.errors import UsageError
from lazyllm_images.launch import k8s
from lazyllm_images.launch.spec import (GpuRequest, HealthCheck, LaunchSpec, MountSpec, PortSpec, Ulimit,
                                        scratch_mount)


def spec(**kw) -> LaunchSpec:
    base = dict(name="My_Model.1", image="img:1", command=("serve",), env={"A": "1"},
                ports=(PortSpec("api", 8000, 9000),),
                mounts=(MountSpec("bind", "/model", "/srv/m", read_only=True, purpose="model"),
                        MountSpec("volume", "/cache", "lazyllm_cache"), scratch_mount()),
                gpus=GpuRequest.parse("2"), shm_size="512m", ulimits=(Ulimit("memlock", -1, -1),),
                labels={"org.lazyllm.role": "model", "org.lazyllm.urls": '{"api": "http://x"}'},
                healthcheck=HealthCheck("/health", 8000, interval_s=10, start_period_s=300), stdin_open=True)
    base.update(kw)
    return LaunchSpec(**base)


def test_deployment_and_service():
    dep, svc = k8s.manifests([spec()], namespace="ns")
    assert dep["kind"] == "Deployment" and svc["kind"] == "Service"
    meta = dep["metadata"]
    assert meta["name"] == "my-model-1" and meta["namespace"] == "ns"
    assert meta["labels"]["org.lazyllm.role"] == "model" and "org.lazyllm.urls" not in meta["labels"]
    assert meta["annotations"]["org.lazyllm.urls"] == '{"api": "http://x"}'
    assert "ulimits" in meta["annotations"][k8s.NOTES] and "host ports" in meta["annotations"][k8s.NOTES]
    pod = dep["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert c["args"] == ["serve"] and "command" not in c and c["stdin"] is True
    assert c["resources"] == {"limits": {"nvidia.com/gpu": 2}}
    assert {"name": "NVIDIA_DRIVER_CAPABILITIES", "value": "compute,utility"} in c["env"]
    assert c["securityContext"] == {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                                    "runAsUser": 10001, "runAsNonRoot": True, "runAsGroup": 10001}
    assert c["startupProbe"]["failureThreshold"] == 33 and c["readinessProbe"]["httpGet"] == {"path": "/health",
                                                                                               "port": 8000}
    vols = {v["name"]: v for v in pod["volumes"]}
    assert vols["model-0"]["hostPath"] == {"path": "/srv/m"}
    assert vols["volume-1"]["persistentVolumeClaim"] == {"claimName": "lazyllm-cache"}
    assert vols["scratch-2"]["emptyDir"] == {"medium": "Memory"}
    assert vols["shm-3"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "512Mi"}
    assert svc["spec"]["ports"] == [{"name": "api", "port": 8000, "targetPort": "api", "protocol": "TCP"}]
    assert svc["spec"]["selector"] == dep["spec"]["selector"]["matchLabels"]


def test_no_ports_no_service_and_root():
    docs = k8s.manifests([spec(ports=(), user="0:0", ipc_host=True, shm_size=None, gpus=GpuRequest.none())])
    assert [d["kind"] for d in docs] == ["Deployment"]
    pod = docs[0]["spec"]["template"]["spec"]
    ctx = pod["containers"][0]["securityContext"]
    assert ctx["runAsNonRoot"] is False and pod["hostIPC"] is True and "resources" not in pod["containers"][0]


@pytest.mark.parametrize("gpus", ["0,1", "GPU-aaaa-1111", "all"])
def test_device_selection_is_refused(gpus):
    with pytest.raises(UsageError) as err:
        k8s.manifests([spec(gpus=GpuRequest.parse(gpus))])
    assert "count" in err.value.hint


@pytest.mark.parametrize("gpus", ["0:1", "MIG-aaaa-1111"])
def test_mig_is_refused_with_the_resource_it_takes(gpus):
    with pytest.raises(UsageError, match="nvidia.com/mig-1g.10gb") as err:
        k8s.manifests([spec(gpus=GpuRequest.parse(gpus))])
    assert "count" in err.value.hint


def test_absent_optional_driver_paths_are_not_mounted():
    ascend = spec(gpus=GpuRequest("count", count=1, vendor="ascend"))
    c = k8s.manifests([ascend], path_exists=lambda path: path != "/usr/local/sbin/npu-smi")[0][
        "spec"]["template"]["spec"]["containers"][0]
    paths = [m["mountPath"] for m in c["volumeMounts"]]
    assert "/usr/local/dcmi" in paths and "/usr/local/sbin/npu-smi" not in paths


def test_ascend_and_amd_resources():
    ascend = k8s.manifests([spec(gpus=GpuRequest("count", count=1, vendor="ascend"))])[0]
    c = ascend["spec"]["template"]["spec"]["containers"][0]
    assert c["resources"]["limits"] == {"huawei.com/Ascend910": 1}
    assert "/usr/local/Ascend/driver" in [m["mountPath"] for m in c["volumeMounts"]]
    assert not any(e["name"].startswith("NVIDIA") for e in c["env"])
    amd = k8s.manifests([spec(gpus=GpuRequest("count", count=2, vendor="amd"))])[0]
    assert amd["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"] == {"amd.com/gpu": 2}


def test_names_and_yaml():
    assert k8s.k8s_name("A__b..C") == "a-b-c" and len(k8s.k8s_name("x" * 100)) == 63
    with pytest.raises(ValueError):
        k8s.k8s_name("___")
    text = k8s.manifests_yaml([spec(), spec(name="chat", depends_on=("My_Model.1",), gpus=GpuRequest.none())])
    docs = list(yaml.safe_load_all(text))
    assert [d["kind"] for d in docs] == ["Deployment", "Service", "Deployment", "Service"]
    assert "&id" not in text and "no start order" in docs[2]["metadata"]["annotations"][k8s.NOTES]
