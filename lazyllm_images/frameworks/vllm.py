"""vLLM's OpenAI-compatible server (``python -m vllm.entrypoints.openai.api_server``).

Upstream LazyLLM started ``vllm.entrypoints.api_server`` (``/generate`` only), so OpenAI clients got 404s (issue
#485); this adapter always starts the OpenAI server.

Generation defaults become the server's own through ``--override-generation-config``: vLLM reads the keys
``temperature, top_p, top_k, min_p, repetition_penalty, max_new_tokens`` from it and turns ``max_new_tokens`` into
``max_tokens`` (``ModelConfig.get_diff_sampling_param`` in vllm/config/model.py). vLLM documents that
``max_new_tokens`` there also caps every request. ``presence_penalty``/``frequency_penalty`` are not read from it;
the chat page sends those with each request.
"""

from __future__ import annotations

import json

from ..errors import UsageError
from ..launch.spec import GpuRequest
from .base import Framework, Needs, _Parsed, option_table, python_module

# api_server flags (engine + frontend) gathered from vLLM's parsers, 0.6 to 0.11 era; check them against the
# --help of the pinned version. "!" switch, "*" several values.
OPTIONS = option_table("""
--tokenizer --tokenizer-mode --trust-remote-code! --dtype --seed --revision --code-revision --tokenizer-revision
--max-model-len --quantization --enforce-eager! --max-logprobs --logprobs-mode --disable-sliding-window!
--disable-cascade-attn! --skip-tokenizer-init! --enable-prompt-embeds! --config-format --hf-config-path
--hf-overrides --generation-config --override-generation-config --enable-sleep-mode! --model-impl
--override-attention-dtype --logits-processors* --pooler-config --override-pooler-config --runner --convert
--task --allowed-local-media-path --allowed-media-domains* --load-format --download-dir
--model-loader-extra-config --ignore-patterns* --use-tqdm-on-load! --pt-load-map-location
--distributed-executor-backend --pipeline-parallel-size --tensor-parallel-size --data-parallel-size
--data-parallel-rank --data-parallel-size-local --data-parallel-address --data-parallel-rpc-port
--data-parallel-backend --enable-expert-parallel! --enable-eplb! --max-parallel-loading-workers
--ray-workers-use-nsight! --disable-custom-all-reduce! --worker-cls --worker-extension-cls
--block-size --gpu-memory-utilization --kv-cache-memory-bytes --swap-space --kv-cache-dtype
--num-gpu-blocks-override --enable-prefix-caching! --no-enable-prefix-caching! --prefix-caching-hash-algo
--cpu-offload-gb --calculate-kv-scales! --mamba-cache-dtype --limit-mm-per-prompt --media-io-kwargs
--mm-processor-kwargs --mm-processor-cache-gb --disable-mm-preprocessor-cache! --mm-encoder-tp-mode
--interleave-mm-strings! --skip-mm-profiling! --enable-lora! --enable-lora-bias! --max-loras --max-lora-rank
--lora-extra-vocab-size --lora-dtype --max-cpu-loras --fully-sharded-loras! --lora-modules* --default-mm-loras
--max-num-batched-tokens --max-num-seqs --max-num-partial-prefills --max-long-partial-prefills
--long-prefill-token-threshold --cuda-graph-sizes* --num-lookahead-slots --scheduler-delay-factor
--preemption-mode --num-scheduler-steps --scheduling-policy --enable-chunked-prefill! --disable-chunked-mm-input!
--scheduler-cls --disable-hybrid-kv-cache-manager! --async-scheduling! --speculative-config
--kv-transfer-config --kv-events-config --compilation-config --additional-config --structured-outputs-config
--guided-decoding-backend --reasoning-parser --show-hidden-metrics-for-version --otlp-traces-endpoint
--collect-detailed-traces --disable-log-stats! --enable-log-requests! --disable-log-requests!
--enable-log-outputs! --max-log-len --uvicorn-log-level --disable-uvicorn-access-log! --allow-credentials!
--allowed-origins* --allowed-methods* --allowed-headers* --chat-template --chat-template-content-format
--response-role --root-path --middleware* --return-tokens-as-token-ids! --disable-frontend-multiprocessing!
--enable-request-id-headers! --enable-auto-tool-choice! --tool-call-parser --tool-parser-plugin
--disable-fastapi-docs! --enable-prompt-tokens-details! --enable-server-load-tracking!
--enable-force-include-usage! --api-server-count --device
""")
ALIASES = {"tp": "tensor_parallel_size", "pp": "pipeline_parallel_size", "trust_remote": "trust_remote_code",
           "max_num_batched_token": "max_num_batched_tokens"}
RESERVED = {
    "model": "the model is the positional MODEL of 'lazyllm deploy'",
    "served_model_name": "the served name is the model's name; lazyllm prints it with the URL",
    "host": "use lazyllm's --host (the address the port is published on)",
    "port": "use lazyllm's --port (the host port; the container port is fixed)",
    "ssl_keyfile": "serve TLS in front of the container (a reverse proxy)",
    "ssl_certfile": "serve TLS in front of the container (a reverse proxy)",
}
SECRETS = {"api_key": "VLLM_API_KEY", "hf_token": "HF_TOKEN"}
# vLLM's generation-config keys for our (OpenAI) names; others stay per request
SERVER_GENERATION = {"temperature": "temperature", "top_p": "top_p", "top_k": "top_k", "min_p": "min_p",
                     "repetition_penalty": "repetition_penalty", "max_tokens": "max_new_tokens"}


class Vllm(Framework):
    name = "vllm"
    health_path = "/health"
    needs = Needs(gpu="required", vendors=("nvidia", "amd"), shm_size="8g", min_compute_capability="7.0")
    OPTIONS = OPTIONS
    ALIASES = ALIASES
    RESERVED = RESERVED
    SECRETS = SECRETS
    generation_mode = "server"

    def base_argv(self, model_path: str, served_name: str, port: int, gpus: GpuRequest) -> list[str]:
        return python_module("vllm.entrypoints.openai.api_server", "--model", model_path, "--served-model-name",
                             served_name, "--host", "0.0.0.0", "--port", str(port))

    def default_options(self, gpus: GpuRequest, gpu_count: int | None) -> dict[str, str | bool]:
        out: dict[str, str | bool] = {"trust_remote_code": True}          # as upstream LazyLLM does
        if gpu_count and gpu_count > 1:
            out["tensor_parallel_size"] = str(gpu_count)                   # every GPU asked for is used
        return out

    def apply_generation(self, parsed: _Parsed, argv: list[str]) -> tuple[str, ...]:
        wanted = {SERVER_GENERATION[k]: v for k, v in parsed.generation.items() if k in SERVER_GENERATION}
        if not wanted:
            return ()
        flag = "--override-generation-config"
        config = {}
        if flag in argv:                       # the user's own JSON, merged under ours
            i = argv.index(flag)
            try:
                config = json.loads(argv[i + 1])
            except ValueError:
                raise UsageError(f"{flag} is not JSON: {argv[i + 1]!r}", 'e.g. {"temperature": 0.5}') from None
            del argv[i:i + 2]
        config.update(wanted)
        argv += [flag, json.dumps(config, sort_keys=True)]
        return tuple(k for k in parsed.generation if k in SERVER_GENERATION)
