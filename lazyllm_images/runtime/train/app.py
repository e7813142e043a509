"""The training API: upstream ``TrainServer``'s routes and shapes, on the shared controller.

- ``POST /v1/finetuneTasks[?finetune_task_id=KEY]`` -> ``{"finetune_task_id": "ft-...", "status"}``; KEY is an
  idempotency key (this token's job made with it is answered again, nothing starts).
- ``GET /v1/finetuneTasks/jobs`` -> ``{job_id: record}``; ``GET .../{id}`` -> the record (status, progress,
  checkpoint, cost, typed error).
- ``GET .../{id}/log`` -> SSE ``data: {"result": {"log_data": LINE}}`` then ``data: [DONE]``; ``?follow=true``
  goes on with new lines until the job's run ends.
- ``POST .../{id}:pause`` -> ``{"status": "Suspended", "checkpoint_path", "checkpoint_step", "cost"}``;
  ``POST .../{id}:resume`` -> ``{"status", "resume_type": "resume"|"restart"}``.
- ``DELETE .../{id}``: a running job is cancelled (its checkpoint kept); any other one is forgotten with its
  files.
- ``POST .../{id}/model:export`` ``{"name", "model_display_name", "model_id"}``: the merged model written to the
  first model root as MODEL_DISPLAY_NAME (409 when it exists).
- ``GET .../{id}/runningMetrics``: the loss history and checkpoints (upstream: 404 "not implemented").
- ``POST /v1/files`` (multipart ``file``, or the raw body with ``?filename=``) -> ``{"id": "file-...", ...}``, a
  dataset a create names by its id; ``GET /v1/files``.
- OpenAI-shaped aliases over the same jobs: ``/v1/fine_tuning/jobs[/{id}[/cancel|pause|resume|events|checkpoints]]``
  (openai_api.py).

Every route but ``/healthz`` needs a known token (401 otherwise); a token sees only its own jobs (404).
"""

from __future__ import annotations


import anyio
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..controller import http
from ..controller.core import ApiError
from ..controller.records import DONE, FAILED, Record
from ..controller.tokens import TokenRing
from ..infer.app import healthz, stamp
from .service import TrainService, checkpoints

BASE = "/v1/finetuneTasks"


def view(record: Record) -> dict:
    spec, extra = record.spec, record.extra
    progress = extra.get("progress") or {}
    marks = checkpoints(record)
    exports = extra.get("exports") or []
    percent = 100.0 if record.status == DONE else progress.get("percent")
    return {
        "finetune_task_id": record.name, "job_id": record.name, "name": spec.get("name"),
        "model_id": spec.get("model_id"), "base_model": spec.get("model"), "stage": spec.get("stage"),
        "status": record.status, "reason": record.reason or None,
        "error": (extra.get("error") or {"code": "failed", "message": record.reason}) if record.status == FAILED
        else None,
        "created_at": stamp(record.created_at), "started_at": stamp(record.started_at),
        "finished_at": stamp(record.finished_at), "cost": record.cost(),
        "fine_tuned_model": exports[-1]["model"] if exports else None, "exported_models": exports,
        "data_path": spec["training_dataset"][0]["dataset_download_uri"] if spec.get("training_dataset") else None,
        "training_dataset": spec.get("training_dataset"), "validation_dataset": spec.get("validation_dataset"),
        "train_rows": spec.get("train_rows"), "eval_rows": spec.get("eval_rows"),
        "hyperparameters": spec.get("training_args"), "warnings": spec.get("warnings") or [],
        "log_path": f"{BASE}/{record.name}/log", "progress_percent": percent,
        "progress": {k: progress.get(k) for k in ("phase", "step", "max_steps", "epoch", "num_train_epochs", "loss",
                                                 "learning_rate", "eval_loss", "percent", "resumed_from")},
        "checkpoint_path": marks[-1]["path"] if marks else "", "checkpoint_step": marks[-1]["step"] if marks else None,
        "ngpus": record.gpus, "devices": record.devices, "device": record.facts.get("device"),
    }


def _svc(request: Request) -> TrainService:
    return request.app.state.train


def _id(request: Request) -> str:
    return request.path_params["job_id"]


async def _call(func, *args):
    return await anyio.to_thread.run_sync(lambda: func(*args))


async def _optional_json(request: Request, limit: int) -> dict:
    """Upstream's pause/resume bodies ({"name", ...}); an empty body is taken as {}."""
    raw = await request.body()
    if len(raw) > limit:
        raise ApiError(413, "body_too_large", f"the body is over the limit of {limit} bytes")
    if not raw.strip():
        return {}
    return await http.read_json(request, limit)


