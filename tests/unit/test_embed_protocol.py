"""Embedding server: request validation and response shapes (no model)."""

from __future__ import annotations

import math

import pytest

from lazyllm_images.runtime.embed_server import protocol
from lazyllm_images.runtime.embed_server.protocol import RequestError, parse_generate, parse_openai


def test_openai_string_and_list_inputs():
    one = parse_openai({"input": "hi", "model": "m"}, 100)
    assert one.texts == ["hi"] and one.single and one.model == "m" and one.encoding_format == "float"
    many = parse_openai({"input": ["a", "b"], "encoding_format": "base64", "dimensions": 8}, 100)
    assert many.texts == ["a", "b"] and not many.single
    assert many.encoding_format == "base64" and many.dimensions == 8


@pytest.mark.parametrize("body, fragment", [
    ([1, 2], "JSON object"),
    ({}, "'input' is required"),
    ({"input": 3}, "must be a string or a list of strings"),
    ({"input": []}, "empty list"),
    ({"input": [1, 2, 3]}, "token ids"),
    ({"input": [[1, 2]]}, "token ids"),
    ({"input": ["ok", None]}, "'input[1]' is NoneType"),
    ({"input": "x" * 11}, "at most 10"),
    ({"input": ["ok", "x" * 11]}, "'input[1]' has 11 characters"),
    ({"input": "x", "encoding_format": "int8"}, "encoding_format"),
    ({"input": "x", "dimensions": 0}, "positive integer"),
    ({"input": "x", "dimensions": True}, "positive integer"),
    ({"input": "x", "model": 5}, "'model' must be a string"),
])
def test_openai_bad_bodies_are_400_with_a_reason(body, fragment):
    with pytest.raises(RequestError) as exc:
        parse_openai(body, 10)
    assert exc.value.status == 400 and fragment in exc.value.message
    err = exc.value.body()["error"]
    assert err["type"] == "invalid_request_error" and err["message"] == exc.value.message


def test_openai_input_count_limit():
    with pytest.raises(RequestError, match="at most 2048"):
        parse_openai({"input": ["a"] * (protocol.MAX_INPUTS + 1)}, 10)


def test_generate_shape():
    req = parse_generate({"text": "hello", "images": []}, 100)
    assert req.texts == ["hello"] and req.single
    assert protocol.generate_response(req, [[0.5, 0.5]]) == [0.5, 0.5]
    req = parse_generate({"text": ["a", "b"]}, 100)
    assert protocol.generate_response(req, [[1.0], [2.0]]) == [[1.0], [2.0]]
    with pytest.raises(RequestError, match="images"):
        parse_generate({"text": "a", "images": ["data:image/png;base64,xx"]}, 100)
    with pytest.raises(RequestError, match="'text' is required"):
        parse_generate({"inputs": "a"}, 100)


def test_shorten_renormalises_only_normalised_vectors():
    vec = [0.6, 0.8, 0.0, 0.0]
    assert protocol.shorten(vec, None, True) is vec
    assert protocol.shorten(vec, 10, True) is vec
    short = protocol.shorten(vec, 1, True)
    assert short == [1.0]
    assert protocol.shorten(vec, 1, False) == [0.6]
    two = protocol.shorten([0.5, 0.5, 0.5, 0.5], 2, True)
    assert math.isclose(sum(v * v for v in two), 1.0)


def test_base64_is_little_endian_float32_and_round_trips():
    vec = [0.25, -1.5, 3.0]
    text = protocol.encode_base64(vec)
    assert text == "AACAPgAAwL8AAEBA"  # struct.pack("<3f", 0.25, -1.5, 3.0), base64
    assert protocol.decode_base64(text) == vec


def test_openai_response_shape():
    req = parse_openai({"input": ["a", "b"], "dimensions": 1}, 100)
    body = protocol.openai_response(req, [[0.6, 0.8], [0.8, 0.6]], 7, "served", normalized=True)
    assert body["object"] == "list" and body["model"] == "served"
    assert body["usage"] == {"prompt_tokens": 7, "total_tokens": 7}
    assert [d["index"] for d in body["data"]] == [0, 1]
    assert all(d["object"] == "embedding" and d["embedding"] == [1.0] for d in body["data"])
    b64 = protocol.openai_response(parse_openai({"input": "a", "encoding_format": "base64"}, 9), [[0.25]], 1,
                                   "m", True)
    assert b64["data"][0]["embedding"] == protocol.encode_base64([0.25])


def test_models_response():
    body = protocol.models_response("emb", 123)
    assert body == {"object": "list", "data": [{"id": "emb", "object": "model", "created": 123,
                                                "owned_by": "lazyllm"}]}


def test_rerank_bodies_are_validated():
    ok = protocol.parse_rerank({"query": "q", "documents": ["a", {"text": "b"}], "top_n": 1}, 10)
    assert ok.documents == ["a", "b"] and ok.top_n == 1 and not ok.return_documents


@pytest.mark.parametrize("body, fragment", [
    ({"documents": ["a"]}, "'query' is required"),
    ({"query": "", "documents": ["a"]}, "'query' is required"),
    ({"query": "x" * 11, "documents": ["a"]}, "'query' has 11 characters"),
    ({"query": "q"}, "'documents' is required"),
    ({"query": "q", "documents": []}, "'documents' is required"),
    ({"query": "q", "documents": ["a", 3.5]}, r"'documents\[1\]' is float"),
    ({"query": "q", "documents": ["a", {"txt": "b"}]}, r"'documents\[1\]' is an object without a 'text'"),
    ({"query": "q", "documents": [1, 2]}, "token ids"),
    ({"query": "q", "documents": ["a"], "top_n": 0}, "'top_n' must be a positive integer"),
    ({"query": "q", "documents": ["a"], "top_n": True}, "'top_n' must be a positive integer"),
    ({"query": "q", "documents": ["a"], "return_documents": "yes"}, "'return_documents'"),
])
def test_bad_rerank_bodies_say_what_is_wrong(body, fragment):
    with pytest.raises(RequestError, match=fragment):
        protocol.parse_rerank(body, 10)


def test_rerank_results_are_highest_first_ties_in_document_order():
    req = protocol.parse_rerank({"query": "q", "documents": ["a", "b", "c"], "top_n": 2}, 10)
    body = protocol.rerank_response(req, [0.2, 0.9, 0.9], 7, "m")
    assert [r["index"] for r in body["results"]] == [1, 2] and body["model"] == "m"
