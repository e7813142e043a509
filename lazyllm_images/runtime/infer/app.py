"""The inference-service API: upstream ``InferServer``'s routes and shapes, on the shared controller.

- ``POST /v1/inference_services`` ``{"service_name", "model_name", "framework", "num_gpus"}`` -> ``{"lwsName"}``;
  400 for bad input or an active service of that name, 409 when the GPUs can never fit (or the framework's stack
  is not built), 413 for a body over the limit.
- ``GET /v1/inference_services`` -> ``{service_name: record}``; ``GET .../{id}`` -> the record: ``status``
  (Pending, Running, Ready, Done, Failed, Cancelled), ``reason``, and once Ready ``endpoint`` (ending in ``/v1/``)
  and ``deploy_method``.
- ``GET .../{id}/events`` -> ``{"log": TEXT}``, the last 2000 lines (``?tail=N``); ``?follow=true``: those, then
  new ones, as Server-Sent Events ``data: {"result": {"log_data": LINE}}`` until the server stops, then
  ``data: [DONE]``.
- ``DELETE .../{id}``: an active service is stopped (``{"status": "Cancelled"}``, the record stays); a finished
  one's record is removed.
- ``GET /v1/models``: the caller's Ready services, OpenAI-style. ``GET /healthz``: open.

Every route but ``/healthz`` needs a token (upstream's ``token`` header, or ``Authorization: Bearer``); a token
sees only its own services: another token's service is a 404.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone

import anyio
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..controller import http
from ..controller.core import Controller
from ..controller.modelpaths import ModelRoots
from ..controller.records import READY, Record
from ..controller.tokens import TokenRing
from .request import DEFAULT_FRAMEWORKS, DEPLOY_METHOD, parse_create

BASE = "/v1/inference_services"
DEFAULT_TAIL = 2000                     # /events lines unless ?tail=N says (a server logs every request)


@dataclass
class InferService:
    controller: Controller
    roots: ModelRoots
    frameworks: tuple[str, ...] = DEFAULT_FRAMEWORKS
    max_body: int = http.DEFAULT_MAX_BODY


def stamp(at: float | None) -> str | None:
    """Upstream's time format, ``%y%m%d%H%M%S%f`` (UTC)."""
    return datetime.fromtimestamp(at, timezone.utc).strftime("%y%m%d%H%M%S%f") if at else None


def view(record: Record) -> dict:
    facts, handle, spec = record.facts, record.handle or {}, record.spec
    ready = record.status == READY
    framework = facts.get("framework") or spec.get("framework")
    return {
        "lwsName": record.name, "service_name": record.name, "status": record.status,
        "reason": record.reason or None,
        "model_name": spec.get("model"), "framework": spec.get("framework"),
        "deploy_method": facts.get("deploy_method") or DEPLOY_METHOD.get(framework or "", ""),
        "endpoint": handle.get("endpoint", "unknown") if ready else "unknown",
        "served_model_name": facts.get("served_name"),
        "num_gpus": record.gpus,
        "hyperparameters": {"framework": framework, "num_gpus": record.gpus, "tp": record.gpus,
                            "devices": record.devices},
        "created_at": stamp(record.created_at), "started_at": stamp(record.started_at),
        "ready_at": stamp(record.ready_at), "finished_at": stamp(record.finished_at),
        "cost": record.cost(),
        "log_path": f"{BASE}/{record.name}/events",
    }


def _service(request: Request) -> InferService:
    return request.app.state.infer


async def create(request: Request) -> Response:
    svc = _service(request)
    body = await http.read_json(request, svc.max_body)
    parsed = parse_create(body, svc.roots, svc.frameworks, svc.controller.pool.total)
    record = await anyio.to_thread.run_sync(svc.controller.create, http.owner(request), parsed.name,
                                            parsed.spec(), parsed.gpus)
    return JSONResponse({"lwsName": record.name, "status": record.status})


async def list_services(request: Request) -> Response:
    records = await anyio.to_thread.run_sync(_service(request).controller.list, http.owner(request))
    return JSONResponse({r.name: view(r) for r in records})


async def get_service(request: Request) -> Response:
    record = await anyio.to_thread.run_sync(_service(request).controller.get, http.owner(request),
                                            request.path_params["name"])
    return JSONResponse(view(record))


async def events(request: Request) -> Response:
    follow = http.flag(request, "follow")
    tail = http.int_query(request, "tail") or DEFAULT_TAIL
    controller = _service(request).controller
    stream = await anyio.to_thread.run_sync(lambda: controller.logs(http.owner(request),
                                                                    request.path_params["name"], follow, tail))
    if follow:
        return http.sse_response(stream)
    lines = await anyio.to_thread.run_sync(lambda: list(stream))
    return JSONResponse({"log": "\n".join(lines)})


async def delete(request: Request) -> Response:
    record, removed = await anyio.to_thread.run_sync(_service(request).controller.delete, http.owner(request),
                                                     request.path_params["name"])
    return JSONResponse({"status": record.status, "deleted": removed})


async def models(request: Request) -> Response:
    records = await anyio.to_thread.run_sync(_service(request).controller.list, http.owner(request))
    data = [{"id": r.name, "object": "model", "created": int(r.created_at), "owned_by": "lazyllm",
             "endpoint": (r.handle or {}).get("endpoint"), "served_model_name": r.facts.get("served_name"),
             "framework": r.facts.get("framework")}
            for r in records if r.status == READY]
    return JSONResponse({"object": "list", "data": data})


async def healthz(_: Request) -> Response:
    return JSONResponse({"status": "ok", "time": time.time()})


ROUTES = [
    Route(BASE, create, methods=["POST"]),
    Route(BASE, list_services, methods=["GET"]),
    Route(BASE + "/{name}", get_service, methods=["GET"]),
    Route(BASE + "/{name}", delete, methods=["DELETE"]),
    Route(BASE + "/{name}/events", events, methods=["GET"]),
    Route("/v1/models", models, methods=["GET"]),
    Route("/healthz", healthz, methods=["GET"]),
]


def create_app(service: InferService, ring: TokenRing, start_controller: bool = True) -> Starlette:
    """The app; with START_CONTROLLER, its lifespan re-adopts what runs (before the first request is served)
    and runs the poll loop until shutdown."""
    app = Starlette(routes=ROUTES, lifespan=http.controller_lifespan(service.controller, start_controller), exception_handlers=http.EXCEPTION_HANDLERS,
                    middleware=[Middleware(http.OwnerGate, ring=ring)])
    app.state.infer = service
    return app
