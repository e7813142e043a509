"""Embedding server routes over a stand-in encoder (the real model is checked in tests/e2e/test_embed_server.py)."""

from __future__ import annotations

import contextlib
import threading
from typing import AsyncIterator, Callable

import anyio
import httpx

from lazyllm_images.runtime.embed_server.app import State, make_app
from lazyllm_images.runtime.embed_server.model import LoadedModel


def fake_encode(texts):
    return [[0.6, 0.8, 0.0] if "cat" in t else [0.0, 0.6, 0.8] for t in texts], [len(t.split()) + 2 for t in texts]


def loaded() -> LoadedModel:
    return LoadedModel(fake_encode, 3, True, "cpu", 256, 0.0)


@contextlib.asynccontextmanager
async def serve(loader: Callable[[], LoadedModel], on_failure: Callable[[], None] = lambda: None,
                ready: bool = True) -> AsyncIterator[httpx.AsyncClient]:
    app = make_app(State(name="emb", max_chars=50, batch_size=4), loader, on_failure)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://emb") as c:
            if ready:
                await until_ready(c)
            yield c


async def until_ready(c: httpx.AsyncClient) -> None:
    with anyio.fail_after(5):
        while (await c.get("/healthz")).status_code != 200:
            await anyio.sleep(0.01)


def test_healthz_is_503_while_loading_then_200():
    gate = threading.Event()

    def slow() -> LoadedModel:
        gate.wait(5)
        return loaded()

    async def check() -> None:
        async with serve(slow, ready=False) as c:
            r = await c.get("/healthz")
            assert r.status_code == 503 and r.json()["status"] == "loading"
            r = await c.post("/v1/embeddings", json={"input": "x"})
            assert r.status_code == 503 and "still loading" in r.json()["error"]["message"]
            gate.set()
            await until_ready(c)
            body = (await c.get("/healthz")).json()
            assert body == {"status": "ok", "model": "emb", "task": "embed", "dimensions": 3, "device": "cpu"}

    anyio.run(check)


def test_load_failure_is_reported():
    failed = threading.Event()

    def broken() -> LoadedModel:
        raise OSError("no such model")

    async def check() -> None:
        async with serve(broken, failed.set, ready=False) as c:
            with anyio.fail_after(5):
                while not failed.is_set():
                    await anyio.sleep(0.01)
            r = await c.get("/healthz")
            assert r.status_code == 503
            assert r.json()["status"] == "failed" and "no such model" in r.json()["error"]

    anyio.run(check)


def test_embeddings_models_and_generate():
    async def check() -> None:
        async with serve(loaded) as c:
            r = await c.post("/v1/embeddings", json={"input": ["a cat", "a dog"], "model": "emb"})
            assert r.status_code == 200
            body = r.json()
            assert [d["embedding"] for d in body["data"]] == [[0.6, 0.8, 0.0], [0.0, 0.6, 0.8]]
            assert body["usage"]["prompt_tokens"] == 8 and body["model"] == "emb"
            assert (await c.post("/embeddings", json={"input": "cat"})).status_code == 200
            assert (await c.get("/v1/models")).json()["data"][0]["id"] == "emb"
            assert (await c.post("/generate", json={"text": "cat", "images": []})).json() == [0.6, 0.8, 0.0]
            assert (await c.post("/generate", json={"text": ["cat"]})).json() == [[0.6, 0.8, 0.0]]

    anyio.run(check)


def test_errors_are_openai_shaped():
    async def check() -> None:
        async with serve(loaded) as c:
            r = await c.post("/v1/embeddings", content=b"{oops", headers={"content-type": "application/json"})
            assert r.status_code == 400 and "not valid JSON" in r.json()["error"]["message"]
            r = await c.post("/v1/embeddings", json={"input": "x", "model": "other"})
            assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
            r = await c.post("/v1/embeddings", json={"input": "x", "dimensions": 4})
            assert r.status_code == 400 and "at most 3" in r.json()["error"]["message"]
            r = await c.post("/generate", json={"text": "x" * 51})
            assert r.status_code == 400 and "--max-input-chars" in r.json()["error"]["message"]

    anyio.run(check)


def word_overlap(pairs):
    """A stand-in cross-encoder: the share of the query's words found in the document."""
    scores = [len(set(q.split()) & set(d.split())) / len(set(q.split())) for q, d in pairs]
    return scores, [len(q.split()) + len(d.split()) + 3 for q, d in pairs]


def reranker() -> LoadedModel:
    return LoadedModel(word_overlap, None, False, "cpu", 512, 0.0, task="rerank")


def test_rerank_orders_by_relevance_cuts_to_top_n_and_can_return_documents():
    docs = ["bread and butter", "a cat on a mat", "the cat sat on the mat"]

    async def check() -> None:
        async with serve(reranker) as c:
            assert (await c.get("/healthz")).json()["task"] == "rerank"
            r = await c.post("/v1/rerank", json={"model": "emb", "query": "cat sat mat", "documents": docs})
            assert r.status_code == 200, r.text
            body = r.json()
            assert [x["index"] for x in body["results"]] == [2, 1, 0] and "document" not in body["results"][0]
            assert body["results"][0]["relevance_score"] == 1.0 and body["usage"]["total_tokens"] == 9 + 11 + 12
            r = await c.post("/rerank", json={"query": "cat sat mat", "documents": [{"text": d} for d in docs],
                                              "top_n": 1, "return_documents": True})
            assert r.json()["results"] == [{"index": 2, "relevance_score": 1.0,
                                             "document": {"text": "the cat sat on the mat"}}]

    anyio.run(check)


def test_each_model_kind_refuses_the_other_kinds_route_and_says_which_to_use():
    async def check() -> None:
        async with serve(reranker) as c:
            r = await c.post("/v1/embeddings", json={"input": "x"})
            assert r.status_code == 400 and "/v1/rerank" in r.json()["error"]["message"]
            r = await c.post("/v1/rerank", json={"query": "q", "documents": ["d"], "model": "other"})
            assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
        async with serve(loaded) as c:
            r = await c.post("/v1/rerank", json={"query": "q", "documents": ["d"]})
            assert r.status_code == 400 and "needs a reranker" in r.json()["error"]["message"]

    anyio.run(check)
