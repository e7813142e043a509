"""``lazyllm run training_service``: upstream's fine-tuning API (``runtime.train``, ``/v1/finetuneTasks``) as a
service of one unit, the controller, started through ``services.start`` like every other service (``--dry-run``,
``--foreground``, ``ps``, ``logs`` and ``stop`` work).

The controller's container is the one ``services.controller_unit`` describes for every controller (the CLI's own
code read-only, the host's facts in a file, the engine's socket through its group, the state volume, the tokens
on stdin), plus:
- the model roots at /models/N: base models are folders under them, read-only in the jobs; the first root also
  receives exports (written by a one-shot container of the finetune stack, as uid 10001: it must be writable);
- the data roots read-only at /data/N: a dataset named by its path is a file under them (URLs and uploads need
  none).

Each job is a container of the finetune stack (``lazyllm install finetune``), which the CLI builds before the
controller starts; the controller never builds. Jobs get no network, the model read-only, their own volume.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from functools import partial

from ..errors import UsageError
from ..launch.spec import MountSpec, service_labels
from ..launch.unit import Service
from ..requests import TrainServiceRequest
from .controller_unit import (
    STATE_TARGET,
    ControllerSpec,
    ModelRoot,
    Tokens,
    build_flags,
    check_free,
    controller_gpus,
    controller_unit,
    engine_note,
    engine_socket,
    folder_roots,
    token_line,
    tokens_for,
)

DEFAULT_PORT = 31341                    # upstream's LazyCraft deployment
API_PORT = 31341                        # inside the container
DEFAULT_NAME = "lazyllm-train"
GROUP = "infer-controller"              # the controller's packages (docker, pydantic...) are the same as infer's
FINETUNE = "finetune"                   # recipes/groups/finetune.yaml: the jobs' stack
DB_PATH = f"{STATE_TARGET}/train.db"
TOKENS_TARGET = "/tmp/lazyllm/train-tokens"
MODELS_TARGET, DATA_TARGET = "/models", "/data"


@dataclass(frozen=True)
class Described:
    service: Service
    jobs: object                        # the finetune stack's plan
    roots: tuple[ModelRoot, ...]
    data: tuple[ModelRoot, ...]
    gpus: tuple[int, ...]
    tokens: Tokens
    volume: str


def describe(request: TrainServiceRequest) -> Described:
    """The controller's unit, the jobs' stack to build first, and what the summary says. Checks every input."""
    from .. import host as host_mod
    from ..resolve import resolve
    from .start import gpu_mode
    launch, build = request.launch, request.build
    if request.cpu_jobs < 1:
        raise UsageError(f"--cpu-jobs {request.cpu_jobs}: at least 1", "e.g. --cpu-jobs 1")
    host = host_mod.host_facts()
    gpus = controller_gpus(request.gpus, host)
    roots = folder_roots(request.models, MODELS_TARGET, "--models", writable=True)
    data = folder_roots(request.data, DATA_TARGET, "--data")
    socket = engine_socket(launch.dry_run, "training_service")
    name = launch.name or DEFAULT_NAME
    if not launch.dry_run:
        check_free(name, launch, DEFAULT_PORT)
    volume = f"{name}-state"
    tokens = tokens_for(request, volume, launch.dry_run, kind="train")
    plan = resolve((GROUP,), build, host=host)
    jobs = resolve((FINETUNE,), build, host=host)
    command = ["python3", "-m", "lazyllm_images.runtime.train", "--host", "0.0.0.0", "--port", str(API_PORT),
               "--db", DB_PATH, "--token-file", TOKENS_TARGET, "--gpus", ",".join(map(str, gpus)) or "none",
               "--cpu-jobs", str(request.cpu_jobs)]
    for flag, found in (("--models", roots), ("--data", data)):
        for root in found:
            command += [flag, f"{root.host}={root.inner}"]
    command += build_flags(build)
    unit = controller_unit(ControllerSpec(
        name=name, role="training", plan=plan, command=tuple(command), api_port=API_PORT,
        host_port=launch.port or DEFAULT_PORT, host=launch.host, tokens_target=TOKENS_TARGET,
        url=("api", "/v1/finetuneTasks"),
        mounts=tuple(MountSpec("bind", r.inner, r.host, read_only=True, purpose=purpose)
                     for found, purpose in ((roots, "model"), (data, "documents")) for r in found),
        labels=service_labels(name, "training", framework="train-controller",
                              model=",".join(r.host for r in roots) or None, gpus=",".join(map(str, gpus)) or None)),
        socket, tokens)
    notes = [f"jobs: the finetune stack {jobs.top.ref}  (built before the controller starts)",
             engine_note(socket), token_line(tokens, "jobs")]
    service = Service(name, (unit,), gpu_mode([unit], launch.engine_free), notes=tuple(f"# {n}" for n in notes))
    return Described(service, jobs, roots, data, gpus, tokens, volume)


def run(request: TrainServiceRequest) -> None:
    from ..build.runner import build_plan
    from ..launch.targets import check_portable
    from .start import start
    found = describe(request)
    check_portable(found.service, request.launch.target)        # before anything is built
    if not request.launch.dry_run:
        sys.stderr.write(f"stack for the jobs (finetune): {found.jobs.stack_tag}\n")
        build_plan(found.jobs, request.build, write_lock=False, quiet=True)
    start(found.service, request.launch, request.build, partial(print_summary, found))


def print_summary(found: Described, urls: dict[str, str]) -> None:
    api = urls["api"]
    name = found.service.name
    token = f"$(cat {found.tokens.where})" if found.tokens.generated else "TOKEN"
    print(f"service:    {name}")
    print(f"api:        {api}")
    key, _, said = token_line(found.tokens, "jobs").partition(": ")
    print(f"{key + ':':<11} {said}")
    print(f"models:     {', '.join(r.host for r in found.roots) or 'none'}"
          + (f" (base models are folders under them; exports go to {found.roots[0].host})" if found.roots else
             " (give --models DIR: base models are folders under it)"))
    print(f"data:       {', '.join(r.host for r in found.data) or 'none'} (datasets by path; URLs and uploads to "
          "/v1/files need none)")
    print(f"gpus:       {','.join(map(str, found.gpus)) or 'none (jobs train on the CPU)'}")
    print(f"jobs:       {found.jobs.top.ref} (the finetune stack)")
    print(f"try:        curl -H \"token: {token}\" {api}/jobs")
    body = json.dumps({"name": "demo", "model": "MODEL_FOLDER", "training_args": {"learning_rate": 1e-4},
                       "training_dataset": [{"dataset_download_uri": "DATA.json", "format": 1,
                                             "dataset_id": "demo"}]})
    print(f"create:     curl -H \"token: {token}\" -H 'Content-Type: application/json' {api} -d '{body}'")
    print(f"manage:     lazyllm ps | lazyllm logs {name} | lazyllm stop {name} (running jobs go on; the next start "
          "finds them)")
