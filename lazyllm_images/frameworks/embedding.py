"""The project's own embedding server (``python3 -m lazyllm_images.runtime.embed_server``).

OpenAI ``/v1/embeddings`` plus upstream LazyLLM's ``/generate``, or ``/v1/rerank`` (Cohere/Jina/infinity shape)
for a cross-encoder; health ``/healthz`` (503 until the model is loaded). Options as in
``lazyllm_images/runtime/embed_server/cli.py``; ``--device`` follows ``--gpus``.
"""

from __future__ import annotations

from ..launch.spec import GpuRequest
from .base import Framework, Needs, option_table, python_module

# lazyllm_images/runtime/embed_server/cli.py
OPTIONS = option_table("--task --batch-size --max-input-chars --no-normalize! --trust-remote-code! --log-level --dtype")
RESERVED = {
    "model": "the model is the positional MODEL of 'lazyllm deploy'",
    "served_model_name": "the served name is the model's name; lazyllm prints it with the URL",
    "host": "use lazyllm's --host (the address the port is published on)",
    "port": "use lazyllm's --port (the host port; the container port is fixed)",
    "device": "the device follows --gpus (none: cpu, otherwise cuda)",
}


class Embedding(Framework):
    name = "embedding"
    model_kinds = ("embed", "rerank")
    api_kind = "openai-embeddings"
    health_path = "/healthz"
    needs = Needs(gpu="optional", vendors=("nvidia", "amd"), shm_size="1g", read_only_rootfs=True)
    OPTIONS = OPTIONS
    RESERVED = RESERVED
    generation_mode = "reject"

    def base_argv(self, model_path: str, served_name: str, port: int, gpus: GpuRequest) -> list[str]:
        return python_module("lazyllm_images.runtime.embed_server", "--model", model_path, "--served-model-name",
                             served_name, "--host", "0.0.0.0", "--port", str(port), "--device",
                             "cuda" if gpus.wants_gpu else "cpu")
