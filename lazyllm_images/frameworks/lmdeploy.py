"""LMDeploy (``lmdeploy serve api_server MODEL``): OpenAI ``/v1/chat/completions`` and ``/v1/models``.

Upstream LazyLLM maps ``max_batch_size`` -> ``--max-batch-size`` and passes ``--device ascend --eager-mode`` on
Ascend; both are kept. Its ``api_server`` has no flag for sampling defaults (checked against the ``--help`` of a
2025 release and its parser in lmdeploy/cli/serve.py), so the chat page sends generation defaults per request.
``--api-keys`` would put keys on the command line (visible in ``docker inspect``): refused.
"""

from __future__ import annotations

from ..launch.spec import GpuRequest
from .base import Framework, Needs, option_table

# lmdeploy serve api_server --help (a 2025 release)
OPTIONS = option_table("""
--allow-origins* --allow-credentials! --allow-methods* --allow-headers* --proxy-url --max-concurrent-requests
--backend --log-level --max-log-len --disable-fastapi-docs! --allow-terminate-by-client! --chat-template
--tool-call-parser --reasoning-parser --revision --download-dir --adapters* --device --eager-mode! --dtype --tp
--session-len --max-batch-size --cache-max-entry-count --cache-block-seq-len --enable-prefix-caching!
--max-prefill-token-num --quant-policy --model-format --dp --ep --enable-microbatch! --enable-eplb! --role
--migration-backend --node-rank --nnodes --rope-scaling-factor --num-tokens-per-iter --max-prefill-iters
--communicator --vision-max-batch-size
""")
RESERVED = {
    "model_path": "the model is the positional MODEL of 'lazyllm deploy'",
    "model_name": "the served name is the model's name; lazyllm prints it with the URL",
    "server_name": "use lazyllm's --host (the address the port is published on)",
    "server_port": "use lazyllm's --port (the host port; the container port is fixed)",
    "host": "use lazyllm's --host (the address the port is published on)",
    "port": "use lazyllm's --port (the host port; the container port is fixed)",
    "api_keys": "keys on the command line show in 'docker inspect'; put an authenticating proxy in front",
    "ssl": "serve TLS in front of the container (a reverse proxy)",
}


class Lmdeploy(Framework):
    name = "lmdeploy"
    health_path = "/v1/models"
    needs = Needs(gpu="required", vendors=("nvidia", "ascend"), shm_size="8g")
    OPTIONS = OPTIONS
    RESERVED = RESERVED
    generation_mode = "request"

    def base_argv(self, model_path: str, served_name: str, port: int, gpus: GpuRequest) -> list[str]:
        return ["lmdeploy", "serve", "api_server", model_path, "--model-name", served_name, "--server-name",
                "0.0.0.0", "--server-port", str(port)]

    def default_options(self, gpus: GpuRequest, gpu_count: int | None) -> dict[str, str | bool]:
        out: dict[str, str | bool] = {}
        if gpus.vendor == "ascend" and gpus.wants_gpu:
            out.update(device="ascend", eager_mode=True)
        if gpu_count and gpu_count > 1:
            out["tp"] = str(gpu_count)
        return out
