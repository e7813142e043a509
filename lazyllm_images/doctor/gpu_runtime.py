"""Can containers get the GPUs: the engine's ``--gpus`` (nvidia-container-runtime-hook, the NVIDIA runtime), or CDI
turned on in the engine with a spec for nvidia.com/gpu? ``launch.gpu_checks.gpu_route`` decides, as at launch."""

from . import FAIL, OK, Check


def assess(nvidia, plumbing) -> Check:
    """The check for these facts (``host.NvidiaFacts`` or None, ``host.GpuPlumbing``): pure."""
    from ..launch.gpu_checks import gpu_route
    route = gpu_route(plumbing)
    data = {"runtimes": list(plumbing.runtimes), "hook": plumbing.hook, "cdi_spec_dirs": list(plumbing.cdi_spec_dirs),
            "cdi_specs": list(plumbing.cdi_specs), "nvidia_runtime": "nvidia" in plumbing.runtimes, "mode": route.mode}
    if nvidia is None or not nvidia.present:
        return Check("gpu-runtime", OK, "not needed (no NVIDIA GPU)", data=data)
    if route.mode is None:
        return Check("gpu-runtime", FAIL, f"GPUs present, but {route.summary}", route.fix, data=data)
    return Check("gpu-runtime", OK, route.summary + f" (lazyllm uses {'--gpus' if route.mode == 'runtime' else 'CDI'})",
                 data=data)


def check(ctx: dict) -> Check:
    from ..host import gpu_plumbing
    return assess(ctx.get("nvidia"), gpu_plumbing(ctx.get("engine_info")))
