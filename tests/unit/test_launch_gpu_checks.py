"""Will a GPU launch work here: the engine's route for GPUs (--gpus or CDI), the driver against CUDA, the devices
asked for (MIG included), the framework's compute capability. Host facts are simulated values."""

from __future__ import annotations

import pytest

from lazyllm_images.doctor import FAIL, OK
from lazyllm_images.doctor.gpu_runtime import assess
from lazyllm_images.errors import LaunchError, PlanError
from lazyllm_images.host import Gpu, GpuPlumbing, HostFacts, MigDevice, NvidiaFacts
from lazyllm_images.launch import gpu
from lazyllm_images.launch.gpu_checks import check_cuda_driver, choose_gpu_mode, gpu_route
from lazyllm_images.launch.spec import GpuRequest
from lazyllm_images.requests import BuildOptions
from lazyllm_images.resolve import resolve

HOOK = "/usr/bin/nvidia-container-runtime-hook"
SPEC = "/etc/cdi/nvidia.yaml"
MIG = "MIG-0f4a6c4e-5a7e-5c2b-9f2e-1d3c5b7a9e0f"
A100 = Gpu(0, "GPU-aaaa", "NVIDIA A100", 40960, "8.0", mig_enabled=True,
           mig=(MigDevice(0, 0, "MIG-1111", "1g.5gb", 4864), MigDevice(0, 1, MIG, "1g.5gb", 4864)))
NV = NvidiaFacts(True, "", "535.104", "12.2", (A100, Gpu(1, "GPU-bbbb", "Tesla P100", 16280, "6.0")))


def info(runtimes=("runc",), cdi_dirs=None) -> dict:
    """The parts of the engine's GET /info that matter here (Docker 20.10 has no CDISpecDirs at all)."""
    out: dict = {"Runtimes": {r: {"path": r} for r in runtimes}}
    if cdi_dirs is not None:
        out["CDISpecDirs"] = list(cdi_dirs)
    return out


# ------------------------------------------------------------------ how GPUs reach containers

def test_the_hook_alone_serves_gpus():
    """Docker registers its nvidia device driver when nvidia-container-runtime-hook is on its PATH: no runtime."""
    plumbing = GpuPlumbing.from_info(info(), hook=HOOK)
    assert plumbing.runtimes == ("runc",) and gpu_route(plumbing).mode == "runtime"
    assert choose_gpu_mode(plumbing) == "runtime"
    gpu.check_driver("12.1", NV, GpuRequest.parse("device=1"), plumbing=plumbing, mode="runtime")
    assert gpu_route(GpuPlumbing.from_info(info(("runc", "nvidia")))).mode == "runtime"


@pytest.mark.parametrize("engine", [info(), info(cdi_dirs=[])], ids=["20.10: no CDISpecDirs", "25+: CDI off"])
def test_cdi_needs_the_engine_to_have_it_on(engine):
    plumbing = GpuPlumbing.from_info(engine, cdi_specs=[SPEC])
    route = gpu_route(plumbing)
    assert route.mode is None and "CDI off" in route.summary and '"cdi": true' in route.fix
    with pytest.raises(LaunchError, match="cannot reach containers") as err:
        choose_gpu_mode(plumbing)
    assert "lazyllm doctor" in err.value.hint
    assert choose_gpu_mode(plumbing, dry_run=True) == "runtime"        # a dry run shows the --gpus form
    with pytest.raises(LaunchError, match="CDI off"):
        gpu.check_driver("12.1", NV, GpuRequest.parse("all"), plumbing=plumbing, mode="cdi")


