"""One GPU request -> every target, rendered the same way.

``resolve`` turns what the user said (``--gpus``, or nothing) into a concrete request for a framework on a host;
``render`` turns a concrete request into the pieces each target needs (engine device requests, ``docker run``
flags, CDI names, compose reservations, device nodes, env); ``k8s_limits`` gives the Kubernetes resource limits;
``check_driver`` refuses a launch that cannot work (never a silent CPU fallback). Pure: host facts come in as values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

from ..errors import LaunchError, UsageError
from ..host import HostFacts, NvidiaFacts
from .spec import GpuRequest, MountSpec, Ulimit

MODES = ("runtime", "cdi")          # runtime: --gpus / DeviceRequest(driver=nvidia); cdi: nvidia.com/gpu=...
CDI_KIND = "nvidia.com/gpu"
DOCTOR_HINT = "run 'lazyllm doctor' to see what the host's GPU stack lacks"
TOOLKIT_FIX = ("install nvidia-container-toolkit, then 'sudo nvidia-ctk runtime configure --runtime=docker && "
               "sudo systemctl restart docker' (or 'sudo nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml')")
GPU_ULIMITS = (Ulimit("memlock", -1, -1), Ulimit("stack", 67108864, 67108864))
AMD_DEVICES = ("/dev/kfd", "/dev/dri")
AMD_GROUPS = ("video", "render")
ASCEND_CONTROL = ("/dev/davinci_manager", "/dev/devmm_svm", "/dev/hisi_hdc")
ASCEND_GROUP = "HwHiAiUser"
ASCEND_DRIVER_MOUNTS = (
    MountSpec("bind", "/usr/local/Ascend/driver", "/usr/local/Ascend/driver", read_only=True, purpose="driver"),
    MountSpec("bind", "/usr/local/dcmi", "/usr/local/dcmi", read_only=True, purpose="driver", optional=True),
    MountSpec("bind", "/usr/local/sbin/npu-smi", "/usr/local/sbin/npu-smi", read_only=True, purpose="driver",
              optional=True),
    MountSpec("bind", "/etc/ascend_install.info", "/etc/ascend_install.info", read_only=True, purpose="driver",
              optional=True),
)
K8S_RESOURCE = {"nvidia": "nvidia.com/gpu", "amd": "amd.com/gpu", "ascend": "huawei.com/Ascend910"}


@dataclass(frozen=True)
class GpuRendering:
    """What one concrete request becomes for the docker-like targets (engine API, ``docker run``, compose)."""

    env: dict[str, str]
    device_requests: tuple[dict, ...] = ()     # docker-py DeviceRequest keyword dicts
    run_args: tuple[str, ...] = ()             # the equivalent ``docker run`` flags
    cdi_devices: tuple[str, ...] = ()          # compose ``devices:`` entries in CDI mode
    reservations: tuple[dict, ...] = ()        # compose deploy.resources.reservations.devices
    devices: tuple[str, ...] = ()              # host device nodes (AMD, Ascend)
    group_add: tuple[str, ...] = ()
    mounts: tuple[MountSpec, ...] = ()


# ------------------------------------------------------------------ request -> concrete request

def host_vendor(host: HostFacts) -> str | None:
    """The accelerator family a host offers, NVIDIA first."""
    if host.nvidia.present:
        return "nvidia"
    if host.amd:
        return "amd"
    if host.ascend:
        return "ascend"
    return None


def resolve(request: GpuRequest, need: str, host: HostFacts, *, framework: str,
            vendors: Sequence[str] = ("nvidia",), ascend_indexes: Sequence[int] = ()) -> GpuRequest:
    """A concrete request for ``framework`` (``need``: required | optional | none) on ``host``.

    Nothing said (auto): all accelerators when the framework needs or can use them and the host has some,
    else none. An explicit request the framework cannot honour is a UsageError, never a quiet CPU run.
    """
    vendor = host_vendor(host)
    if request.kind == "auto":
        if need == "none" or (need == "optional" and (vendor is None or vendor not in vendors)):
            return GpuRequest.none(request.vendor)
        if vendor is None:
            raise LaunchError(f"{framework} needs a GPU and this host has none ({host.nvidia.reason or 'no GPU'})",
                              f"{DOCTOR_HINT}; on a CPU-only host use a CPU framework (e.g. --framework vllm-cpu)")
        request = GpuRequest("all", vendor=vendor, capabilities=request.capabilities)
    elif request.wants_gpu and vendor is not None and request.vendor != vendor:
        request = GpuRequest(request.kind, request.count, request.devices, vendor, request.capabilities)
    if request.kind == "none" and need == "required":
        raise UsageError(f"{framework} cannot run without a GPU (--gpus none)",
                         "drop --gpus none, or pick a CPU framework (e.g. --framework vllm-cpu)")
    if request.wants_gpu and need == "none":
        raise UsageError(f"{framework} runs on the CPU only; it cannot use --gpus {request.to_arg()}",
                         "drop --gpus, or pick a GPU framework (e.g. --framework vllm)")
    if request.wants_gpu and request.vendor not in vendors:
        raise UsageError(f"{framework} does not run on {request.vendor} accelerators",
                         f"it supports: {', '.join(vendors)}")
    if request.vendor == "ascend" and request.kind == "all":
        if not ascend_indexes:
            raise LaunchError("no Ascend NPU found for --gpus all", DOCTOR_HINT)
        request = GpuRequest("devices", devices=tuple(str(i) for i in ascend_indexes), vendor="ascend")
    return request


def ascend_indexes(device_paths: Sequence[str]) -> tuple[int, ...]:
    """``host.ascend_devices()`` paths (/dev/davinci3) -> NPU indexes, for ``resolve(..., ascend_indexes=...)``."""
    out = []
    for path in device_paths:
        tail = path.rsplit("/davinci", 1)[-1]
        if tail.isdigit():
            out.append(int(tail))
    return tuple(sorted(out))


def choose_mode(nvidia_runtime: bool, cdi_specs: Sequence[str]) -> str:
    """The engine's NVIDIA runtime when registered (``--gpus``), else CDI names when a spec exists."""
    return "runtime" if nvidia_runtime or not cdi_specs else "cdi"


