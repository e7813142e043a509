"""Mapping the user's --key=value / --flag options to each framework's own flags."""

from __future__ import annotations

import pytest

from lazyllm_images.errors import UsageError
from lazyllm_images.frameworks import NAMES, get
from lazyllm_images.frameworks.base import option_table
from lazyllm_images.launch.spec import GpuRequest


def argv(name, options=(), flags=(), pass_unknown=False, gpus="none", vendor="nvidia", gpu_count=None):
    fw = get(name)
    return list(fw.server_argv("/model", "m", 8000, options, flags, pass_unknown,
                               gpus=GpuRequest.parse(gpus, vendor), gpu_count=gpu_count).argv)


def test_registry():
    assert set(NAMES) == {"vllm", "vllm-cpu", "lightllm", "lmdeploy", "infinity", "embedding", "mindie"}
    assert get("VLLM_CPU").name == "vllm-cpu"
    with pytest.raises(UsageError, match="unknown framework") as err:
        get("vlm")
    assert "vllm" in err.value.hint


def test_option_table():
    table = option_table("--max-model-len --trust-remote-code! --allowed-origins* --model_dir")
    assert table["max_model_len"].kind == "value" and table["trust_remote_code"].kind == "switch"
    assert table["allowed_origins"].kind == "list" and table["model_dir"].flag == "--model_dir"


@pytest.mark.parametrize("name,key,flag", [
    ("vllm", "tp", "--tensor-parallel-size"), ("vllm", "tensor_parallel_size", "--tensor-parallel-size"),
    ("vllm", "tensor-parallel-size", "--tensor-parallel-size"), ("vllm", "max_model_len", "--max-model-len"),
    ("vllm", "max_num_batched_tokens", "--max-num-batched-tokens"), ("vllm-cpu", "max_model_len", "--max-model-len"),
    ("lmdeploy", "max_batch_size", "--max-batch-size"), ("lmdeploy", "tp", "--tp"),
    ("lmdeploy", "cache_max_entry_count", "--cache-max-entry-count"),
    ("lightllm", "max_total_token_num", "--max_total_token_num"), ("lightllm", "tp", "--tp"),
    ("lightllm", "max-req-total-len", "--max_req_total_len"),
    ("infinity", "batch_size", "--batch-size"), ("infinity", "dtype", "--dtype"),
    ("embedding", "batch_size", "--batch-size"),
])
def test_value_options_use_the_framework_spelling(name, key, flag):
    got = argv(name, [(key, "4")], gpus="none" if name in ("vllm-cpu", "infinity", "embedding") else "all")
    assert got[got.index(flag) + 1] == "4"


def test_unknown_option_names_close_matches():
    with pytest.raises(UsageError, match="vllm has no option --max_modle_len") as err:
        argv("vllm", [("max_modle_len", "4096")], gpus="all")
    assert "--max-model-len" in err.value.hint and "--pass-unknown" in err.value.hint
    with pytest.raises(UsageError, match="lmdeploy has no option") as err:
        argv("lmdeploy", [("max_batch_sise", "8")], gpus="all")
    assert "--max-batch-size" in err.value.hint
    with pytest.raises(UsageError, match="no option --frobnicate") as err:
        argv("lightllm", flags=["frobnicate"], gpus="all")
    assert "did you mean" not in err.value.hint


def test_pass_unknown_hands_options_over_unchanged():
    got = argv("vllm", [("new_flag", "x y")], ["new-switch"], pass_unknown=True, gpus="all")
    assert got[-3:] == ["--new_flag", "x y", "--new-switch"]


def test_switches():
    assert "--enforce-eager" in argv("vllm", flags=["enforce_eager"], gpus="all")
    assert "--enforce-eager" in argv("vllm", [("enforce-eager", "true")], gpus="all")
    assert "--enforce-eager" not in argv("vllm", [("enforce_eager", "off")], gpus="all")
    # a switch the adapter adds by default can be turned off
    assert "--trust-remote-code" in argv("vllm", gpus="all")
    assert "--trust-remote-code" not in argv("vllm", [("trust_remote_code", "false")], gpus="all")
    assert "--enforce-eager" not in argv("vllm-cpu", [("enforce_eager", "0")])
    with pytest.raises(UsageError, match="is a switch"):
        argv("vllm", [("enforce_eager", "maybe")], gpus="all")


def test_value_option_without_value():
    with pytest.raises(UsageError, match="needs a value"):
        argv("vllm", flags=["dtype"], gpus="all")


