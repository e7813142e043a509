"""OpenAI-shaped aliases of the training API (``/v1/fine_tuning/jobs``), over the same jobs as
``/v1/finetuneTasks``: create, list, get, cancel, pause, resume, events (metrics and status) and checkpoints.

A create maps onto upstream's body: ``model`` (a folder under the model roots), ``training_file`` and
``validation_file`` (an upload's ``file-...`` id, a path under the data roots or a URL; rows in any of the three
formats), ``method.type`` supervised | dpo, ``hyperparameters`` ``n_epochs``, ``batch_size`` and
``learning_rate_multiplier`` (times 1e-4), ``suffix`` (the job's name).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..controller import http
from ..controller.core import ApiError
from ..controller.records import Record
from .app import _call, _id, _svc
from .service import checkpoints

BASE = "/v1/fine_tuning/jobs"
STATUS = {"Pending": "queued", "Running": "running", "Suspended": "paused", "Done": "succeeded",
          "Failed": "failed", "Cancelled": "cancelled"}
BASE_LR = 1e-4
STAGES = {"supervised": "sft", "dpo": "dpo"}


def _auto(value: object) -> object:
    return None if value in (None, "auto") else value


def to_upstream(body: dict) -> dict:
    """An OpenAI create body as upstream's."""
    method = body.get("method") or {"type": "supervised"}
    kind = method.get("type", "supervised") if isinstance(method, dict) else None
    if kind not in STAGES:
        raise ApiError(400, "bad_method", "method.type must be supervised or dpo")
    hyper = {**(body.get("hyperparameters") or {}), **((method.get(kind) or {}).get("hyperparameters") or {})}
    args: dict = {}
    for theirs, ours in (("n_epochs", "num_train_epochs"), ("batch_size", "per_device_train_batch_size"),
                         ("beta", "pref_beta")):
        if _auto(hyper.get(theirs)) is not None:
            args[ours] = hyper[theirs]
    multiplier = _auto(hyper.get("learning_rate_multiplier"))
    args["learning_rate"] = BASE_LR * float(multiplier) if multiplier is not None else BASE_LR
    if body.get("seed") is not None:
        args["seed"] = body["seed"]
    if not isinstance(body.get("training_file"), str):
        raise ApiError(422, "invalid_request", "'training_file' is required: an uploaded file's id, a path or a URL")

    def dataset(ref: str) -> dict:
        return {"dataset_download_uri": ref, "format": 0, "dataset_id": ref}
    return {"name": body.get("suffix") or "ft", "model": body.get("model"), "stage": STAGES[kind],
            "training_args": args, "training_dataset": [dataset(body["training_file"])],
            "validation_dataset": [dataset(body["validation_file"])] if body.get("validation_file") else []}


def job(record: Record) -> dict:
    spec, args = record.spec, record.spec.get("training_args") or {}
    error = record.extra.get("error") if record.status == "Failed" else None
    exports = record.extra.get("exports") or []
    return {
        "id": record.name, "object": "fine_tuning.job", "model": spec.get("model"),
        "created_at": int(record.created_at), "finished_at": int(record.finished_at) if record.finished_at else None,
        "fine_tuned_model": exports[-1]["model"] if exports else None, "status": STATUS.get(record.status, "queued"),
        "error": {"code": error.get("code"), "message": error.get("message"), "param": None} if error else None,
        "hyperparameters": {"n_epochs": args.get("num_train_epochs"), "batch_size": args.get(
            "per_device_train_batch_size"), "learning_rate_multiplier": (args.get("learning_rate") or 0) / BASE_LR},
        "method": {"type": "dpo" if spec.get("stage") == "dpo" else "supervised"},
        "training_file": (spec.get("training_dataset") or [{}])[0].get("dataset_download_uri"),
        "validation_file": (spec.get("validation_dataset") or [{}])[0].get("dataset_download_uri")
        if spec.get("validation_dataset") else None,
        "seed": args.get("seed"), "result_files": [], "trained_tokens": None, "estimated_finish": None,
        "organization_id": "lazyllm", "suffix": spec.get("name"),
    }