# ------------------------------------------------------------------ concrete request -> targets

def render(request: GpuRequest, mode: str = "runtime") -> GpuRendering:
    if mode not in MODES:
        raise ValueError(f"GPU mode {mode!r} is not one of {MODES}")
    if request.kind == "auto":
        raise ValueError("resolve the GPU request (gpu.resolve) before rendering it")
    if not request.wants_gpu:
        # images built FROM nvidia/cuda carry NVIDIA_VISIBLE_DEVICES=all; void keeps a CPU container GPU-free
        return GpuRendering(env={"NVIDIA_VISIBLE_DEVICES": "void"} if request.vendor == "nvidia" else {})
    if request.vendor == "amd":
        return _render_amd(request)
    if request.vendor == "ascend":
        return _render_ascend(request)
    env = {"NVIDIA_DRIVER_CAPABILITIES": ",".join(request.capabilities)}
    if mode == "cdi":
        names = cdi_names(request)
        return GpuRendering(env=env, cdi_devices=names,
                            device_requests=({"driver": "cdi", "device_ids": list(names)},),
                            run_args=tuple(a for n in names for a in ("--device", n)))
    return GpuRendering(env=env, device_requests=(_device_request(request),), run_args=("--gpus", gpus_flag(request)),
                        reservations=(_reservation(request),))


def gpus_flag(request: GpuRequest) -> str:
    """The ``docker run --gpus`` value: all, 2, or "device=0,1" (quotes included: the CLI reads it as CSV)."""
    if request.kind == "all":
        return "all"
    if request.kind == "count":
        return str(request.count)
    return f'"device={",".join(request.devices)}"'


