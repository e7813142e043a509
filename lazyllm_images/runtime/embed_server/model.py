"""Loading a sentence-transformers model and wrapping it as the worker's encoder (imports torch when called)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from .worker import Encoder

log = logging.getLogger("lazyllm.embed")


@dataclass
class LoadedModel:
    encode: Encoder
    dimensions: int
    normalized: bool
    device: str
    max_seq_length: int | None
    load_seconds: float


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
         trust_remote_code: bool = False) -> LoadedModel:
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
    return LoadedModel(encode, dims, normalize, dev, getattr(model, "max_seq_length", None), took)
