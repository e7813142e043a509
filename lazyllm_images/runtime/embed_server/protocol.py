"""Request validation and response shapes of the embedding server (pure: standard library only)."""

from __future__ import annotations

import base64
import math
import sys
from array import array
from dataclasses import dataclass
from typing import Any

MAX_INPUTS = 2048  # OpenAI's limit on the number of inputs in one request


class RequestError(Exception):
    """A bad request: answered with ``status`` and OpenAI's error body."""

    def __init__(self, message: str, *, status: int = 400, type_: str = "invalid_request_error",
                 param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.type = type_
        self.param = param
        self.code = code

    def body(self) -> dict[str, Any]:
        return error_body(self.message, self.type, param=self.param, code=self.code)


def error_body(message: str, type_: str, *, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


@dataclass(frozen=True)
class EmbeddingRequest:
    texts: list[str]
    single: bool  # the input was one string (``/generate`` then answers one vector, not a list)
    model: str | None = None
    encoding_format: str = "float"
    dimensions: int | None = None


def _texts(value: Any, param: str, max_chars: int) -> tuple[list[str], bool]:
    if isinstance(value, str):
        texts, single = [value], True
    elif isinstance(value, list):
        if not value:
            raise RequestError(f"'{param}' is an empty list; send at least one string", param=param)
        if any(isinstance(v, list) or (isinstance(v, int) and not isinstance(v, bool)) for v in value):
            raise RequestError(f"'{param}' holds token ids; this server takes text only", param=param)
        bad = [i for i, v in enumerate(value) if not isinstance(v, str)]
        if bad:
            raise RequestError(f"'{param}[{bad[0]}]' is {type(value[bad[0]]).__name__}, not a string", param=param)
        if len(value) > MAX_INPUTS:
            raise RequestError(f"'{param}' has {len(value)} items; at most {MAX_INPUTS} per request", param=param)
        texts, single = list(value), False
    elif value is None:
        raise RequestError(f"'{param}' is required: a string or a list of strings", param=param)
    else:
        raise RequestError(f"'{param}' must be a string or a list of strings, not {type(value).__name__}",
                           param=param)
    for i, text in enumerate(texts):
        if len(text) > max_chars:
            where = param if single else f"{param}[{i}]"
            raise RequestError(f"'{where}' has {len(text)} characters; this server accepts at most {max_chars} "
                               "(--max-input-chars)", param=param)
    return texts, single


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise RequestError(f"the request body must be a JSON object, not {type(body).__name__}")
    return body


def parse_openai(body: Any, max_chars: int) -> EmbeddingRequest:
    """Validate an OpenAI ``/v1/embeddings`` body."""
    body = _object(body)
    texts, single = _texts(body.get("input"), "input", max_chars)
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise RequestError("'model' must be a string", param="model")
    fmt = body.get("encoding_format") or "float"
    if fmt not in ("float", "base64"):
        raise RequestError(f"'encoding_format' must be 'float' or 'base64', not {fmt!r}", param="encoding_format")
    dims = body.get("dimensions")
    if dims is not None and (isinstance(dims, bool) or not isinstance(dims, int) or dims < 1):
        raise RequestError("'dimensions' must be a positive integer", param="dimensions")
    return EmbeddingRequest(texts, single, model, fmt, dims)


def parse_generate(body: Any, max_chars: int) -> EmbeddingRequest:
    """Validate upstream LazyLLM's ``/generate`` body: ``{"text": str | [str], "images": [...]}``."""
    body = _object(body)
    images = body.get("images")
    if images:
        raise RequestError("'images' is not supported: this server embeds text only", param="images")
    texts, single = _texts(body.get("text"), "text", max_chars)
    return EmbeddingRequest(texts, single)


@dataclass(frozen=True)
class RerankRequest:
    query: str
    documents: list[str]
    top_n: int | None = None
    return_documents: bool = False
    model: str | None = None


def _documents(value: Any, max_chars: int) -> list[str]:
    """``documents``: strings, or Cohere/Jina style ``{"text": str}`` objects."""
    if not isinstance(value, list) or not value:
        raise RequestError("'documents' is required: a non-empty list of strings", param="documents")
    for i, v in enumerate(value):
        if isinstance(v, dict) and not isinstance(v.get("text"), str):
            raise RequestError(f"'documents[{i}]' is an object without a 'text' string", param="documents")
    texts = [v["text"] if isinstance(v, dict) else v for v in value]
    return _texts(texts, "documents", max_chars)[0]


def parse_rerank(body: Any, max_chars: int) -> RerankRequest:
    """Validate a Cohere/Jina/infinity-style ``/v1/rerank`` body."""
    body = _object(body)
    query = body.get("query")
    if not isinstance(query, str) or not query:
        raise RequestError("'query' is required: a non-empty string", param="query")
    if len(query) > max_chars:
        raise RequestError(f"'query' has {len(query)} characters; this server accepts at most {max_chars} "
                           "(--max-input-chars)", param="query")
    documents = _documents(body.get("documents"), max_chars)
    top_n = body.get("top_n")
    if top_n is not None and (isinstance(top_n, bool) or not isinstance(top_n, int) or top_n < 1):
        raise RequestError("'top_n' must be a positive integer", param="top_n")
    flag = body.get("return_documents", False)
    if not isinstance(flag, bool):
        raise RequestError("'return_documents' must be true or false", param="return_documents")
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise RequestError("'model' must be a string", param="model")
    return RerankRequest(query, documents, top_n, flag, model)


def rerank_response(req: RerankRequest, scores: list[float], tokens: int, model: str) -> dict[str, Any]:
    """Results by relevance, highest first (ties keep the documents' order), cut to ``top_n``."""
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))[:req.top_n]
    results = []
    for i in order:
        item: dict[str, Any] = {"index": i, "relevance_score": scores[i]}
        if req.return_documents:
            item["document"] = {"text": req.documents[i]}
        results.append(item)
    return {"object": "rerank", "model": model, "results": results,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


def shorten(vector: list[float], dimensions: int | None, normalized: bool) -> list[float]:
    """Keep the first ``dimensions`` values (Matryoshka style), renormalised when the model's vectors are."""
    if dimensions is None or dimensions >= len(vector):
        return vector
    head = vector[:dimensions]
    if not normalized:
        return head
    norm = math.sqrt(sum(v * v for v in head))
    return [v / norm for v in head] if norm > 0 else head


def encode_base64(vector: list[float]) -> str:
    """OpenAI's base64 form: little-endian float32 values."""
    arr = array("f", vector)
    if sys.byteorder != "little":
        arr.byteswap()
    return base64.b64encode(arr.tobytes()).decode("ascii")


def decode_base64(text: str) -> list[float]:
    arr = array("f")
    arr.frombytes(base64.b64decode(text))
    if sys.byteorder != "little":
        arr.byteswap()
    return arr.tolist()


def openai_response(req: EmbeddingRequest, vectors: list[list[float]], tokens: int, model: str,
                    normalized: bool) -> dict[str, Any]:
    data = []
    for i, vec in enumerate(vectors):
        vec = shorten(vec, req.dimensions, normalized)
        emb: list[float] | str = encode_base64(vec) if req.encoding_format == "base64" else vec
        data.append({"object": "embedding", "index": i, "embedding": emb})
    return {"object": "list", "data": data, "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


def generate_response(req: EmbeddingRequest, vectors: list[list[float]]) -> list[float] | list[list[float]]:
    return vectors[0] if req.single else vectors


def models_response(name: str, created: int, owner: str = "lazyllm",
                    extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """OpenAI's model list of one model; ``extra`` fields (the server's own, e.g. ``dtype``) join its entry."""
    entry = {"id": name, "object": "model", "created": created, "owned_by": owner, **(extra or {})}
    return {"object": "list", "data": [entry]}
