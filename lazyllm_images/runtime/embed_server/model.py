"""Loading a sentence-transformers model and wrapping it as the worker's encoder (imports torch when called).

An embedding model (``SentenceTransformer``: texts -> vectors) or a reranker (``CrossEncoder``: (query, document)
pairs -> relevance scores); ``detect_task`` tells them apart from the model's files.
"""

from __future__ import annotations

import copy
import json
import logging
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..model_files import cross_encoder
from . import dtype as dtypes
from .worker import Encoder, token_groups

log = logging.getLogger("lazyllm.embed")


TASKS = ("auto", "embed", "rerank")
# Padded tokens per model call (worker.token_groups): one thread's CPU per text on all-MiniLM-L6-v2, 32 texts of
# ~200 tokens, against one padded batch of 32: 4096 -> 1.25x, 2048 -> 1.45x, 1024 -> 1.5x (fp32 and bf16 alike).
TOKEN_BUDGET = 1024


@dataclass
class LoadedModel:
    encode: Encoder
    dimensions: int | None          # None for a reranker
    normalized: bool
    device: str
    max_seq_length: int | None
    load_seconds: float
    task: str = "embed"             # embed | rerank
    dtype: str = "fp32"             # fp32 | bf16 | int8: what the model runs in (dtype.py)
    dtype_choice: dict | None = None  # how --dtype chose it (Choice.as_dict)


