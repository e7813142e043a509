"""``--framework auto``: what kind of model this is, and which framework serves it on this host. Pure.

Model kind comes from a local model directory's files (passed in as a dict: name -> text, parsed JSON or None)
and, failing that, from the model's name. The choice never falls back to the CPU behind the user's back: a host
with an NVIDIA GPU too old for vLLM gets an error naming the CPU framework to ask for, not a CPU server.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Callable, Collection, Mapping

from ..errors import LaunchError
from ..host import HostFacts
from ..runtime.model_files import cross_encoder

KINDS = ("llm", "embed", "rerank")
KIND_WORDS = {"llm": "an LLM", "embed": "an embedding model", "rerank": "a reranker (cross-encoder)"}
VLLM_MIN_CC = (7, 0)
ST_FILES = ("modules.json", "sentence_bert_config.json", "config_sentence_transformers.json")
LLM_SUFFIXES = ("ForCausalLM", "ForConditionalGeneration", "LMHeadModel", "ChatModel")
EMBED_SUFFIXES = ("Model", "ForMaskedLM", "ForTextEncoding")
RERANK_WORDS = ("rerank", "cross-encoder", "crossencoder")
EMBED_WORDS = ("embed", "minilm", "mpnet", "text2vec", "sentence-t5", "sentence-transformers", "simcse", "sbert")
EMBED_TOKENS = ("bge", "e5", "gte", "m3e", "stella", "instructor", "jina")
DOCTOR_HINT = "run 'lazyllm doctor' to see the host's GPUs and drivers"


@dataclass(frozen=True)
class KindGuess:
    kind: str       # llm | embed | rerank
    reason: str


def _json(value) -> dict:
    if isinstance(value, dict):
        return value
    if isinstance(value, (str, bytes)):
        try:
            data = json.loads(value)
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}
    return {}


def kind_from_files(files: Mapping[str, object]) -> KindGuess | None:
    """From config.json and the sentence-transformers files of a model directory."""
    config = _json(files.get("config.json"))
    why = cross_encoder(_json(files.get("config_sentence_transformers.json")), config)
    if why:
        return KindGuess("rerank", why)
    archs = [a for a in config.get("architectures") or [] if isinstance(a, str)]
    present = [f for f in ST_FILES if f in files]
    if present:
        return KindGuess("embed", f"{present[0]} (a sentence-transformers model)")
    if any(a.endswith(LLM_SUFFIXES) for a in archs):
        return KindGuess("llm", f"config.json: {archs[0]}")
    if any(a.endswith(EMBED_SUFFIXES) for a in archs):
        return KindGuess("embed", f"config.json: {archs[0]} (an encoder)")
    return None


def kind_from_name(name: str) -> KindGuess | None:
    low = name.lower()
    tokens = [t for t in re.split(r"[-_/.\s]+", low) if t]
    for word in RERANK_WORDS:
        if word in low:
            return KindGuess("rerank", f"the name contains {word!r}")
    for word in EMBED_WORDS:
        if word in low:
            return KindGuess("embed", f"the name contains {word!r}")
    for token in tokens:
        for prefix in EMBED_TOKENS:
            if token == prefix or (token.startswith(prefix) and token[len(prefix):].isdigit()):
                return KindGuess("embed", f"the name has {prefix!r}")
    return None


def detect_model_kind(name: str, files: Mapping[str, object] | None = None) -> KindGuess:
    """Files first (they are what the model is), then the name; an LLM when nothing says otherwise."""
    return (kind_from_files(files or {}) or kind_from_name(name)
            or KindGuess("llm", "neither its files nor its name say embedding or reranker"))


# ------------------------------------------------------------------ which framework

def _allowed(installed_ok: Collection[str] | Callable[[str], bool] | None, name: str) -> bool:
    if installed_ok is None:
        return True
    return installed_ok(name) if callable(installed_ok) else name in installed_ok


def _cc(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split(".") if p.isdigit())


def choose_with_reason(model_kind: str, host: HostFacts,
                       installed_ok: Collection[str] | Callable[[str], bool] | None = None,
                       prefer_infinity: bool = False) -> tuple[str, str]:
    """(framework, why). ``installed_ok``: the frameworks that may be used (None: all)."""
    if model_kind not in KINDS:
        raise ValueError(f"model kind {model_kind!r} is not one of {KINDS}")
    if model_kind in ("embed", "rerank"):
        order = ("infinity", "embedding") if prefer_infinity else ("embedding", "infinity")
        return _first(order, installed_ok, KIND_WORDS[model_kind])
    if host.nvidia.present:
        best = max((_cc(g.compute_capability) for g in host.nvidia.gpus), default=())
        if best and best < VLLM_MIN_CC:
            gpus = ", ".join(sorted({f"{g.name} ({g.compute_capability})" for g in host.nvidia.gpus}))
            raise LaunchError(f"no framework here runs an LLM on this host's GPUs: {gpus}; vllm needs compute "
                              "capability 7.0 or newer",
                              "to run on the CPU instead, ask for it: --framework vllm-cpu; " + DOCTOR_HINT)
        return _first(("vllm", "lmdeploy", "lightllm"), installed_ok, "an LLM on an NVIDIA GPU")
    if host.ascend:
        return _first(("lmdeploy", "mindie"), installed_ok, "an LLM on an Ascend NPU")
    if host.amd:
        return _first(("vllm",), installed_ok, "an LLM on an AMD GPU (ROCm)")
    if host.arch in ("x86_64", "amd64"):
        return _first(("vllm-cpu",), installed_ok, "an LLM on a host without GPU (x86_64)")
    raise LaunchError(f"no framework here runs an LLM on a {host.arch} host without a GPU "
                      f"({host.nvidia.reason or 'no GPU found'})",
                      "vllm-cpu is built for x86_64 only; use an online model (lazyllm run chatbot --source ...) "
                      "or a GPU host; " + DOCTOR_HINT)


def choose(model_kind: str, host: HostFacts, installed_ok: Collection[str] | Callable[[str], bool] | None = None,
           prefer_infinity: bool = False) -> str:
    return choose_with_reason(model_kind, host, installed_ok, prefer_infinity)[0]


def _first(order: tuple[str, ...], installed_ok, what: str) -> tuple[str, str]:
    for name in order:
        if _allowed(installed_ok, name):
            return name, f"{what}: {name}"
    raise LaunchError(f"none of the frameworks for {what} ({', '.join(order)}) can be used here",
                      f"install one, e.g. 'lazyllm install {order[0]}', or pass --framework")
