"""--framework auto: model kind detection and the framework choice (never a silent CPU fallback)."""

from __future__ import annotations

import json

import pytest

from lazyllm_images.errors import LaunchError
from lazyllm_images.frameworks import auto
from lazyllm_images.host import Gpu, HostFacts, NvidiaFacts

NO_GPU = NvidiaFacts(False, "no NVIDIA driver (NVML library not found)")


def nvidia(cc: str = "9.0", n: int = 1) -> HostFacts:
    return HostFacts(nvidia=NvidiaFacts(True, "", "550", "12.4", tuple(
        Gpu(i, f"GPU-{i}", "NVIDIA X", 24000, cc) for i in range(n))))


@pytest.mark.parametrize("kind,host,expected", [
    ("llm", nvidia("8.0"), "vllm"), ("llm", nvidia("7.0"), "vllm"),
    ("llm", HostFacts(nvidia=NO_GPU), "vllm-cpu"),
    ("llm", HostFacts(nvidia=NO_GPU, ascend=True, arch="aarch64"), "lmdeploy"),
    ("llm", HostFacts(nvidia=NO_GPU, amd=True), "vllm"),
    ("embed", nvidia(), "embedding"), ("rerank", HostFacts(nvidia=NO_GPU), "embedding"),
])
def test_choose(kind, host, expected):
    assert auto.choose(kind, host) == expected


def test_infinity_when_asked():
    assert auto.choose("embed", nvidia(), prefer_infinity=True) == "infinity"
    assert auto.choose("embed", nvidia(), installed_ok={"infinity"}) == "infinity"


def test_installed_ok_narrows_the_choice():
    assert auto.choose("llm", nvidia(), installed_ok={"lmdeploy", "lightllm"}) == "lmdeploy"
    assert auto.choose("llm", nvidia(), installed_ok=lambda n: n == "lightllm") == "lightllm"
    assert auto.choose("llm", HostFacts(nvidia=NO_GPU, ascend=True), installed_ok={"mindie"}) == "mindie"
    with pytest.raises(LaunchError, match="none of the frameworks") as err:
        auto.choose("llm", nvidia(), installed_ok=set())
    assert "--framework" in err.value.hint


def test_old_gpu_is_an_error_not_a_cpu_server():
    with pytest.raises(LaunchError, match="compute capability 7.0") as err:
        auto.choose("llm", nvidia("6.1", 2))
    assert "--framework vllm-cpu" in err.value.hint and "doctor" in err.value.hint


def test_no_gpu_on_arm():
    with pytest.raises(LaunchError, match="aarch64") as err:
        auto.choose("llm", HostFacts(arch="aarch64", nvidia=NO_GPU))
    assert "x86_64" in err.value.hint


def test_reason_is_given():
    name, why = auto.choose_with_reason("llm", nvidia())
    assert name == "vllm" and "NVIDIA" in why
    with pytest.raises(ValueError):
        auto.choose("image", nvidia())


# ------------------------------------------------------------------ model kind

@pytest.mark.parametrize("name,kind", [
    ("BAAI/bge-large-zh-v1.5", "embed"), ("bge-m3", "embed"), ("intfloat/multilingual-e5-large", "embed"),
    ("e5-base-v2", "embed"), ("sentence-transformers/all-MiniLM-L6-v2", "embed"), ("thenlper/gte-large", "embed"),
    ("Alibaba-NLP/gte-Qwen2-7B-instruct", "embed"), ("text-embedding-3-small", "embed"),
    ("nomic-embed-text-v1", "embed"), ("moka-ai/m3e-base", "embed"), ("shibing624/text2vec-base-chinese", "embed"),
    ("BAAI/bge-reranker-large", "rerank"), ("cross-encoder/ms-marco-MiniLM-L-6-v2", "rerank"),
    ("jina-reranker-v2-base", "rerank"),
    ("internlm2-chat-7b", "llm"), ("Qwen2.5-7B-Instruct", "llm"), ("meta-llama/Llama-3.1-8B", "llm"),
    ("deepseek-r1-distill-qwen-7b", "llm"), ("gemma-2-9b-it", "llm"), ("Phi-3.5-mini-instruct", "llm"),
])
def test_kind_from_name(name, kind):
    assert auto.detect_model_kind(name).kind == kind


def test_files_win_over_the_name():
    causal = {"config.json": json.dumps({"architectures": ["Qwen2ForCausalLM"]})}
    assert auto.detect_model_kind("my-embedding-finetune", causal).kind == "llm"
    st = {**causal, "modules.json": "[]"}
    got = auto.detect_model_kind("gte-Qwen2-7B-instruct", st)
    assert got.kind == "embed" and "modules.json" in got.reason
    assert auto.detect_model_kind("x", {"sentence_bert_config.json": None}).kind == "embed"


def test_cross_encoder_config():
    files = {"config.json": {"architectures": ["XLMRobertaForSequenceClassification"], "num_labels": 1}}
    assert auto.detect_model_kind("local-model", files).kind == "rerank"
    files = {"config.json": {"architectures": ["BertForSequenceClassification"], "id2label": {"0": "LABEL_0"}}}
    assert auto.detect_model_kind("local-model", files).kind == "rerank"


def test_a_cross_encoder_saved_by_sentence_transformers_is_a_reranker_despite_its_modules_json():
    files = {"modules.json": "[]", "config_sentence_transformers.json": {"model_type": "CrossEncoder"},
             "config.json": {"architectures": ["BertModel"]}}
    got = auto.detect_model_kind("local-model", files)
    assert got.kind == "rerank" and "CrossEncoder" in got.reason


def test_encoder_config_is_an_embedding_model():
    got = auto.detect_model_kind("local", {"config.json": '{"architectures": ["BertModel"]}'})
    assert got.kind == "embed" and "BertModel" in got.reason


def test_unreadable_files_fall_back_to_the_name():
    assert auto.detect_model_kind("bge-small", {"config.json": "{not json"}).kind == "embed"
    got = auto.detect_model_kind("mystery", {})
    assert got.kind == "llm" and got.reason
