"""What a model folder's files say it is: the rule that both ``--framework auto`` (planning, on the host) and the
embedding server (embed or rerank, in the image) apply. Pure: standard library only."""

from __future__ import annotations


def cross_encoder(st_config: dict, config: dict) -> str | None:
    """Why these files are a cross-encoder (a reranker), or None. ``st_config``: config_sentence_transformers.json
    (sentence-transformers 6 saves a CrossEncoder with a modules.json too: its ``model_type`` tells); ``config``:
    config.json, where transformers saves one as a ``*ForSequenceClassification`` with one label."""
    if st_config.get("model_type") == "CrossEncoder":
        return "config_sentence_transformers.json: a CrossEncoder"
    archs = [a for a in config.get("architectures") or [] if isinstance(a, str)]
    labels = config.get("num_labels", len(config.get("id2label") or {}) or None)
    if any(a.endswith("ForSequenceClassification") for a in archs) and labels in (None, 1):
        return f"config.json: {archs[0]} with one label (a cross-encoder)"
    return None