async def create(request: Request) -> Response:
    svc = _svc(request)
    body = await http.read_json(request, svc.max_body)
    record = await _call(svc.create, http.owner(request), to_upstream(body), None)
    return JSONResponse(job(record))


async def list_jobs(request: Request) -> Response:
    records = await _call(_svc(request).controller.list, http.owner(request))
    newest = sorted(records, key=lambda r: r.created_at, reverse=True)
    limit = http.int_query(request, "limit", 1, 100) or 20
    return JSONResponse({"object": "list", "data": [job(r) for r in newest[:limit]], "has_more": len(newest) > limit})


async def get_job(request: Request) -> Response:
    return JSONResponse(job(await _call(_svc(request).controller.get, http.owner(request), _id(request))))


async def cancel(request: Request) -> Response:
    svc, owner = _svc(request), http.owner(request)
    record = await _call(svc.controller.get, owner, _id(request))
    if not record.active:
        raise ApiError(400, "not_active", f"{record.name} is {STATUS.get(record.status)}: nothing to cancel")
    await _call(svc.delete, owner, _id(request))
    return JSONResponse(job(await _call(svc.controller.get, owner, _id(request))))


async def pause(request: Request) -> Response:
    return JSONResponse(job(await _call(_svc(request).pause, http.owner(request), _id(request))))


async def resume(request: Request) -> Response:
    record, _ = await _call(_svc(request).resume, http.owner(request), _id(request), None)
    return JSONResponse(job(record))


async def events(request: Request) -> Response:
    record = await _call(_svc(request).controller.get, http.owner(request), _id(request))
    progress = record.extra.get("progress") or {}
    at = int(record.created_at)
    out = [{"object": "fine_tuning.job.event", "id": f"ftevent-{record.uid}-m{step}", "created_at": at,
            "level": "info", "type": "metrics", "message": f"Step {step}: training loss={loss:.4f}",
            "data": {"step": step, "train_loss": loss, "total_steps": progress.get("max_steps")}}
           for step, loss in progress.get("losses") or []]
    out.append({"object": "fine_tuning.job.event", "id": f"ftevent-{record.uid}-status", "level":
                "error" if record.status == "Failed" else "info", "type": "message",
                "created_at": int(record.finished_at or record.created_at),
                "message": f"Job {STATUS.get(record.status)}" + (f": {record.reason}" if record.reason else ""),
                "data": {}})
    out.reverse()                                            # newest first, as OpenAI lists them
    limit = http.int_query(request, "limit", 1, 1000) or 20
    return JSONResponse({"object": "list", "data": out[:limit], "has_more": len(out) > limit})


async def list_checkpoints(request: Request) -> Response:
    record = await _call(_svc(request).controller.get, http.owner(request), _id(request))
    data = [{"object": "fine_tuning.job.checkpoint", "id": f"ftckpt-{record.uid}-{c['step']}",
             "created_at": int(c.get("at") or record.created_at), "fine_tuned_model_checkpoint": c["path"],
             "step_number": c["step"], "metrics": {"step": c["step"], "train_loss": c.get("loss")},
             "fine_tuning_job_id": record.name} for c in reversed(checkpoints(record))]
    return JSONResponse({"object": "list", "data": data, "has_more": False})


ROUTES = [
    Route(BASE, create, methods=["POST"]),
    Route(BASE, list_jobs, methods=["GET"]),
    Route(BASE + "/{job_id}", get_job, methods=["GET"]),
    Route(BASE + "/{job_id}/cancel", cancel, methods=["POST"]),
    Route(BASE + "/{job_id}/pause", pause, methods=["POST"]),
    Route(BASE + "/{job_id}/resume", resume, methods=["POST"]),
    Route(BASE + "/{job_id}/events", events, methods=["GET"]),
    Route(BASE + "/{job_id}/checkpoints", list_checkpoints, methods=["GET"]),
]