def test_cdi_when_on_with_a_spec_in_its_folders():
    on = GpuPlumbing.from_info(info(cdi_dirs=["/etc/cdi", "/var/run/cdi"]), cdi_specs=[SPEC, "/run/cdi/x.json"])
    assert gpu_route(on).mode == "cdi" and "/run/cdi/x.json" in gpu_route(on).summary     # /var/run is /run
    gpu.check_driver("12.1", NV, GpuRequest.parse("all"), plumbing=on, mode="cdi")
    elsewhere = GpuPlumbing.from_info(info(cdi_dirs=["/opt/cdi"]), cdi_specs=[SPEC])
    assert gpu_route(elsewhere).mode is None and "--output=/opt/cdi/nvidia.yaml" in gpu_route(elsewhere).fix
    both = GpuPlumbing.from_info(info(cdi_dirs=["/etc/cdi"]), hook=HOOK, cdi_specs=[SPEC])
    assert gpu_route(both).mode == "runtime"                            # --gpus first, as before


def test_nothing_set_up():
    route = gpu_route(GpuPlumbing.from_info(info(cdi_dirs=["/etc/cdi"])))
    assert route.mode is None and "nvidia-ctk" in route.fix


def test_doctor_says_what_launch_decides():
    off = GpuPlumbing.from_info(info(cdi_dirs=[]), cdi_specs=[SPEC])
    check = assess(NV, off)
    assert check.status == FAIL and check.summary.endswith(gpu_route(off).summary) and check.fix == gpu_route(off).fix
    ok = assess(NV, GpuPlumbing.from_info(info(), hook=HOOK))
    assert ok.status == OK and "--gpus" in ok.summary and ok.data["mode"] == "runtime"
    assert assess(NvidiaFacts(False, "no driver"), off).status == OK


# ------------------------------------------------------------------ the driver: one decision for plan and launch

def test_driver_without_nvml_cuda_uses_the_table():
    """When NVML gives no CUDA number, the driver version against recipes/compat/drivers.yaml decides."""
    old = NvidiaFacts(True, "", "535.104.05", None, (Gpu(0, "GPU-1", "T4", 15360, "7.5"),))
    with pytest.raises(PlanError, match="driver 535.104.05") as err:
        resolve(["chat"], BuildOptions(cuda="12.8"), host=HostFacts(nvidia=old))
    assert "570.26" in err.value.hint
    with pytest.raises(LaunchError, match="needs CUDA 12.8"):
        check_cuda_driver("12.8", old, min_driver="570.26")
    check_cuda_driver("12.1", old, min_driver="530.30.02")
    check_cuda_driver("12.8", old)                                      # nothing known: nothing refused


# ------------------------------------------------------------------ devices: MIG

def test_mig_devices_are_checked_against_the_host():
    for text in ("0:1", MIG, "0:0,1"):
        gpu.check_devices(NV, GpuRequest.parse(text))
    with pytest.raises(LaunchError, match="no MIG device 0:5") as err:
        gpu.check_devices(NV, GpuRequest.parse("device=0:5"))
    assert MIG in err.value.message
    with pytest.raises(LaunchError, match="no MIG device 1:0"):
        gpu.check_devices(NV, GpuRequest.parse("1:0"))                  # GPU 1 is not in MIG mode
    with pytest.raises(LaunchError, match="MIG-9999"):
        gpu.check_devices(NV, GpuRequest.parse("MIG-9999"))


# ------------------------------------------------------------------ compute capability

def resolve_for(text: str, host=HostFacts(nvidia=NV)):
    return gpu.resolve(GpuRequest.parse(text), "required", host, framework="vllm", min_compute_capability="7.0")


def test_compute_capability_names_the_gpu():
    with pytest.raises(LaunchError, match=r"vllm needs compute capability 7.0 .*GPU 1 Tesla P100 "
                                          r"\(compute capability 6.0\)") as err:
        resolve_for("all")
    assert "--gpus device=" in err.value.hint and "lazyllm doctor" in err.value.hint
    with pytest.raises(LaunchError, match="P100"):
        resolve_for("device=1")
    assert resolve_for("device=0").devices == ("0",)                    # only the GPUs asked for count
    assert resolve_for("1").count == 1 and resolve_for(MIG).devices == (MIG,)
    assert gpu.resolve(GpuRequest.parse("all"), "required", HostFacts(nvidia=NV), framework="lmdeploy").kind == "all"
