"""Will a GPU launch work on this host? Pure decisions over host facts, never a silent CPU fallback.

``gpu_route`` says how the engine hands NVIDIA GPUs to containers (``--gpus`` or CDI names) from ``host.GpuPlumbing``;
``lazyllm doctor`` reports the same answer. ``check_cuda_driver`` is the one place that decides whether a driver
runs a CUDA version (planning and launching both call it). ``check_driver`` refuses a launch that cannot work,
``check_compute_capability`` a GPU older than the framework supports.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

from ..errors import LaunchError
from ..host import GpuPlumbing, NvidiaFacts
from .spec import GpuRequest

DOCTOR_HINT = "run 'lazyllm doctor' to see what the host's GPU stack lacks"
TOOLKIT_FIX = ("install nvidia-container-toolkit, then 'sudo nvidia-ctk runtime configure --runtime=docker && "
               "sudo systemctl restart docker' (or 'sudo nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml')")
CDI_ON_FIX = ("turn CDI on in the engine: '\"features\": {\"cdi\": true}' in /etc/docker/daemon.json, then "
              "'sudo systemctl restart docker' (Docker 25 or newer); or give the engine --gpus: "
              "'sudo nvidia-ctk runtime configure --runtime=docker && sudo systemctl restart docker'")


@dataclass(frozen=True)
class GpuRoute:
    """How NVIDIA GPUs reach containers: ``mode`` runtime (``--gpus``), cdi (CDI names), or None (no way)."""

    mode: str | None
    summary: str
    fix: str | None = None


def _run_dir(path: str) -> str:
    path = posixpath.normpath(path)
    return "/run" + path[len("/var/run"):] if path == "/var/run" or path.startswith("/var/run/") else path


def _specs_seen(plumbing: GpuPlumbing) -> list[str]:
    """The nvidia.com/gpu specs in a folder the engine reads CDI specs from (none when CDI is off)."""
    dirs = {_run_dir(d) for d in plumbing.cdi_spec_dirs}
    return [s for s in plumbing.cdi_specs if posixpath.dirname(_run_dir(s)) in dirs]


def gpu_route(plumbing: GpuPlumbing) -> GpuRoute:
    """``--gpus`` when the engine serves it (nvidia-container-runtime-hook on its PATH; a registered ``nvidia``
    runtime comes with that hook), else CDI when the engine has CDI on and a spec declares nvidia.com/gpu."""
    via = ([f"--gpus ({plumbing.hook})"] if plumbing.hook else []) + \
        (["engine runtime 'nvidia'"] if "nvidia" in plumbing.runtimes else [])
    specs = _specs_seen(plumbing)
    if via:
        return GpuRoute("runtime", "GPUs reach containers through " + " and ".join(via)
                        + (f"; CDI also has {', '.join(specs)}" if specs else ""))
    if specs:
        return GpuRoute("cdi", f"GPUs reach containers through CDI ({', '.join(specs)})")
    if plumbing.cdi_specs and not plumbing.cdi_spec_dirs:
        return GpuRoute(None, f"a CDI spec declares nvidia.com/gpu ({', '.join(plumbing.cdi_specs)}) but the engine "
                        "has CDI off (GET /info lists no CDISpecDirs) and no nvidia-container-runtime-hook for --gpus",
                        CDI_ON_FIX)
    if plumbing.cdi_specs:
        return GpuRoute(None, f"the CDI spec {', '.join(plumbing.cdi_specs)} is outside the engine's CDI folders "
                        f"({', '.join(plumbing.cdi_spec_dirs)})",
                        f"'sudo nvidia-ctk cdi generate --output={plumbing.cdi_spec_dirs[0]}/nvidia.yaml'")
    return GpuRoute(None, "neither the engine's --gpus (nvidia-container-runtime-hook, the NVIDIA runtime) nor a "
                    "CDI spec for nvidia.com/gpu is set up", TOOLKIT_FIX)


def choose_gpu_mode(plumbing: GpuPlumbing, dry_run: bool = False) -> str:
    """The GPU mode for NVIDIA units: ``runtime`` or ``cdi``. No route is a LaunchError pointing at doctor; a dry
    run (which reads no engine) shows the ``--gpus`` form instead."""
    route = gpu_route(plumbing)
    if route.mode is None and not dry_run:
        raise LaunchError(f"GPUs are present but cannot reach containers: {route.summary}",
                          f"{route.fix}; {DOCTOR_HINT}")
    return route.mode or "runtime"


# ------------------------------------------------------------------ the driver and the devices

def _nums(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split(".") if p.isdigit())


def driver_runs_cuda(nvidia: NvidiaFacts, cuda: str, min_driver: str | None = None) -> bool | None:
    """Whether the host's driver runs CUDA ``cuda``: NVML's answer (the highest CUDA it runs), else the driver
    version against ``min_driver`` (recipes/compat/drivers.yaml); None when neither is known."""
    if nvidia.cuda_driver:
        return _nums(nvidia.cuda_driver)[:2] >= _nums(cuda)[:2]
    if nvidia.driver_version and min_driver:
        return _nums(nvidia.driver_version) >= _nums(min_driver)
    return None


def check_cuda_driver(cuda: str | None, nvidia: NvidiaFacts, *, min_driver: str | None = None, what: str = "the image",
                      why: str = "", error: type[Exception] = LaunchError) -> None:
    """The one check of "does this host's driver run this CUDA": ``error`` (LaunchError at launch, PlanError when
    planning) naming the driver, what it runs, the driver to install and the CUDA to plan for instead."""
    if not cuda or not nvidia.present or driver_runs_cuda(nvidia, cuda, min_driver) is not False:
        return
    runs = f"CUDA <= {nvidia.cuda_driver}" if nvidia.cuda_driver else f"older CUDA than {cuda}"
    raise error(f"the NVIDIA driver {nvidia.driver_version} runs {runs}, but {what} needs CUDA {cuda}{why}",
                (f"upgrade the driver to >= {min_driver}" if min_driver else "upgrade the driver")
                + (f", or plan for the CUDA it runs (--cuda {nvidia.cuda_driver})" if nvidia.cuda_driver else "")
                + f"; {DOCTOR_HINT}")


def check_driver(image_cuda: str | None, host: NvidiaFacts, gpus: GpuRequest, *, plumbing: GpuPlumbing,
                 mode: str | None = None, min_driver: str | None = None) -> None:
    """Raise LaunchError when an NVIDIA launch cannot work here: no GPU, missing GPUs, a driver older than the
    image's CUDA, or no way for the engine to hand GPUs to containers (``plumbing``). Nothing to check for CPU
    launches."""
    if not gpus.wants_gpu or gpus.vendor != "nvidia":
        return
    if not host.present or not host.gpus:
        raise LaunchError(f"GPUs were requested (--gpus {gpus.to_arg()}) but this host has no NVIDIA GPU "
                          f"({host.reason or 'none found'})",
                          f"{DOCTOR_HINT}; to run on the CPU say so: --gpus none, or --framework vllm-cpu")
    check_devices(host, gpus)
    check_cuda_driver(image_cuda, host, min_driver=min_driver)
    route = gpu_route(plumbing)
    if mode == "cdi" and not _specs_seen(plumbing):
        raise LaunchError("CDI mode was chosen but the engine sees no CDI spec for nvidia.com/gpu"
                          + (f": {route.summary}" if route.mode is None else ""),
                          f"{route.fix or CDI_ON_FIX}; {DOCTOR_HINT}")
    if route.mode is None:
        raise LaunchError(f"GPUs are present but cannot reach containers: {route.summary}",
                          f"{route.fix}; {DOCTOR_HINT}")


def check_devices(host: NvidiaFacts, gpus: GpuRequest) -> None:
    """The GPUs, MIG devices (0:1, MIG-...) or count asked for exist on this host."""
    have = len(host.gpus)
    if gpus.kind == "count" and gpus.count > have:
        raise LaunchError(f"--gpus {gpus.count} asks for more GPUs than this host has ({have})",
                          f"ask for at most {have}; {DOCTOR_HINT}")
    indexes = {str(g.index) for g in host.gpus}
    uuids = {g.uuid for g in host.gpus}
    migs = {m.device_id for m in host.mig_devices} | {m.uuid for m in host.mig_devices}
    for d in gpus.devices:
        if d.isdigit() and d not in indexes:
            raise LaunchError(f"there is no GPU {d} on this host (indexes: {', '.join(sorted(indexes))})",
                              DOCTOR_HINT)
        if d.startswith("GPU-") and d not in uuids:
            raise LaunchError(f"no GPU on this host has UUID {d}", DOCTOR_HINT)
        if (":" in d or d.startswith("MIG-")) and d not in migs:
            known = ", ".join(f"{m.device_id} ({m.uuid})" for m in host.mig_devices) or "none: no GPU is in MIG mode"
            raise LaunchError(f"there is no MIG device {d} on this host (MIG devices: {known})", DOCTOR_HINT)


def selected_gpus(host: NvidiaFacts, gpus: GpuRequest) -> list:
    """The host's GPUs a request selects (a MIG device: its GPU); unknown ids are ``check_devices``' business."""
    if gpus.kind == "all":
        return list(host.gpus)
    if gpus.kind == "count":
        return list(host.gpus[:gpus.count])
    by_id = {str(g.index): g for g in host.gpus} | {g.uuid: g for g in host.gpus}
    for m in host.mig_devices:
        by_id[m.device_id] = by_id[m.uuid] = by_id[str(m.gpu)]
    found = [by_id[d] for d in gpus.devices if d in by_id]
    return [g for i, g in enumerate(found) if g not in found[:i]]


def check_compute_capability(host: NvidiaFacts, gpus: GpuRequest, minimum: str | None, framework: str) -> None:
    """Raise when a GPU the request selects is below the framework's ``minimum`` (vllm needs 7.0)."""
    if not minimum or not gpus.wants_gpu or gpus.vendor != "nvidia" or not host.present:
        return
    old = [g for g in selected_gpus(host, gpus) if _nums(g.compute_capability) < _nums(minimum)]
    if old:
        names = ", ".join(f"GPU {g.index} {g.name} (compute capability {g.compute_capability})" for g in old)
        raise LaunchError(f"{framework} needs compute capability {minimum} or newer, and {names} "
                          f"{'is' if len(old) == 1 else 'are'} older",
                          "pick newer GPUs with --gpus device=N, another framework (e.g. --framework lmdeploy), "
                          f"or the CPU (--framework vllm-cpu); {DOCTOR_HINT}")