def cdi_names(request: GpuRequest) -> tuple[str, ...]:
    """CDI device names. A count becomes the first N indexes (CDI has no counts)."""
    if request.kind == "all":
        return (f"{CDI_KIND}=all",)
    ids = [str(i) for i in range(request.count)] if request.kind == "count" else list(request.devices)
    return tuple(f"{CDI_KIND}={i}" for i in ids)


def _device_request(request: GpuRequest) -> dict:
    out: dict = {"driver": "nvidia", "capabilities": [["gpu"]]}
    if request.kind == "devices":
        out["device_ids"] = list(request.devices)
    else:
        out["count"] = -1 if request.kind == "all" else request.count
    return out


def _reservation(request: GpuRequest) -> dict:
    out: dict = {"driver": "nvidia"}
    if request.kind == "devices":
        out["device_ids"] = list(request.devices)
    else:
        out["count"] = "all" if request.kind == "all" else request.count
    out["capabilities"] = ["gpu"]
    return out


def _render_amd(request: GpuRequest) -> GpuRendering:
    env = {}
    if request.kind != "all":
        ids = [str(i) for i in range(request.count)] if request.kind == "count" else list(request.devices)
        env["ROCR_VISIBLE_DEVICES"] = ",".join(ids)       # indexes or GPU- UUIDs
    return GpuRendering(env=env, devices=AMD_DEVICES, group_add=AMD_GROUPS,
                        run_args=_device_args(AMD_DEVICES, AMD_GROUPS))


def _render_ascend(request: GpuRequest) -> GpuRendering:
    if request.kind == "count":
        ids = [str(i) for i in range(request.count)]
    elif request.kind == "devices":
        ids = list(request.devices)
    else:
        raise ValueError("resolve --gpus all into Ascend device indexes first (gpu.resolve)")
    if not all(i.isdigit() for i in ids):
        raise UsageError("Ascend NPUs are chosen by index", "e.g. --gpus 0,1")
    devices = tuple(f"/dev/davinci{i}" for i in ids) + ASCEND_CONTROL
    return GpuRendering(env={}, devices=devices, group_add=(ASCEND_GROUP,), mounts=ASCEND_DRIVER_MOUNTS,
                        run_args=_device_args(devices, (ASCEND_GROUP,)))


def _device_args(devices: Sequence[str], groups: Sequence[str]) -> tuple[str, ...]:
    return tuple(a for d in devices for a in ("--device", d)) + tuple(a for g in groups for a in ("--group-add", g))


def with_group_ids(rendering: GpuRendering, gids: Mapping[str, int]) -> GpuRendering:
    """Swap group names for the host's numeric ids (a name must exist in the image's /etc/group)."""
    groups = tuple(str(gids.get(g, g)) for g in rendering.group_add)
    args = list(rendering.run_args)
    for i, a in enumerate(args[:-1]):
        if a == "--group-add":
            args[i + 1] = str(gids.get(args[i + 1], args[i + 1]))
    return GpuRendering(rendering.env, rendering.device_requests, tuple(args), rendering.cdi_devices,
                        rendering.reservations, rendering.devices, groups, rendering.mounts)


def k8s_limits(request: GpuRequest) -> dict[str, int]:
    """``resources.limits`` for Kubernetes: a count only (the device plugin picks the devices)."""
    if not request.wants_gpu:
        return {}
    if request.kind == "count":
        return {K8S_RESOURCE[request.vendor]: request.count}
    if request.kind == "devices":
        if all(d.isdigit() for d in request.devices):
            raise UsageError(f"Kubernetes cannot pin GPUs by index ({request.to_arg()})",
                             f"ask for a count instead (--gpus {len(request.devices)}); the device plugin picks "
                             "which ones, and NVIDIA_VISIBLE_DEVICES is not honoured under it")
        raise UsageError("Kubernetes cannot pin GPUs by UUID",
                         f"ask for a count instead (--gpus {len(request.devices)}), or use a node selector")
    raise UsageError("Kubernetes needs a GPU count, not 'all'",
                     "ask for a count (e.g. --gpus 1); the device plugin hands out that many")


