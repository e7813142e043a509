"""``python -m lazyllm_images.runtime.train --db PATH --models HOST=INNER ... [--data HOST=INNER ...] --gpus N``

Starts the training controller: records in the SQLite file ``--db`` (put it in a volume), tokens from
``--token-file``, the model roots a job's base model is named under (the first one also receives exports), the
data roots a dataset path is named under, the GPUs it may hand out. Before serving it re-adopts the job
containers it launched earlier (found by label): a job that ran on while the controller was down goes on being
watched, one that ended meanwhile is Done or Failed by its exit.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from ..controller.cliargs import (
    build_flags,
    build_options,
    common_flags,
    load_tokens,
    positive,
    root,
    serve,
)
from .datasets import MAX_BYTES

DEFAULT_PORT = 31341                     # LazyCraft's deployment of upstream's service


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m lazyllm_images.runtime.train",
                                description="Training-job controller (upstream's /v1/finetuneTasks).")
    common_flags(p, DEFAULT_PORT)
    p.add_argument("--models", action="append", type=root, default=[], metavar="HOST=INNER",
                   help="a model root (HOST on the engine's host, seen here at INNER); repeatable. Base models are "
                        "folders under these; exports go to the first")
    p.add_argument("--data", action="append", type=root, default=[], metavar="HOST=INNER",
                   help="a data root: datasets named by a path are files under these; repeatable")
    p.add_argument("--state", type=Path, help="where uploads and the jobs' rows are kept (default: beside --db)")
    p.add_argument("--cpu-jobs", type=int, default=1,
                   help="jobs without a GPU that run at once; the others wait (default 1)")
    p.add_argument("--poll-interval", type=positive, default=2.0, help="seconds between polls (default 2)")
    p.add_argument("--pause-grace", type=positive, default=120.0,
                   help="seconds a paused or cancelled job has to save its checkpoint (default 120)")
    p.add_argument("--max-dataset-bytes", type=int, default=MAX_BYTES,
                   help=f"largest dataset or upload (default {MAX_BYTES // 2**20} MiB)")
    build_flags(p)
    return p.parse_args(argv)


def real_launcher(args: argparse.Namespace, instance: str):
    from .job_launcher import TrainLauncher
    return TrainLauncher(instance, build=build_options(args), grace_s=args.pause_grace)


def build(args: argparse.Namespace, make_launcher: Callable | None = None):
    """(the app, what to tell the operator at start) from ARGS."""
    from ..controller.core import Controller
    from ..controller.gpus import GpuPool
    from ..controller.modelpaths import ModelRoots
    from ..controller.store import Store
    from .app import create_app
    from .datasets import DataStore
    from .service import TrainService
    store = Store(args.db)
    ring, token_told = load_tokens(args)
    instance = store.instance_id()
    launcher = (make_launcher or real_launcher)(args, instance)
    controller = Controller(store, launcher, GpuPool(args.gpus), "train", server=False,
                            poll_interval=args.poll_interval, cpu_slots=max(1, args.cpu_jobs))
    roots = ModelRoots(args.models, allow_hub=False)
    data = DataStore(args.state or args.db.parent, args.data, args.max_dataset_bytes)
    service = TrainService(controller, roots, data, args.models[0] if args.models else None, args.max_body_bytes)
    told = [f"records: {args.db} (controller {instance})",
            f"model roots: {roots.describe()}; exports go to {args.models[0].host if args.models else 'nowhere'}",
            f"data roots: {', '.join(r.host for r in args.data) or 'none'} (also URLs and uploads)",
            f"GPUs: {','.join(map(str, args.gpus)) or 'none'}; jobs without a GPU at once: {max(1, args.cpu_jobs)}",
            token_told]
    return create_app(service, ring), told


def main(argv: list[str] | None = None, make_launcher: Callable | None = None) -> int:
    args = parse_args(argv)
    return serve(args, lambda: build(args, make_launcher), "fine-tuning API (/v1/finetuneTasks)")


if __name__ == "__main__":
    raise SystemExit(main())
