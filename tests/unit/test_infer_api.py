"""The HTTP layer in-process (an in-memory launcher): tokens, typed errors, body limits, upstream's shapes."""

from __future__ import annotations

import logging
import sys
import threading
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from lazyllm_images.runtime.controller import launcher as L
from lazyllm_images.runtime.controller.core import Controller
from lazyllm_images.runtime.controller.gpus import GpuPool
from lazyllm_images.runtime.controller.modelpaths import ModelRoots, Root
from lazyllm_images.runtime.controller.store import Store
from lazyllm_images.runtime.controller.tokens import TokenRing
from lazyllm_images.runtime.infer.app import InferService, create_app

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures"))
from fake_launcher import MemoryLauncher

ALICE, BOB = "alice-token-0123456789abcdef", "bob-token-0123456789abcdef"
URL = "/v1/inference_services"


@pytest.fixture
def env(tmp_path):
    (tmp_path / "models" / "tiny").mkdir(parents=True)
    launcher = MemoryLauncher()
    controller = Controller(Store(tmp_path / "r.db"), launcher, GpuPool((0, 1)), "infer")
    service = InferService(controller, ModelRoots([Root.parse(str(tmp_path / "models"))]), max_body=4096)
    return create_app(service, TokenRing([ALICE, BOB]), start_controller=False), controller


def call(app, *requests: tuple) -> list[httpx.Response]:
    """Each (method, path, kwargs) in turn; the launch threads finish between requests."""
    async def main() -> list[httpx.Response]:
        out = []
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://infer") as client:
            for method, path, kwargs in requests:
                out.append(await client.request(method, path, **kwargs))
                for t in threading.enumerate():
                    if t.name.startswith("launch-"):
                        t.join(5)
        return out
    return anyio.run(main)


def as_(token: str, **kwargs: Any) -> dict:
    return {"headers": {"token": token, **kwargs.pop("headers", {})}, **kwargs}


BODY = {"service_name": "s1", "model_name": "tiny", "framework": "vllm", "num_gpus": 1}


def assert_error(resp: httpx.Response, status: int, code: str) -> None:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["error"]["code"] == code and body["error"]["message"] and body["detail"] == body["error"]["message"]


def test_tokens_no_token_wrong_token_and_another_owners_id(env) -> None:
    app, _ = env
    made, none, wrong, bob_get, bob_list, bob_delete, bearer, health = call(
        app, ("POST", URL, as_(ALICE, json=BODY)), ("GET", URL, {}), ("GET", URL, as_(ALICE + "x")),
        ("GET", f"{URL}/s1", as_(BOB)), ("GET", URL, as_(BOB)), ("DELETE", f"{URL}/s1", as_(BOB)),
        ("GET", f"{URL}/s1", {"headers": {"authorization": f"Bearer {ALICE}"}}), ("GET", "/healthz", {}))
    assert made.json() == {"lwsName": "s1", "status": "Running"}
    assert_error(none, 401, "unauthorized")
    assert "token" in none.json()["error"]["message"] and none.headers["www-authenticate"]
    assert_error(wrong, 401, "unauthorized")
    assert_error(bob_get, 404, "not_found")
    assert bob_list.json() == {}
    assert_error(bob_delete, 404, "not_found")
    assert bearer.json()["status"] == "Running"
    assert health.status_code == 200


def test_bodies_malformed_empty_not_an_object_too_big(env) -> None:
    app, controller = env
    async def chunks():                                # no content-length: the limit counts as it reads
        yield b'{"service_name": "'
        for _ in range(100):
            yield b"x" * 100
    bad, empty, array, big, chunked = call(
        app, ("POST", URL, as_(ALICE, content=b'{"service_name": "s1",')), ("POST", URL, as_(ALICE, content=b"")),
        ("POST", URL, as_(ALICE, json=[BODY])), ("POST", URL, as_(ALICE, content=b"{" + b" " * 5000 + b"}")),
        ("POST", URL, as_(ALICE, content=chunks())))
    assert_error(bad, 400, "invalid_json")
    assert_error(empty, 400, "invalid_json")
    assert_error(array, 400, "invalid_json")
    assert_error(big, 413, "body_too_large")
    assert_error(chunked, 413, "body_too_large")
    assert controller.launcher.units == {}


def test_bad_input_is_a_clear_4xx_and_nothing_runs(env) -> None:
    app, controller = env
    cases = [({"model_name": "tiny"}, 400, "missing_field"),
             ({**BODY, "framework": "tensorrt"}, 400, "unknown_framework"),
             ({**BODY, "model_name": "../../etc"}, 400, "outside_roots"),
             ({**BODY, "model_name": "/etc/passwd"}, 400, "outside_roots"),
             ({**BODY, "model_name": "not-here!"}, 400, "model_not_found"),
             ({**BODY, "image": "ubuntu:22.04"}, 400, "field_not_allowed"),
             ({**BODY, "volumes": ["/:/host"], "privileged": True}, 400, "field_not_allowed"),
             ({**BODY, "num_gpus": 3}, 409, "gpus_never_fit"),
             ({**BODY, "model_name": "needs-missing-stack/x"}, 409, "stack_missing")]
    answers = call(app, *[("POST", URL, as_(ALICE, json=body)) for body, _, _ in cases])
    for (_, status, code), resp in zip(cases, answers):
        assert_error(resp, status, code)
    assert controller.launcher.units == {} and controller.store.list("infer") == []


