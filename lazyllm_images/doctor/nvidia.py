"""NVIDIA driver and GPUs through NVML: driver version, highest CUDA, per-GPU facts."""

from . import OK, WARN, Check


def check(ctx: dict) -> Check:
    from ..host import nvidia_facts
    facts = nvidia_facts()
    ctx["nvidia"] = facts
    if not facts.present:
        if "not found" in facts.reason or "not installed" in facts.reason:
            return Check("nvidia", OK, f"no NVIDIA GPU ({facts.reason}): CPU stacks only",
                         data=facts.to_dict())
        return Check("nvidia", WARN, facts.reason,
                     "check the driver with 'nvidia-smi'; reinstall or reload it if that fails too",
                     data=facts.to_dict())
    gpus = ", ".join(f"{g.index}: {g.name} {g.memory_mib // 1024} GiB sm_{g.compute_capability.replace('.', '')}"
                     + (f" MIG [{' '.join(m.device_id for m in g.mig) or 'no devices'}]" if g.mig_enabled else "")
                     for g in facts.gpus)
    return Check("nvidia", OK, f"driver {facts.driver_version} (CUDA <= {facts.cuda_driver}); {gpus}",
                 data=facts.to_dict())
