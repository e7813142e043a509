"""One GPU request rendered to every target; resolution against framework and host; the driver check."""

from __future__ import annotations

import posixpath

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lazyllm_images.errors import LaunchError, UsageError
from lazyllm_images.host import Gpu, GpuPlumbing, HostFacts, NvidiaFacts
from lazyllm_images.launch import gpu
from lazyllm_images.launch.spec import GpuRequest

UUIDS = ("GPU-aaaaaaaa-0000", "GPU-bbbbbbbb-1111")
NV = NvidiaFacts(True, "", "535.104", "12.2", tuple(Gpu(i, u, "NVIDIA A100", 40960, "8.0")
                                                   for i, u in enumerate(UUIDS)))
NV_HOST = HostFacts(nvidia=NV)
CPU_HOST = HostFacts(nvidia=NvidiaFacts(False, "no NVIDIA driver (NVML library not found)"))


def req(text: str, vendor: str = "nvidia") -> GpuRequest:
    return GpuRequest.parse(text, vendor)


# ------------------------------------------------------------------ rendering

@pytest.mark.parametrize("text,device_request,flag,reservation", [
    ("all", {"driver": "nvidia", "capabilities": [["gpu"]], "count": -1}, "all",
     {"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}),
    ("2", {"driver": "nvidia", "capabilities": [["gpu"]], "count": 2}, "2",
     {"driver": "nvidia", "count": 2, "capabilities": ["gpu"]}),
    ("0,1", {"driver": "nvidia", "capabilities": [["gpu"]], "device_ids": ["0", "1"]}, '"device=0,1"',
     {"driver": "nvidia", "device_ids": ["0", "1"], "capabilities": ["gpu"]}),
    (UUIDS[0], {"driver": "nvidia", "capabilities": [["gpu"]], "device_ids": [UUIDS[0]]}, f'"device={UUIDS[0]}"',
     {"driver": "nvidia", "device_ids": [UUIDS[0]], "capabilities": ["gpu"]}),
])
def test_runtime_mode(text, device_request, flag, reservation):
    r = gpu.render(req(text))
    assert r.device_requests == (device_request,)
    assert r.run_args == ("--gpus", flag)
    assert r.reservations == (reservation,)
    assert r.env == {"NVIDIA_DRIVER_CAPABILITIES": "compute,utility"}
    assert not r.cdi_devices and not r.devices


def test_reservation_never_has_count_and_device_ids():
    for text in ("all", "3", "0,2", UUIDS[1]):
        (res,) = gpu.render(req(text)).reservations
        assert ("count" in res) != ("device_ids" in res)


@pytest.mark.parametrize("text,names", [
    ("all", ("nvidia.com/gpu=all",)), ("2", ("nvidia.com/gpu=0", "nvidia.com/gpu=1")),
    ("1,3", ("nvidia.com/gpu=1", "nvidia.com/gpu=3")), (UUIDS[0], (f"nvidia.com/gpu={UUIDS[0]}",)),
])
def test_cdi_mode(text, names):
    r = gpu.render(req(text), "cdi")
    assert r.cdi_devices == names
    assert r.device_requests == ({"driver": "cdi", "device_ids": list(names)},)
    assert r.run_args == tuple(a for n in names for a in ("--device", n))
    assert not r.reservations


def test_capabilities_reach_the_env():
    r = gpu.render(req("all").with_capabilities("video"))
    assert r.env["NVIDIA_DRIVER_CAPABILITIES"] == "compute,utility,video"


def test_no_gpu_keeps_nvidia_images_gpu_free():
    assert gpu.render(GpuRequest.none()).env == {"NVIDIA_VISIBLE_DEVICES": "void"}
    assert gpu.render(GpuRequest.none("amd")).env == {}


def test_auto_must_be_resolved_first():
    with pytest.raises(ValueError, match="resolve"):
        gpu.render(GpuRequest.parse(None))
    with pytest.raises(ValueError):
        gpu.render(req("all"), "legacy")


def test_amd():
    r = gpu.render(req("0,1", "amd"))
    assert r.devices == ("/dev/kfd", "/dev/dri") and r.group_add == ("video", "render")
    assert r.env == {"ROCR_VISIBLE_DEVICES": "0,1"}
    assert r.run_args == ("--device", "/dev/kfd", "--device", "/dev/dri", "--group-add", "video",
                          "--group-add", "render")
    assert gpu.render(req("all", "amd")).env == {}
    assert gpu.render(req("2", "amd")).env == {"ROCR_VISIBLE_DEVICES": "0,1"}


def test_ascend():
    r = gpu.render(req("0,2", "ascend"))
    assert r.devices == ("/dev/davinci0", "/dev/davinci2", "/dev/davinci_manager", "/dev/devmm_svm",
                         "/dev/hisi_hdc")
    assert r.group_add == ("HwHiAiUser",)
    assert {m.target for m in r.mounts} >= {"/usr/local/Ascend/driver"} and all(m.read_only for m in r.mounts)
    with pytest.raises(UsageError):
        gpu.render(req(UUIDS[0], "ascend"))
    with pytest.raises(ValueError, match="resolve"):
        gpu.render(req("all", "ascend"))


def test_device_groups_replace_names():
    r = gpu.with_device_groups(gpu.render(req("all", "amd")), {"/dev/kfd": (109,), "/dev/dri": (44, 109)})
    assert r.group_add == ("109", "44")
    assert r.run_args[-4:] == ("--group-add", "109", "--group-add", "44") and r.run_args.count("--group-add") == 2
    ascend = gpu.render(req("device=0", "ascend"))
    got = gpu.with_device_groups(ascend, {"/dev/davinci0": (1001,), "/dev/davinci_manager": (0, 1001)})
    assert got.group_add == ("1001",) and "HwHiAiUser" not in got.run_args        # root's group never added
    assert gpu.with_device_groups(ascend, {}) == ascend                           # no facts: the names stay


@pytest.mark.parametrize("text,limits", [("none", {}), ("2", {"nvidia.com/gpu": 2})])
def test_k8s_limits(text, limits):
    assert gpu.k8s_limits(req(text)) == limits
    assert gpu.k8s_limits(req("1", "amd")) == {"amd.com/gpu": 1}
    assert gpu.k8s_limits(req("1", "ascend")) == {"huawei.com/Ascend910": 1}


@pytest.mark.parametrize("text,match", [("0,1", "by index"), (UUIDS[0], "by UUID"), ("all", "count")])
def test_k8s_cannot_pin_devices(text, match):
    with pytest.raises(UsageError, match=match) as err:
        gpu.k8s_limits(req(text))
    assert "count" in err.value.hint


# ------------------------------------------------------------------ resolution

def test_auto_uses_all_gpus_when_the_framework_needs_them():
    assert gpu.resolve(GpuRequest.parse(None), "required", NV_HOST, framework="vllm").kind == "all"
    assert gpu.resolve(GpuRequest.parse(None), "optional", NV_HOST, framework="embedding").kind == "all"


def test_auto_without_gpu():
    assert gpu.resolve(GpuRequest.parse(None), "optional", CPU_HOST, framework="embedding").kind == "none"
    assert gpu.resolve(GpuRequest.parse(None), "none", NV_HOST, framework="vllm-cpu").kind == "none"
    with pytest.raises(LaunchError, match="needs a GPU") as err:
        gpu.resolve(GpuRequest.parse(None), "required", CPU_HOST, framework="vllm")
    assert "doctor" in err.value.hint and "vllm-cpu" in err.value.hint


def test_auto_on_an_accelerator_the_framework_cannot_use():
    ascend = HostFacts(nvidia=CPU_HOST.nvidia, ascend=True)
    got = gpu.resolve(GpuRequest.parse(None), "optional", ascend, framework="embedding", vendors=("nvidia", "amd"))
    assert got.kind == "none"
    with pytest.raises(UsageError, match="does not run on ascend"):
        gpu.resolve(GpuRequest.parse(None), "required", ascend, framework="vllm", vendors=("nvidia", "amd"))


def test_explicit_requests_that_cannot_be_honoured():
    with pytest.raises(UsageError, match="cannot run without a GPU"):
        gpu.resolve(req("none"), "required", NV_HOST, framework="vllm")
    with pytest.raises(UsageError, match="CPU only"):
        gpu.resolve(req("all"), "none", NV_HOST, framework="vllm-cpu")
    with pytest.raises(UsageError, match="does not run on nvidia"):
        gpu.resolve(req("1"), "required", NV_HOST, framework="mindie", vendors=("ascend",))


def test_vendor_follows_the_host():
    amd = HostFacts(nvidia=CPU_HOST.nvidia, amd=True)
    assert gpu.resolve(req("2"), "required", amd, framework="vllm", vendors=("nvidia", "amd")).vendor == "amd"
    assert gpu.host_vendor(CPU_HOST) is None and gpu.host_vendor(NV_HOST) == "nvidia"


def test_ascend_all_becomes_indexes():
    host = HostFacts(nvidia=CPU_HOST.nvidia, ascend=True)
    got = gpu.resolve(req("all"), "required", host, framework="mindie", vendors=("ascend",), ascend_indexes=(0, 1))
    assert (got.kind, got.devices, got.vendor) == ("devices", ("0", "1"), "ascend")
    with pytest.raises(LaunchError):
        gpu.resolve(req("all"), "required", host, framework="mindie", vendors=("ascend",))


def test_ascend_indexes_from_device_paths():
    assert gpu.ascend_indexes(["/dev/davinci2", "/dev/davinci0", "/dev/davinci_manager"]) == (0, 2)


# ------------------------------------------------------------------ the driver check

def plumbing(runtime: bool, cdi=()) -> GpuPlumbing:
    """An engine with the ``nvidia`` runtime registered or not, and CDI on (its folders hold ``cdi``) or off."""
    info = {"Runtimes": {"runc": {}, **({"nvidia": {}} if runtime else {})},
            "CDISpecDirs": sorted({posixpath.dirname(c) for c in cdi})}
    return GpuPlumbing.from_info(info, cdi_specs=list(cdi))


def check(image_cuda="12.1", host=NV, gpus="all", runtime=True, cdi=(), mode=None):
    gpu.check_driver(image_cuda, host, req(gpus), plumbing=plumbing(runtime, cdi), mode=mode)


def test_driver_ok():
    check()
    check(image_cuda="12.2")
    check(image_cuda=None, gpus="0,1")
    check(runtime=False, cdi=["/etc/cdi/nvidia.yaml"], mode="cdi")
    gpu.check_driver("13.0", CPU_HOST.nvidia, GpuRequest.none(), plumbing=plumbing(False))   # CPU: nothing to check


def test_old_driver_points_at_doctor():
    with pytest.raises(LaunchError, match="driver 535.104 runs CUDA <= 12.2, but the image needs CUDA 12.4") as err:
        check(image_cuda="12.4")
    assert "lazyllm doctor" in err.value.hint and "--cuda 12.2" in err.value.hint
    with pytest.raises(LaunchError):
        check(image_cuda="12.10")            # versions compare as numbers, not text


def test_no_gpu_is_an_error_never_a_cpu_run():
    with pytest.raises(LaunchError, match="no NVIDIA GPU") as err:
        check(host=CPU_HOST.nvidia)
    assert "lazyllm doctor" in err.value.hint and "--gpus none" in err.value.hint


def test_missing_gpus():
    with pytest.raises(LaunchError, match="more GPUs"):
        check(gpus="3")
    with pytest.raises(LaunchError, match="no GPU 5"):
        check(gpus="1,5")
    with pytest.raises(LaunchError, match="UUID"):
        check(gpus="GPU-cccccccc-2222")
    check(gpus=UUIDS[1])


def test_no_runtime_no_cdi():
    with pytest.raises(LaunchError, match="neither the engine's --gpus .* nor a CDI spec") as err:
        check(runtime=False)
    assert "nvidia-ctk" in err.value.hint and "lazyllm doctor" in err.value.hint
    with pytest.raises(LaunchError, match="CDI mode"):
        check(mode="cdi")


def test_amd_and_ascend_need_their_devices():
    gpu.check_host(req("all", "amd"), HostFacts(nvidia=CPU_HOST.nvidia, amd=True))
    gpu.check_host(req("all"), CPU_HOST)                  # NVIDIA: check_driver's business
    with pytest.raises(LaunchError, match="/dev/kfd"):
        gpu.check_host(req("1", "amd"), CPU_HOST)
    with pytest.raises(LaunchError, match="davinci") as err:
        gpu.check_host(req("device=0", "ascend"), NV_HOST)
    assert "lazyllm doctor" in err.value.hint




@given(st.integers(1, 8), st.sampled_from(["runtime", "cdi"]))
def test_counts_render_the_same_number_of_gpus_everywhere(n, mode):
    r = gpu.render(GpuRequest("count", count=n), mode)
    if mode == "cdi":
        assert len(r.cdi_devices) == n
    else:
        assert r.device_requests[0]["count"] == n == r.reservations[0]["count"] == int(r.run_args[1])