def test_duplicate_unknown_route_and_method(env) -> None:
    app, _ = env
    _, dup, route, method, query = call(
        app, ("POST", URL, as_(ALICE, json=BODY)), ("POST", URL, as_(ALICE, json=BODY)),
        ("GET", "/v1/nothing", as_(ALICE)), ("PUT", URL, as_(ALICE, json=BODY)),
        ("GET", f"{URL}/s1/events?follow=maybe", as_(ALICE)))
    assert_error(dup, 400, "duplicate")
    assert "Service name already exists" in dup.json()["detail"]
    assert_error(route, 404, "not_found")
    assert_error(method, 405, "method_not_allowed")
    assert_error(query, 400, "bad_query")


def test_record_shapes_events_models_and_delete(env) -> None:
    app, controller = env
    call(app, ("POST", URL, as_(ALICE, json=BODY)), ("POST", URL, as_(ALICE, json={**BODY, "service_name": "s2"})))
    s1 = next(r for r in controller.store.list("infer") if r.name == "s1")
    controller.launcher.states[s1.uid] = L.Probe(L.READY)
    controller.poll_once()
    one, listing, events, tail, models, deleted, again, gone = call(
        app, ("GET", f"{URL}/s1", as_(ALICE)), ("GET", URL, as_(ALICE)), ("GET", f"{URL}/s1/events", as_(ALICE)),
        ("GET", f"{URL}/s1/events?tail=1", as_(ALICE)), ("GET", "/v1/models", as_(ALICE)),
        ("DELETE", f"{URL}/s1", as_(ALICE)), ("DELETE", f"{URL}/s1", as_(ALICE)), ("GET", f"{URL}/s1", as_(ALICE)))
    record = one.json()
    assert record["status"] == "Ready" and record["endpoint"].endswith("/v1/") and record["deploy_method"] == "Vllm"
    assert record["lwsName"] == record["service_name"] == "s1" and record["num_gpus"] == 1
    assert len(record["created_at"]) == 18 and record["cost"] is not None
    assert set(listing.json()) == {"s1", "s2"} and listing.json()["s2"]["endpoint"] == "unknown"
    assert events.json() == {"log": "starting s1"} and tail.json() == {"log": "starting s1"}
    assert [m["id"] for m in models.json()["data"]] == ["s1"] and models.json()["object"] == "list"
    assert deleted.json() == {"status": "Cancelled", "deleted": False}
    assert again.json() == {"status": "Cancelled", "deleted": True}
    assert_error(gone, 404, "not_found")


def test_tokens_never_reach_the_logs(env, caplog) -> None:
    app, _ = env
    caplog.set_level(logging.DEBUG)
    call(app, ("POST", URL, as_(ALICE, json=BODY)), ("GET", URL, as_(ALICE + "x")), ("GET", f"{URL}/s1", as_(BOB)),
         ("POST", URL, as_(BOB, json={**BODY, "model_name": "/etc"})), ("DELETE", f"{URL}/s1", as_(ALICE)))
    text = caplog.text
    assert "created" in text and ALICE not in text and BOB not in text and ALICE[:12] not in text


class Endless:
    """A follow that never ends by itself: lines until closed."""

    def __init__(self) -> None:
        self.closed = threading.Event()

    def __iter__(self):
        n = 0
        while not self.closed.is_set():
            n += 1
            yield f"line {n}"
            self.closed.wait(0.01)

    def close(self) -> None:
        self.closed.set()


def test_sse_events_lines_errors_and_a_client_that_leaves() -> None:
    from lazyllm_images.runtime.controller import http
    from lazyllm_images.runtime.controller.launcher import ListStream

    class Broken(ListStream):
        def __iter__(self):
            yield "one"
            raise OSError("the engine went away")

    async def collect(stream, limit: int | None = None) -> list[bytes]:
        out = []
        events = http.sse_events(stream, keepalive=0.05)
        async for chunk in events:
            out.append(chunk)
            if limit and len(out) >= limit:
                await events.aclose()
                break
        return out

    plain = anyio.run(collect, ListStream(["a", 'b "quoted"']))
    assert plain == [b'data: {"result": {"log_data": "a"}}\n\n',
                     b'data: {"result": {"log_data": "b \\"quoted\\""}}\n\n', b"data: [DONE]\n\n"]
    broken = anyio.run(collect, Broken([]))
    assert broken[1] == b'data: {"error": {"message": "the engine went away"}}\n\n' and broken[-1].endswith(
        b"[DONE]\n\n")
    class Slow(ListStream):
        def __iter__(self):
            threading.Event().wait(0.3)
            yield "late"
    slow = anyio.run(collect, Slow([]))
    assert slow[0] == b": keepalive\n\n" and slow[-2:] == [b'data: {"result": {"log_data": "late"}}\n\n',
                                                          b"data: [DONE]\n\n"]
    endless = Endless()
    assert len(anyio.run(collect, endless, 3)) == 3
    assert endless.closed.is_set()                      # the client left: the follow is closed
