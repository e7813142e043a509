"""Infinity (``infinity_emb v2``): OpenAI ``/v1/embeddings`` (with ``--url-prefix /v1``), ``/v1/rerank``,
``/health`` (not under the prefix).

Seen working here with infinity-emb 0.0.78 on the CPU (shared/ENVIRONMENT.md). It needs a writable
``INFINITY_HOME``: it points into the container's /tmp tmpfs. Its PostHog start-up telemetry is switched off
(``INFINITY_ANONYMOUS_USAGE_STATS=0``). ``--device`` follows ``--gpus``; ``--api-key`` travels as
``INFINITY_API_KEY`` (infinity reads every option from ``INFINITY_*``) on stdin.
"""

from __future__ import annotations

from ..launch.spec import SCRATCH, GpuRequest
from .base import Framework, Needs, option_table

# infinity_emb v2 --help (0.0.7x). Typer booleans come as --x/--no-x pairs.
OPTIONS = option_table("""
--batch-size --revision --trust-remote-code! --no-trust-remote-code! --engine --model-warmup! --no-model-warmup!
--vector-disk-cache! --no-vector-disk-cache! --device-id --lengths-via-tokenize! --no-lengths-via-tokenize!
--dtype --embedding-dtype --pooling-method --compile! --no-compile! --bettertransformer! --no-bettertransformer!
--redirect-slash --log-level --permissive-cors! --no-permissive-cors! --proxy-root-path
""")
RESERVED = {
    "model_id": "the model is the positional MODEL of 'lazyllm deploy'",
    "served_model_name": "the served name is the model's name; lazyllm prints it with the URL",
    "host": "use lazyllm's --host (the address the port is published on)",
    "port": "use lazyllm's --port (the host port; the container port is fixed)",
    "url_prefix": "the API is served under /v1 (OpenAI style)",
    "device": "the device follows --gpus (none: cpu, otherwise cuda)",
    "preload_only": "not a serving mode",
}


class Infinity(Framework):
    name = "infinity"
    model_kinds = ("embed", "rerank")
    api_kind = "openai-embeddings"
    health_path = "/health"
    needs = Needs(gpu="optional", vendors=("nvidia", "amd"), shm_size="1g", read_only_rootfs=True)
    OPTIONS = OPTIONS
    RESERVED = RESERVED
    SECRETS = {"api_key": "INFINITY_API_KEY"}
    generation_mode = "reject"

    def base_argv(self, model_path: str, served_name: str, port: int, gpus: GpuRequest) -> list[str]:
        return ["infinity_emb", "v2", "--model-id", model_path, "--served-model-name", served_name,
                "--device", "cuda" if gpus.wants_gpu else "cpu", "--host", "0.0.0.0", "--port", str(port),
                "--url-prefix", "/v1"]

    def default_options(self, gpus: GpuRequest, gpu_count: int | None) -> dict[str, str | bool]:
        return {"engine": "torch"}

    def default_env(self, gpus: GpuRequest) -> dict[str, str]:
        return {"INFINITY_HOME": f"{SCRATCH}/infinity", "INFINITY_ANONYMOUS_USAGE_STATS": "0", "DO_NOT_TRACK": "1"}