def _json_file(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def detect_task(path: str) -> str:
    """``rerank`` for a cross-encoder (``model_files.cross_encoder``), otherwise ``embed``."""
    folder = Path(path)
    why = cross_encoder(_json_file(folder / "config_sentence_transformers.json"), _json_file(folder / "config.json"))
    return "rerank" if why else "embed"


def pick_device(device: str) -> str:
    if device != "auto":
        return device
    import torch
    return "cuda" if torch.cuda.is_available() else "cpu"


def _token_counts(model: Any, texts: list[str]) -> list[int]:
    tokenizer = getattr(model, "tokenizer", None)
    if tokenizer is None:
        return [0 for _ in texts]
    limit = getattr(model, "max_seq_length", None)
    ids = tokenizer(texts, add_special_tokens=True, truncation=limit is not None, max_length=limit)["input_ids"]
    return [len(x) for x in ids]


def _bf16_linear(linear: Any, keep_bf16: bool) -> Any:
    """A Linear layer whose weights are kept in bfloat16 and whose product runs in bfloat16 (oneDNN's AVX-512 BF16
    kernels): its input is cast down and, unless ``keep_bf16``, its output cast back to the weights' old dtype.
    The embeddings, layer norms, attention and residual sums stay in fp32, so vectors stay within rounding of
    fp32's and do not depend on the batch a text is padded in (all-bf16 weights moved them by up to 0.3%)."""
    import torch
    import torch.nn.functional as F

    class BF16Linear(torch.nn.Module):
        def __init__(self, weight: Any, bias: Any) -> None:
            super().__init__()
            self.out_dtype = None if keep_bf16 else weight.dtype
            self.weight = torch.nn.Parameter(weight.detach().to(torch.bfloat16), requires_grad=False)
            self.bias = None if bias is None else torch.nn.Parameter(bias.detach().to(torch.bfloat16),
                                                                     requires_grad=False)

        def forward(self, x: Any) -> Any:
            y = F.linear(x.to(torch.bfloat16), self.weight, self.bias)
            return y if self.out_dtype is None else y.to(self.out_dtype)

    return BF16Linear(linear.weight, linear.bias)


# The feed-forward block's first Linear (BertIntermediate, RobertaIntermediate, ...: Linear then the activation)
# keeps its 4x-wide output in bfloat16: its activation runs in bfloat16 and feeds the next Linear, which casts to
# bfloat16 anyway; casting it back and forth cost about a fifth of the bf16 mode's time (one thread's CPU time
# on all-MiniLM-L6-v2: fp32 12.3 texts/s, bf16 18.7 with every output cast back, 22.9 with this one kept).
KEEP_BF16_PARENTS = ("Intermediate",)


def convert(model: Any, mode: str, inplace: bool = False) -> Any:
    """The model in ``mode`` (fp32 | bf16 | int8); a converted copy unless ``inplace``."""
    if mode == "fp32":
        return model
    import torch

    target = model if inplace else copy.deepcopy(model)
    if mode == "bf16":
        for parent in list(target.modules()):
            keep = type(parent).__name__.endswith(KEEP_BF16_PARENTS)
            for name, child in list(parent.named_children()):
                if isinstance(child, torch.nn.Linear):
                    setattr(parent, name, _bf16_linear(child, keep))
        return target
    if mode == "int8":
        from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

        with warnings.catch_warnings():          # torch 2.x announces eager-mode quantization's move to torchao
            warnings.simplefilter("ignore")
            return quantize_dynamic(target, {torch.nn.Linear: per_channel_dynamic_qconfig}, inplace=True)
    raise ValueError(f"unknown dtype {mode!r}; one of {', '.join(dtypes.DTYPES)}")


def _unit_vectors(model: Any, texts: list[str], batch_size: int) -> Any:
    return model.encode(texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True,
                        show_progress_bar=False).astype("float32")


def _timings(models: dict[str, Any], texts: list[str], batch_size: int, repeats: int) -> dict[str, float]:
    """Seconds of CPU each model takes to encode ``texts`` on one thread, best of ``repeats`` interleaved runs.
    One thread's CPU time, not the wall clock: on a host shared with other work (a test run, other containers) a
    wall-clock race of a fraction of a second is decided by the scheduler, and picked fp32 or bf16 at random."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        seconds = dict.fromkeys(models, float("inf"))
        for round_ in range(repeats):
            for mode, m in models.items():
                t0 = time.thread_time()
                _unit_vectors(m, texts, batch_size)
                seconds[mode] = min(seconds[mode], time.thread_time() - t0)
            if round_ == 0 and dtypes.settled(seconds):
                break
    finally:
        torch.set_num_threads(threads)
    return seconds


SHORT_FIRST = 4            # probe texts a candidate's quality is checked on before the paragraphs


def probe(model: Any, batch_size: int, flags: set[str] | None = None,
          repeats: int = 2) -> tuple[Any, dtypes.Choice]:
    """``--dtype auto`` on the CPU: the model in the mode ``dtype.choose`` picks from measurements on
    ``dtype.PROBE_TEXTS`` (quality first: a candidate whose cosine to fp32 is too low is not timed)."""
    started = time.perf_counter()
    texts = list(dtypes.PROBE_TEXTS)
    t0 = time.perf_counter()
    ref = _unit_vectors(model, texts, batch_size)
    first_fp32 = time.perf_counter() - t0
    built: dict[str, Any] = {"fp32": model}
    cosines: dict[str, float] = {}
    errors: dict[str, str] = {}
    short = sorted(range(len(texts)), key=lambda i: len(texts[i]))[:SHORT_FIRST]
    for mode in dtypes.candidates(read_cpu_flags() if flags is None else flags):
        try:
            candidate = convert(model, mode)
            # its warm-up, and its quality: the short texts first, the paragraphs only if those keep close
            vectors = _unit_vectors(candidate, [texts[i] for i in short], batch_size)
            cosines[mode] = float((vectors * ref[short]).sum(axis=1).min())
            if cosines[mode] >= dtypes.MIN_COSINE:
                vectors = _unit_vectors(candidate, texts, batch_size)
                cosines[mode] = float((vectors * ref).sum(axis=1).min())
        except Exception as exc:  # noqa: BLE001 - a mode this torch cannot run here is skipped, not fatal
            cosines.pop(mode, None)
            errors[mode] = f"{type(exc).__name__}: {exc}"
            continue
        if cosines[mode] >= dtypes.MIN_COSINE:
            built[mode] = candidate
    seconds = {"fp32": first_fp32}
    if len(built) > 1:
        seconds = _timings(built, texts, batch_size, repeats)
    probes = [dtypes.Probe("fp32", round(seconds["fp32"], 4))]
    for mode in [*cosines, *errors]:
        probes.append(dtypes.Probe(mode, round(seconds[mode], 4) if mode in seconds else None,
                                   round(cosines[mode], 5) if mode in cosines else None, errors.get(mode)))
    choice = dtypes.choose(probes)
    choice = dtypes.Choice(choice.mode, choice.reason, choice.probes, round(time.perf_counter() - started, 3))
    return built[choice.mode], choice


def read_cpu_flags() -> set[str]:
    return dtypes.read_cpu_flags()


def load(path: str, device: str = "auto", batch_size: int = 32, normalize: bool = True,
         trust_remote_code: bool = False, task: str = "auto", dtype: str = "auto") -> LoadedModel:
    task = detect_task(path) if task == "auto" else task
    if task == "rerank":
        if dtype not in ("auto", "fp32"):
            raise ValueError(f"--dtype {dtype} is for embedding models; a reranker runs in fp32")
        return load_reranker(path, device, batch_size, trust_remote_code)
    started = time.monotonic()
    from sentence_transformers import SentenceTransformer

    dev = pick_device(device)
    model = SentenceTransformer(path, device=dev, trust_remote_code=trust_remote_code)
    dims_of = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    dims = int(dims_of())
    model.encode(["warm-up"], show_progress_bar=False)  # the first call pays for lazy initialisation
    if dtype == "auto" and dev == "cpu":
        model, choice = probe(model, batch_size)
        fp32 = next(p for p in choice.probes if p.mode == "fp32")
        log.info("--dtype auto chose %s in %.2f s: %s (one thread's CPU on the probe texts: fp32 %.3f s; %s)",
                 choice.mode,
                 choice.probe_seconds or 0, choice.reason, fp32.seconds or 0,
                 ", ".join(f"{p.mode} {p.seconds:.3f} s" if p.seconds is not None else f"{p.mode} untimed"
                           for p in choice.probes if p.mode != "fp32") or "no other mode")
    elif dtype == "auto":
        choice = dtypes.Choice("fp32", f"auto measures CPU modes only; the model runs on {dev}")
    else:
        if dev != "cpu" and dtype == "int8":
            raise ValueError("--dtype int8 (dynamic quantization) runs on the CPU only")
        model = convert(model, dtype, inplace=True)
        choice = dtypes.Choice(dtype, "asked for (--dtype)")

    def encode(texts: list[str]) -> tuple[list[list[float]], list[int]]:
        counts = _token_counts(model, texts)
        vectors: list[list[float]] = [[] for _ in texts]
        for group in token_groups(counts, TOKEN_BUDGET, batch_size):
            arr = model.encode([texts[i] for i in group], batch_size=len(group), normalize_embeddings=normalize,
                               convert_to_numpy=True, show_progress_bar=False)
            for i, row in zip(group, arr.astype("float32").tolist()):
                vectors[i] = row
        return vectors, counts

    encode(["warm-up"])  # before /healthz says ready
    took = time.monotonic() - started
    log.info("model %s loaded on %s in %.1f s (%d dimensions, %s)", path, dev, took, dims, choice.mode)
    return LoadedModel(encode, dims, normalize, dev, getattr(model, "max_seq_length", None), took, task="embed",
                       dtype=choice.mode, dtype_choice=choice.as_dict())


def _pair_token_counts(model: Any, pairs: list[tuple[str, str]]) -> list[int]:
    tokenizer = getattr(model, "tokenizer", None)
    if tokenizer is None:
        return [0 for _ in pairs]
    limit = getattr(model, "max_length", None)
    ids = tokenizer([q for q, _ in pairs], [d for _, d in pairs], truncation=limit is not None,
                    max_length=limit)["input_ids"]
    return [len(x) for x in ids]


def load_reranker(path: str, device: str = "auto", batch_size: int = 32,
                  trust_remote_code: bool = False) -> LoadedModel:
    """A cross-encoder: (query, document) pairs -> one relevance score each (the model's activation applied:
    a sigmoid for one label, so scores lie in 0..1)."""
    started = time.monotonic()
    from sentence_transformers import CrossEncoder

    dev = pick_device(device)
    model = CrossEncoder(path, device=dev, trust_remote_code=trust_remote_code)

    def score(pairs: list[tuple[str, str]]) -> tuple[list[float], list[int]]:
        arr = model.predict([list(p) for p in pairs], batch_size=batch_size, convert_to_numpy=True,
                            show_progress_bar=False)
        return [float(x) for x in arr.reshape(len(pairs), -1)[:, 0]], _pair_token_counts(model, pairs)

    score([("warm-up", "warm-up")])
    took = time.monotonic() - started
    log.info("reranker %s loaded on %s in %.1f s", path, dev, took)
    return LoadedModel(score, None, False, dev, getattr(model, "max_length", None), took, task="rerank")
