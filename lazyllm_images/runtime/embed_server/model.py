"""Loading a sentence-transformers model and wrapping it as the worker's encoder (imports torch when called).

An embedding model (``SentenceTransformer``: texts -> vectors) or a reranker (``CrossEncoder``: (query, document)
pairs -> relevance scores); ``detect_task`` tells them apart from the model's files.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..model_files import cross_encoder
from .worker import Encoder

log = logging.getLogger("lazyllm.embed")


TASKS = ("auto", "embed", "rerank")


@dataclass
class LoadedModel:
    encode: Encoder
    dimensions: int | None          # None for a reranker
    normalized: bool
    device: str
    max_seq_length: int | None
    load_seconds: float
    task: str = "embed"             # embed | rerank


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


def load(path: str, device: str = "auto", batch_size: int = 32, normalize: bool = True,
         trust_remote_code: bool = False, task: str = "auto") -> LoadedModel:
    task = detect_task(path) if task == "auto" else task
    if task == "rerank":
        return load_reranker(path, device, batch_size, trust_remote_code)
    started = time.monotonic()
    from sentence_transformers import SentenceTransformer

    dev = pick_device(device)
    model = SentenceTransformer(path, device=dev, trust_remote_code=trust_remote_code)
    dims_of = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    dims = int(dims_of())

    def encode(texts: list[str]) -> tuple[list[list[float]], list[int]]:
        arr = model.encode(texts, batch_size=batch_size, normalize_embeddings=normalize,
                           convert_to_numpy=True, show_progress_bar=False)
        return arr.astype("float32").tolist(), _token_counts(model, texts)

    encode(["warm-up"])  # the first call pays for lazy initialisation; do it before /healthz says ready
    took = time.monotonic() - started
    log.info("model %s loaded on %s in %.1f s (%d dimensions)", path, dev, took, dims)
    return LoadedModel(encode, dims, normalize, dev, getattr(model, "max_seq_length", None), took, task="embed")


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
