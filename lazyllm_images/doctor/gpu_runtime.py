"""Can containers get the GPUs: the NVIDIA runtime in the engine, or a CDI spec for nvidia.com/gpu?"""

from . import FAIL, OK, Check

FIX = ("install nvidia-container-toolkit, then 'sudo nvidia-ctk runtime configure --runtime=docker && "
       "sudo systemctl restart docker' (or 'sudo nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml')")


def check(ctx: dict) -> Check:
    from ..host import cdi_nvidia_specs
    nvidia = ctx.get("nvidia")
    info = ctx.get("engine_info") or {}
    runtimes = sorted((info.get("Runtimes") or {}).keys())
    specs = cdi_nvidia_specs()
    data = {"runtimes": runtimes, "cdi_specs": specs, "nvidia_runtime": "nvidia" in runtimes}
    if nvidia is None or not nvidia.present:
        return Check("gpu-runtime", OK, "not needed (no NVIDIA GPU)", data=data)
    if "nvidia" in runtimes or specs:
        how = []
        if "nvidia" in runtimes:
            how.append("engine runtime 'nvidia'")
        if specs:
            how.append("CDI " + ", ".join(specs))
        return Check("gpu-runtime", OK, "GPUs reach containers through " + " and ".join(how), data=data)
    return Check("gpu-runtime", FAIL, "GPUs present but neither the NVIDIA runtime nor a CDI spec is configured",
                 FIX, data=data)
