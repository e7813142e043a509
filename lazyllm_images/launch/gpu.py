"""One GPU request -> every target, rendered the same way.

``resolve`` turns what the user said (``--gpus``, or nothing) into a concrete request for a framework on a host;
``render`` turns a concrete request into the pieces each target needs (engine device requests, ``docker run``
flags, CDI names, compose reservations, device nodes, env); ``k8s_limits`` gives the Kubernetes resource limits;
``container_mounts`` the mounts every renderer shows. Whether it can work on this host (``gpu_route``,
``check_driver``, ``check_compute_capability``) is ``gpu_checks``' business, re-exported here. Pure: host facts
come in as values.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Callable, Mapping, Sequence

from ..errors import LaunchError, UsageError
from ..host import HostFacts
from .gpu_checks import (DOCTOR_HINT, TOOLKIT_FIX, GpuRoute, check_compute_capability, check_cuda_driver,  # noqa: F401
                         check_devices, check_driver, choose_gpu_mode, driver_runs_cuda, gpu_route)
from .spec import GpuRequest, MountSpec, Ulimit, is_mig

MODES = ("runtime", "cdi")          # runtime: --gpus / DeviceRequest(driver=nvidia); cdi: nvidia.com/gpu=...
CDI_KIND = "nvidia.com/gpu"
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
            vendors: Sequence[str] = ("nvidia",), ascend_indexes: Sequence[int] = (),
            min_compute_capability: str | None = None) -> GpuRequest:
    """A concrete request for ``framework`` (``need``: required | optional | none) on ``host``.

    Nothing said (auto): all accelerators when the framework needs or can use them and the host has some,
    else none. An explicit request the framework cannot honour is a UsageError, never a quiet CPU run; NVIDIA
    GPUs below ``min_compute_capability`` (the framework's ``needs``) are a LaunchError naming them.
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
    check_compute_capability(host.nvidia, request, min_compute_capability, framework)
    return request


def ascend_indexes(device_paths: Sequence[str]) -> tuple[int, ...]:
    """``host.ascend_devices()`` paths (/dev/davinci3) -> NPU indexes, for ``resolve(..., ascend_indexes=...)``."""
    out = []
    for path in device_paths:
        tail = path.rsplit("/davinci", 1)[-1]
        if tail.isdigit():
            out.append(int(tail))
    return tuple(sorted(out))


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
    if any(is_mig(d) for d in request.devices):
        raise UsageError("MIG devices (0:1, MIG-...) are NVIDIA's; AMD GPUs are chosen by index or UUID",
                         "e.g. --gpus 0,1")
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


def with_device_groups(rendering: GpuRendering, device_gids: Mapping[str, Sequence[int]]) -> GpuRendering:
    """The ``--group-add`` names (HwHiAiUser, video, render) replaced by the numeric groups that own the
    rendering's device nodes on the host (``host.device_gids``): the image's /etc/group may lack the name, or give
    it another number. Root's group is never added. Without facts about these devices the names stay."""
    known = [d for d in rendering.devices if d in device_gids]
    if not known:
        return rendering
    gids: list[str] = []
    for d in known:
        gids += [str(g) for g in device_gids[d] if g != 0 and str(g) not in gids]
    args = list(rendering.run_args)
    while "--group-add" in args:
        i = args.index("--group-add")
        del args[i:i + 2]
    args += [a for g in gids for a in ("--group-add", g)]
    return replace(rendering, group_add=tuple(gids), run_args=tuple(args))


def container_mounts(spec_mounts: Sequence[MountSpec], extra: Sequence[MountSpec] = (),
                     path_exists: Callable[[str], bool] = os.path.exists) -> tuple[MountSpec, ...]:
    """The mounts a container gets, for every renderer: the spec's, then ``extra`` (a GPU rendering's driver
    mounts) at targets the spec leaves free; an ``optional`` bind whose host path ``path_exists`` denies is left
    out (the engine refuses a missing bind source)."""
    taken = {m.target for m in spec_mounts}
    out = list(spec_mounts) + [m for m in extra if m.target not in taken]
    return tuple(m for m in out if not (m.optional and m.kind == "bind" and not path_exists(m.source)))


def k8s_limits(request: GpuRequest) -> dict[str, int]:
    """``resources.limits`` for Kubernetes: a count only (the device plugin picks the devices)."""
    if not request.wants_gpu:
        return {}
    if request.kind == "count":
        return {K8S_RESOURCE[request.vendor]: request.count}
    if request.kind == "devices":
        if any(is_mig(d) for d in request.devices):
            raise UsageError(f"Kubernetes hands out MIG devices as resources such as nvidia.com/mig-1g.10gb, not "
                             f"by id ({request.to_arg()}); lazyllm cannot tell which profile that is",
                             "ask for a count (--gpus 1) and edit the resource to the MIG profile the device "
                             "plugin offers ('kubectl describe node' lists them)")
        if all(d.isdigit() for d in request.devices):
            raise UsageError(f"Kubernetes cannot pin GPUs by index ({request.to_arg()})",
                             f"ask for a count instead (--gpus {len(request.devices)}); the device plugin picks "
                             "which ones, and NVIDIA_VISIBLE_DEVICES is not honoured under it")
        raise UsageError("Kubernetes cannot pin GPUs by UUID",
                         f"ask for a count instead (--gpus {len(request.devices)}), or use a node selector")
    raise UsageError("Kubernetes needs a GPU count, not 'all'",
                     "ask for a count (e.g. --gpus 1); the device plugin hands out that many")


# ------------------------------------------------------------------ other accelerators on this host

def check_host(gpus: GpuRequest, host: HostFacts) -> None:
    """Raise LaunchError when AMD or Ascend accelerators are requested on a host without them (NVIDIA requests
    are checked by ``check_driver``)."""
    if gpus.wants_gpu and gpus.vendor == "amd" and not host.amd:
        raise LaunchError("AMD GPUs were requested but this host has no /dev/kfd", DOCTOR_HINT)
    if gpus.wants_gpu and gpus.vendor == "ascend" and not host.ascend:
        raise LaunchError("Ascend NPUs were requested but this host has no /dev/davinci device", DOCTOR_HINT)