# ------------------------------------------------------------------ will it work on this host?

def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split(".")[:2] if p.isdigit())


def check_driver(image_cuda: str | None, host: NvidiaFacts, gpus: GpuRequest, *, nvidia_runtime: bool,
                 cdi_specs: Sequence[str] = (), mode: str | None = None) -> None:
    """Raise LaunchError when an NVIDIA launch cannot work here: no GPU, missing GPUs, a driver older than the
    image's CUDA, or no way for the engine to hand GPUs to containers. Nothing to check for CPU launches."""
    if not gpus.wants_gpu or gpus.vendor != "nvidia":
        return
    if not host.present or not host.gpus:
        raise LaunchError(f"GPUs were requested (--gpus {gpus.to_arg()}) but this host has no NVIDIA GPU "
                          f"({host.reason or 'none found'})",
                          f"{DOCTOR_HINT}; to run on the CPU say so: --gpus none, or --framework vllm-cpu")
    _check_devices(host, gpus)
    if image_cuda and host.cuda_driver and _version(host.cuda_driver) < _version(image_cuda):
        raise LaunchError(f"the image needs CUDA {image_cuda} but the NVIDIA driver {host.driver_version} runs "
                          f"CUDA {host.cuda_driver} at most",
                          f"upgrade the driver, or install for an older CUDA (lazyllm install --cuda "
                          f"{host.cuda_driver} ...); {DOCTOR_HINT}")
    if mode == "cdi" and not cdi_specs:
        raise LaunchError("CDI mode was chosen but no CDI spec declares nvidia.com/gpu",
                          f"'sudo nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml'; {DOCTOR_HINT}")
    if not nvidia_runtime and not cdi_specs:
        raise LaunchError("GPUs are present but the engine has neither the NVIDIA runtime nor a CDI spec",
                          f"{TOOLKIT_FIX}; {DOCTOR_HINT}")


def check_host(gpus: GpuRequest, host: HostFacts) -> None:
    """Raise LaunchError when AMD or Ascend accelerators are requested on a host without them (NVIDIA requests
    are checked by ``check_driver``)."""
    if gpus.wants_gpu and gpus.vendor == "amd" and not host.amd:
        raise LaunchError("AMD GPUs were requested but this host has no /dev/kfd", DOCTOR_HINT)
    if gpus.wants_gpu and gpus.vendor == "ascend" and not host.ascend:
        raise LaunchError("Ascend NPUs were requested but this host has no /dev/davinci device", DOCTOR_HINT)


def _check_devices(host: NvidiaFacts, gpus: GpuRequest) -> None:
    have = len(host.gpus)
    if gpus.kind == "count" and gpus.count > have:
        raise LaunchError(f"--gpus {gpus.count} asks for more GPUs than this host has ({have})",
                          f"ask for at most {have}; {DOCTOR_HINT}")
    indexes = {str(g.index) for g in host.gpus}
    uuids = {g.uuid for g in host.gpus}
    for d in gpus.devices:
        if d.isdigit() and d not in indexes:
            raise LaunchError(f"there is no GPU {d} on this host (indexes: {', '.join(sorted(indexes))})",
                              DOCTOR_HINT)
        if d.startswith("GPU-") and d not in uuids:
            raise LaunchError(f"no GPU on this host has UUID {d}", DOCTOR_HINT)


def check_compute_capability(host: NvidiaFacts, minimum: str, framework: str) -> None:
    """Raise when no visible GPU reaches ``minimum`` (e.g. vllm needs 7.0)."""
    best = max((_version(g.compute_capability) for g in host.gpus), default=())
    if host.present and best and best < _version(minimum):
        names = ", ".join(sorted({f"{g.name} ({g.compute_capability})" for g in host.gpus}))
        raise LaunchError(f"{framework} needs compute capability {minimum} or newer; this host has {names}",
                          f"use another framework (e.g. --framework lmdeploy) or the CPU (--framework vllm-cpu); "
                          f"{DOCTOR_HINT}")