def test_list_options():
    got = argv("vllm", [("allowed_origins", "http://a,http://b")], gpus="all")
    i = got.index("--allowed-origins")
    assert got[i + 1:i + 3] == ["http://a", "http://b"]
    with pytest.raises(UsageError, match="at least one"):
        argv("vllm", [("allowed_origins", ",")], gpus="all")


def test_duplicates_are_refused():
    with pytest.raises(UsageError, match="given twice"):
        argv("vllm", [("tp", "2"), ("tensor_parallel_size", "4")], gpus="all")


@pytest.mark.parametrize("name,key", [("vllm", "port"), ("vllm", "model"), ("vllm", "served-model-name"),
                                      ("lmdeploy", "server_port"), ("lmdeploy", "server-name"),
                                      ("lightllm", "model_dir"), ("infinity", "url_prefix"),
                                      ("infinity", "device"), ("embedding", "host"), ("lmdeploy", "api_keys")])
def test_reserved_options(name, key):
    with pytest.raises(UsageError, match="set by lazyllm") as err:
        argv(name, [(key, "x")], gpus="all" if name in ("vllm", "lmdeploy", "lightllm") else "none")
    assert err.value.hint


def test_secrets_never_reach_the_argv():
    fw = get("vllm")
    cmd = fw.server_argv("/model", "m", options=[("api_key", "s3cret"), ("hf_token", "hf_x")],
                         gpus=GpuRequest.parse("all"))
    assert "s3cret" not in cmd.argv and "hf_x" not in cmd.argv and not cmd.env
    assert cmd.secret_env == {"VLLM_API_KEY": "s3cret", "HF_TOKEN": "hf_x"}
    assert get("infinity").server_argv("/model", "m", options=[("api-key", "k")]).secret_env == \
        {"INFINITY_API_KEY": "k"}


def test_tensor_parallel_follows_the_gpus():
    assert argv("vllm", gpus="0,1")[-2:] == ["--tensor-parallel-size", "2"]
    assert "--tensor-parallel-size" not in argv("vllm", gpus="1")
    assert argv("vllm", gpus="all", gpu_count=4)[-2:] == ["--tensor-parallel-size", "4"]
    assert argv("vllm", [("tp", "1")], gpus="all", gpu_count=4)[-2:] == ["--tensor-parallel-size", "1"]
    assert argv("lmdeploy", gpus="3")[-2:] == ["--tp", "3"]
    assert argv("lightllm", gpus="2")[-2:] == ["--tp", "2"]


def test_base_commands():
    assert argv("vllm", gpus="1")[:11] == ["python3", "-m", "vllm.entrypoints.openai.api_server", "--model",
                                           "/model", "--served-model-name", "m", "--host", "0.0.0.0",
                                           "--port", "8000"]
    assert argv("lightllm", gpus="1")[:3] == ["python3", "-m", "lightllm.server.api_server"]
    assert argv("lmdeploy", gpus="1")[:4] == ["lmdeploy", "serve", "api_server", "/model"]
    assert argv("infinity")[:2] == ["infinity_emb", "v2"] and "--url-prefix" in argv("infinity")
    assert argv("embedding")[:3] == ["python3", "-m", "lazyllm_images.runtime.embed_server"]


def test_device_follows_gpus():
    got = argv("infinity", gpus="1")
    assert got[got.index("--device") + 1] == "cuda"
    got = argv("embedding")
    assert got[got.index("--device") + 1] == "cpu"


def test_vllm_cpu_defaults_and_env():
    fw = get("vllm-cpu")
    cmd = fw.server_argv("/model", "m")
    assert "--enforce-eager" in cmd.argv and cmd.argv[cmd.argv.index("--dtype") + 1] == "float32"
    assert cmd.env == {"VLLM_CPU_KVCACHE_SPACE": "1"}
    cmd = fw.server_argv("/model", "m", options=[("kvcache_space", "4"), ("dtype", "bfloat16")])
    assert cmd.env == {"VLLM_CPU_KVCACHE_SPACE": "4"} and cmd.argv[cmd.argv.index("--dtype") + 1] == "bfloat16"
    assert "--kvcache_space" not in cmd.argv
    with pytest.raises(UsageError, match="whole number"):
        fw.server_argv("/model", "m", options=[("kvcache_space", "lots")])
    assert fw.needs.cap_add == ("SYS_NICE",) and fw.needs.gpu == "none"


def test_lmdeploy_on_ascend():
    got = argv("lmdeploy", gpus="device=0", vendor="ascend")
    assert got[got.index("--device") + 1] == "ascend" and "--eager-mode" in got


def test_known_options_are_data():
    for name in NAMES:
        flags = get(name).known_options()
        assert flags == sorted(set(flags)) and all(f.startswith("--") for f in flags)
