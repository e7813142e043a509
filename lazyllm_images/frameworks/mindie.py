"""MindIE on Ascend NPUs: ``mindieservice_daemon`` reading ``$MINDIE_HOME/mindie-service/conf/config.json``.

Upstream LazyLLM rewrites that file in place (and restores a backup); here the adapter renders the whole file and
the launcher mounts it read-only over the image's copy. Options are config keys (upstream's ``auto_map``:
``tp`` -> ``worldSize``, ``max_seq_len`` -> ``maxSeqLen``, ...); ``--flag`` switches are refused as upstream does.
MindIE checks the file's owner and mode: the launcher writes it 0640, owned by the container's user (root).
The OpenAI routes are on (``openAiSupport: vllm``); generation defaults are sent by the chat page per request.
"""

from __future__ import annotations

import copy
import json
from typing import Sequence

from ..errors import UsageError
from ..launch.spec import GpuRequest
from .base import Framework, Needs, Option, ServerCommand

DEFAULT_HOME = "/usr/local/Ascend/mindie/latest"
# our option -> (where in config.json, type)
CONFIG_KEYS: dict[str, tuple[tuple[str, ...], type]] = {
    "tp": (("BackendConfig", "ModelDeployConfig", "ModelConfig", 0, "worldSize"), int),
    "max_seq_len": (("BackendConfig", "ModelDeployConfig", "maxSeqLen"), int),
    "max_input_token_len": (("BackendConfig", "ModelDeployConfig", "maxInputTokenLen"), int),
    "max_prefill_tokens": (("BackendConfig", "ScheduleConfig", "maxPrefillTokens"), int),
    "max_prefill_batch_size": (("BackendConfig", "ScheduleConfig", "maxPrefillBatchSize"), int),
    "max_batch_size": (("BackendConfig", "ScheduleConfig", "maxBatchSize"), int),
    "max_iter_times": (("BackendConfig", "ScheduleConfig", "maxIterTimes"), int),
    "cache_block_size": (("BackendConfig", "ScheduleConfig", "cacheBlockSize"), int),
    "npu_mem_size": (("BackendConfig", "ModelDeployConfig", "ModelConfig", 0, "npuMemSize"), int),
    "cpu_mem_size": (("BackendConfig", "ModelDeployConfig", "ModelConfig", 0, "cpuMemSize"), int),
    "mindie_home": ((), str),
}
ALIASES = {"world_size": "tp", "worldsize": "tp", "maxseqlen": "max_seq_len",
           "maxinputtokenlen": "max_input_token_len", "maxprefilltokens": "max_prefill_tokens"}
# upstream's defaults (lazyllm/components/deploy/mindie.py + mindie/config.json), TLS off
DEFAULT_CONFIG: dict = {
    "Version": "1.0.0",
    "LogConfig": {"logLevel": "Info", "logFileSize": 20, "logFileNum": 20, "logPath": "logs/mindservice.log"},
    "ServerConfig": {"ipAddress": "0.0.0.0", "managementIpAddress": "127.0.0.2", "port": 8000,
                     "managementPort": 1026, "metricsPort": 1027, "allowAllZeroIpListening": True,
                     "maxLinkNum": 1000, "httpsEnabled": False, "fullTextEnabled": False, "inferMode": "standard",
                     "interCommTLSEnabled": False, "interCommPort": 1121, "openAiSupport": "vllm"},
    "BackendConfig": {
        "backendName": "mindieservice_llm_engine", "modelInstanceNumber": 1, "npuDeviceIds": [[0]],
        "tokenizerProcessNumber": 8, "multiNodesInferEnabled": False, "multiNodesInferPort": 1120,
        "interNodeTLSEnabled": False,
        "ModelDeployConfig": {"maxSeqLen": 64000, "maxInputTokenLen": 4096, "truncation": True,
                              "ModelConfig": [{"modelInstanceType": "Standard", "modelName": "",
                                               "modelWeightPath": "", "worldSize": 1, "cpuMemSize": 5,
                                               "npuMemSize": -1, "backendType": "atb",
                                               "trust_remote_code": True}]},
        "ScheduleConfig": {"templateType": "Standard", "templateName": "Standard_LLM", "cacheBlockSize": 128,
                           "maxPrefillBatchSize": 50, "maxPrefillTokens": 8192, "prefillTimeMsPerReq": 150,
                           "prefillPolicyType": 0, "decodeTimeMsPerReq": 50, "decodePolicyType": 0,
                           "maxBatchSize": 200, "maxIterTimes": 512, "maxPreemptCount": 0,
                           "supportSelectBatch": False, "maxQueueDelayMicroseconds": 5000},
    },
}


def _set(config: dict, path: tuple, value) -> None:
    node = config
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value


class Mindie(Framework):
    name = "mindie"
    health_path = "/v1/models"
    needs = Needs(gpu="required", vendors=("ascend",), shm_size="1g", non_root=False)
    OPTIONS = {k: Option(f"--{k}") for k in CONFIG_KEYS}
    ALIASES = ALIASES
    RESERVED = {"port": "use lazyllm's --port (the host port; the container port is fixed)",
                "host": "use lazyllm's --host (the address the port is published on)",
                "config": "options are written into the generated config.json; pass its keys (e.g. --tp=2)"}
    generation_mode = "request"

    def server_argv(self, model_path: str, served_name: str, port: int | None = None,
                    options: Sequence[tuple[str, str]] = (), flags: Sequence[str] = (),
                    pass_unknown: bool = False, *, gpus: GpuRequest | None = None,
                    gpu_count: int | None = None) -> ServerCommand:
        if flags:
            raise UsageError(f"mindie takes no --flag switches (got --{flags[0]})", "pass config keys as --key=value")
        if pass_unknown:
            raise UsageError("mindie takes no --pass-unknown: every option is checked against its config keys",
                             "drop --pass-unknown")
        gpus = gpus or GpuRequest.none()
        parsed = self.parse_options(options, (), False)
        home = str(parsed.options.pop("mindie_home", DEFAULT_HOME)).rstrip("/")
        config = copy.deepcopy(DEFAULT_CONFIG)
        _set(config, ("ServerConfig", "port"), port or self.container_port)
        model = config["BackendConfig"]["ModelDeployConfig"]["ModelConfig"][0]
        model.update(modelName=served_name, modelWeightPath=model_path)
        for key, value in parsed.options.items():
            path, kind = CONFIG_KEYS[key]
            try:
                _set(config, path, kind(value))
            except ValueError:
                raise UsageError(f"--{key}={value} is not a whole number", f"e.g. --{key}=2") from None
        world = model["worldSize"] if "tp" in parsed.options else (gpu_count or gpus.size or 1)
        model["worldSize"] = world
        config["BackendConfig"]["npuDeviceIds"] = [list(range(world))]
        path = f"{home}/mindie-service/conf/config.json"
        return ServerCommand(argv=(f"{home}/mindie-service/bin/mindieservice_daemon",),
                             generation=parsed.generation, files=((path, json.dumps(config, indent=2) + "\n"),))

    def base_argv(self, model_path: str, served_name: str, port: int, gpus: GpuRequest) -> list[str]:
        return []