async def create(request: Request) -> Response:
    svc = _svc(request)
    body = await http.read_json(request, svc.max_body)
    record = await _call(svc.create, http.owner(request), body, request.query_params.get("finetune_task_id"))
    return JSONResponse({"finetune_task_id": record.name, "status": record.status})


async def list_jobs(request: Request) -> Response:
    records = await _call(_svc(request).controller.list, http.owner(request))
    return JSONResponse({r.name: view(r) for r in records})


async def get_job(request: Request) -> Response:
    return JSONResponse(view(await _call(_svc(request).controller.get, http.owner(request), _id(request))))


async def log(request: Request) -> Response:
    follow = http.flag(request, "follow")
    stream = await _call(_svc(request).log_lines, http.owner(request), _id(request), follow)
    return http.sse_response(stream)


async def pause(request: Request) -> Response:
    svc = _svc(request)
    await _optional_json(request, svc.max_body)
    record = await _call(svc.pause, http.owner(request), _id(request))
    marks = checkpoints(record)
    return JSONResponse({"status": record.status, "checkpoint_path": marks[-1]["path"] if marks else "",
                         "checkpoint_step": marks[-1]["step"] if marks else None, "cost": record.cost()})


async def resume(request: Request) -> Response:
    svc = _svc(request)
    body = await _optional_json(request, svc.max_body)
    record, how = await _call(svc.resume, http.owner(request), _id(request), body.get("checkpoint_path"))
    return JSONResponse({"status": record.status, "resume_type": how})


async def delete(request: Request) -> Response:
    record, removed = await _call(_svc(request).delete, http.owner(request), _id(request))
    return JSONResponse({"status": record.status, "deleted": removed})


async def export(request: Request) -> Response:
    svc = _svc(request)
    body = await http.read_json(request, svc.max_body)
    return JSONResponse(await _call(svc.export, http.owner(request), _id(request), body))


async def metrics(request: Request) -> Response:
    record = await _call(_svc(request).controller.get, http.owner(request), _id(request))
    progress = record.extra.get("progress") or {}
    return JSONResponse({"finetune_task_id": record.name, "status": record.status, "progress": view(record)["progress"],
                         "losses": progress.get("losses") or [], "checkpoints": checkpoints(record)})


async def upload(request: Request) -> Response:
    svc, owner = _svc(request), http.owner(request)
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        form = await request.form()
        item = form.get("file")
        if item is None or isinstance(item, str):
            raise ApiError(400, "missing_file", "send the dataset as the multipart field 'file'")
        data = await item.read()
        if len(data) > svc.data.max_bytes:
            raise ApiError(413, "file_too_large", f"the file is over the limit of {svc.data.max_bytes} bytes")
        meta = await _call(svc.data.save_upload, owner, item.filename or "", [data])
    else:
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > svc.data.max_bytes:
                raise ApiError(413, "file_too_large", f"the file is over the limit of {svc.data.max_bytes} bytes")
            chunks.append(chunk)
        meta = await _call(svc.data.save_upload, owner, request.query_params.get("filename", ""), chunks)
    return JSONResponse(meta)


async def list_files(request: Request) -> Response:
    files = await _call(_svc(request).data.uploads, http.owner(request))
    return JSONResponse({"object": "list", "data": files})


ROUTES = [
    Route(BASE, create, methods=["POST"]),
    Route(BASE + "/jobs", list_jobs, methods=["GET"]),          # before /{id}: "jobs" is never a job id
    Route(BASE + "/{job_id}:pause", pause, methods=["POST"]),
    Route(BASE + "/{job_id}:resume", resume, methods=["POST"]),
    Route(BASE + "/{job_id}/log", log, methods=["GET"]),
    Route(BASE + "/{job_id}/runningMetrics", metrics, methods=["GET"]),
    Route(BASE + "/{job_id}/model:export", export, methods=["POST"]),
    Route(BASE + "/{job_id}", get_job, methods=["GET"]),
    Route(BASE + "/{job_id}", delete, methods=["DELETE"]),
    Route("/v1/files", upload, methods=["POST"]),
    Route("/v1/files", list_files, methods=["GET"]),
    Route("/healthz", healthz, methods=["GET"]),
]


def create_app(service: TrainService, ring: TokenRing, start_controller: bool = True) -> Starlette:
    """The app (with the OpenAI-shaped aliases, openai_api.py); with START_CONTROLLER its lifespan re-adopts the
    running jobs before serving and polls them."""
    from .openai_api import ROUTES as OPENAI_ROUTES

    app = Starlette(routes=[*ROUTES, *OPENAI_ROUTES], lifespan=http.controller_lifespan(service.controller, start_controller), exception_handlers=http.EXCEPTION_HANDLERS,
                    middleware=[Middleware(http.OwnerGate, ring=ring)])
    app.state.train = service
    return app
