"""``lazyllm run infer_service``: upstream's inference-service API (``runtime.infer``, ``/v1/inference_services``)
as a service of one unit, the controller, started through ``services.start`` like every other service (so
``--dry-run``, ``--foreground``, ``ps``, ``logs`` and ``stop`` work).

The controller launches each inference service with ``deploy.model_server``: THE CLI'S OWN CODE, bind-mounted
read-only from this host (the package, its dist-info, and for a source checkout the recipes and Dockerfile
templates), so it computes exactly the image names the CLI computes. It never builds: the CLI builds, before the
controller starts, the stacks of the frameworks ``--frameworks`` names (by default the ones ``auto`` picks on this
host: an LLM's and an embedding model's), including the packaged models those frameworks serve; a framework whose
stack is missing is refused with 409.

What the controller's container holds, and nothing more:
- the engine's socket (``DOCKER_HOST``'s unix socket) at /var/run/docker.sock, reached through the socket's group
  (``--group-add`` by number); the container runs as uid 10001, every capability dropped, no-new-privileges, a
  read-only root and a tmpfs /tmp. Its API never passes raw container settings on: a client names a model (a
  folder under the roots, a packaged model or a hub id), a framework from the list and a GPU count;
- its records in the labelled volume ``NAME-state`` (SQLite), mounted at /var/lib/lazyllm;
- the model roots read-only at /models/N (``--models HOST=/models/N``: model containers bind the HOST path);
- the host's facts (arch, NVIDIA driver and GPUs, device nodes, the GPU plumbing) in a JSON file the CLI writes
  (``LAZYLLM_HOST_FACTS``): NVML and /dev are not in its container;
- the tokens on stdin only (``runtime.secret_exec`` writes them into its tmpfs): ``--token-file``'s, or one
  generated once per state volume and kept on this host in ``token_path`` (mode 0600).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from functools import partial

from ..errors import UsageError
from ..launch.spec import MountSpec, service_labels
from ..launch.unit import Service
from ..requests import BuildOptions, InferServiceRequest
from .controller_unit import (  # noqa: F401
    FACTS_FILE,
    FACTS_TARGET,
    STATE_TARGET,
    ControllerSpec,
    ModelRoot,
    Tokens,
    build_flags,
    check_free,
    cli_mounts,
    controller_gpus,
    controller_unit,
    engine_note,
    engine_socket,
    folder_roots,
    token_line,
    token_path,
    tokens_for,
)

DEFAULT_PORT = 31340                    # upstream's LazyCraft deployment
API_PORT = 31340                        # inside the container
DEFAULT_NAME = "lazyllm-infer"
GROUP = "infer-controller"              # recipes/groups/infer-controller.yaml
DB_PATH = f"{STATE_TARGET}/infer.db"
TOKENS_TARGET = "/tmp/lazyllm/infer-tokens"     # written from stdin into the tmpfs (runtime.secret_exec)
MODELS_TARGET = "/models"
CPU_FRAMEWORKS = ("auto", "embedding", "infinity", "vllm-cpu")
NVIDIA_FRAMEWORKS = ("auto", "vllm", "vllm-cpu", "lightllm", "lmdeploy", "infinity", "embedding")
REFUSED_FRAMEWORKS = {"mindie": "MindIE's generated configuration files would live in the controller's container, "
                                "where no model container can mount them"}


# ------------------------------------------------------------------ frameworks and their stacks

def default_frameworks(host) -> tuple[str, ...]:
    """The frameworks that run on this host: with an NVIDIA GPU every one, else the CPU ones."""
    return NVIDIA_FRAMEWORKS if host.nvidia.present else CPU_FRAMEWORKS


def parse_frameworks(values: tuple[str, ...] | list[str], host) -> tuple[str, ...]:
    """``--frameworks`` (comma-separated, repeatable) -> the allowed names; none given: this host's defaults."""
    from ..frameworks import NAMES
    names = [v.strip().lower().replace("_", "-") for text in values for v in text.split(",") if v.strip()]
    if not names:
        return default_frameworks(host)
    unknown = [n for n in names if n != "auto" and n not in NAMES]
    if unknown:
        from ..cli.common import close_matches
        served = ("auto",) + tuple(n for n in NAMES if n not in REFUSED_FRAMEWORKS)
        hint = close_matches(unknown[0], served)
        raise UsageError(f"--frameworks: unknown framework {unknown[0]!r}",
                         (f"did you mean {hint}? " if hint else "") + f"known: {', '.join(served)}")
    for name in names:
        if name in REFUSED_FRAMEWORKS:
            raise UsageError(f"--frameworks {name}: not served by infer_service yet ({REFUSED_FRAMEWORKS[name]})",
                             f"deploy it directly: 'lazyllm deploy MODEL --framework {name}'")
    return tuple(dict.fromkeys(names))


def auto_picks(host) -> tuple[str, ...]:
    """What ``auto`` chooses on this host for an LLM and for an embedding model (rerankers: the embedding one)."""
    from ..errors import LazyllmError
    from ..frameworks import auto
    picks = []
    for kind in ("llm", "embed"):
        try:
            picks.append(auto.choose(kind, host))
        except LazyllmError:            # e.g. no LLM framework for this host: auto refuses it at request time
            continue
    return tuple(dict.fromkeys(picks))


def frameworks_to_build(allowed: tuple[str, ...], explicit: bool, host) -> tuple[str, ...]:
    """The rule: every framework ``--frameworks`` names, plus ``auto``'s picks when auto is allowed; without
    ``--frameworks``, only auto's picks (building every framework at each start would take too long)."""
    named = [f for f in allowed if f != "auto"] if explicit else []
    picks = list(auto_picks(host)) if "auto" in allowed else []
    return tuple(dict.fromkeys(named + picks))


def stack_plans(frameworks: tuple[str, ...], build: BuildOptions, host) -> list[tuple[str, object]]:
    """(what, plan) for each framework: the stack a model folder or a hub id runs on, and one per packaged model
    of a kind it serves (its weights are a layer of its own stack). The same ``resolve`` call as
    ``deploy.model_server`` makes, so the controller finds exactly these images."""
    from ..frameworks import get
    from ..resolve import resolve
    from .models import catalog
    out = []
    for name in frameworks:
        out.append((name, resolve((), build, host=host, frameworks=(name,))))
        kinds = get(name).model_kinds
        for entry in catalog():
            if entry.get("kind") in kinds:
                out.append((f"{name} + {entry['name']}", resolve((entry["package"],), build, host=host,
                                                                  frameworks=(name,))))
    return out


# ------------------------------------------------------------------ what the container gets from this host

def model_roots(dirs: tuple[str, ...]) -> tuple[ModelRoot, ...]:
    """``--models DIR``: existing folders the controller's user can list, each at /models/N."""
    return folder_roots(dirs, MODELS_TARGET)


# ------------------------------------------------------------------ the service

@dataclass(frozen=True)
class Described:
    service: Service
    allowed: tuple[str, ...]
    built: tuple[str, ...]
    stacks: tuple[tuple[str, object], ...]
    roots: tuple[ModelRoot, ...]
    gpus: tuple[int, ...]
    tokens: Tokens
    endpoint_host: str
    volume: str


def endpoint_host(request: InferServiceRequest) -> str:
    from ..runtime.netaddr import is_wildcard
    if request.endpoint_host:
        return request.endpoint_host
    host = request.launch.host
    return ("::1" if ":" in host else "127.0.0.1") if is_wildcard(host) else host


def describe(request: InferServiceRequest) -> Described:
    """The controller's unit, the stacks to build first, and what the summary says. Checks every input first."""
    from .. import host as host_mod
    from ..resolve import resolve
    from . import hub
    from .start import gpu_mode
    launch, build = request.launch, request.build
    host = host_mod.host_facts()
    allowed = parse_frameworks(request.frameworks, host)
    built = frameworks_to_build(allowed, bool(request.frameworks), host)
    gpus = controller_gpus(request.gpus, host)
    roots = model_roots(request.models)
    socket = engine_socket(launch.dry_run)
    name = launch.name or DEFAULT_NAME
    if not launch.dry_run:
        check_free(name, launch, DEFAULT_PORT)
    volume = f"{name}-state"
    tokens = tokens_for(request, volume, launch.dry_run)
    settings = hub.settings()                       # checked now: a bad HF_ENDPOINT is an error before anything
    plan = resolve((GROUP,), build, host=host)
    stacks = tuple(stack_plans(built, build, host))
    ends = endpoint_host(request)
    command = ["python3", "-m", "lazyllm_images.runtime.infer", "--host", "0.0.0.0", "--port", str(API_PORT),
               "--db", DB_PATH, "--token-file", TOKENS_TARGET, "--frameworks", ",".join(allowed),
               "--gpus", ",".join(map(str, gpus)) or "none", "--publish-host", launch.host,
               "--endpoint-host", ends, "--engine-network", f"{name}-net"]
    for root in roots:
        command += ["--models", f"{root.host}={root.inner}"]
    if not request.allow_hub:
        command.append("--no-hub")
    command += build_flags(build)
    unit = controller_unit(ControllerSpec(
        name=name, role="infer", plan=plan, command=tuple(command), api_port=API_PORT,
        host_port=launch.port or DEFAULT_PORT, host=launch.host, tokens_target=TOKENS_TARGET,
        url=("api", "/v1/inference_services"),
        mounts=tuple(MountSpec("bind", r.inner, r.host, read_only=True, purpose="model") for r in roots),
        labels=service_labels(name, "infer", framework="infer-controller",
                              model=",".join(r.host for r in roots) or "hub ids",
                              gpus=",".join(map(str, gpus)) or None),
        env=dict(settings.env), secret_env=hub.secrets(settings)), socket, tokens)
    notes = [f"frameworks clients may ask for: {', '.join(allowed)}"]
    notes += [f"stack for {what}: {p.top.ref}  (built before the controller starts)" for what, p in stacks]
    notes.append(engine_note(socket))
    notes.append(token_line(tokens))
    service = Service(name, (unit,), gpu_mode([unit], launch.engine_free), notes=tuple(f"# {n}" for n in notes))
    return Described(service, allowed, built, stacks, roots, gpus, tokens, ends, volume)


def build_stacks(found: Described, build: BuildOptions) -> None:
    """The framework stacks the controller will ask for, built (or found) before it starts."""
    from ..build.runner import build_plan
    for what, plan in found.stacks:
        sys.stderr.write(f"stack for {what}: {plan.stack_tag}\n")
        build_plan(plan, build, write_lock=False, quiet=True)


def run(request: InferServiceRequest) -> None:
    from ..launch.targets import check_portable
    from .start import start
    found = describe(request)
    check_portable(found.service, request.launch.target)        # before anything is built
    if not request.launch.dry_run:
        build_stacks(found, request.build)
    start(found.service, request.launch, request.build, partial(print_summary, found))


def print_summary(found: Described, urls: dict[str, str]) -> None:
    api = urls["api"]
    name = found.service.name
    token = f"$(cat {found.tokens.where})" if found.tokens.generated else "TOKEN"
    print(f"service:    {name}")
    print(f"api:        {api}")
    key, _, said = token_line(found.tokens).partition(": ")
    print(f"{key + ':':<11} {said}")
    print(f"models:     {', '.join(r.host for r in found.roots) or 'none'} (clients name folders under them)"
          if found.roots else "models:     no --models roots (packaged models and hub ids only)")
    print(f"frameworks: {', '.join(found.allowed)} (stacks built: {', '.join(found.built) or 'none'}; "
          "another one answers 409 until named in --frameworks)")
    print(f"gpus:       {','.join(map(str, found.gpus)) or 'none'}")
    print(f"endpoints:  model servers are published on this host at http://{found.endpoint_host}:PORT/v1/")
    print(f"try:        curl -H \"token: {token}\" {api}")
    body = json.dumps({"service_name": "minilm", "model_name": "all-MiniLM-L6-v2", "framework": "embedding"})
    print(f"create:     curl -H \"token: {token}\" -H 'Content-Type: application/json' {api} -d '{body}'")
    print(f"manage:     lazyllm ps | lazyllm logs {name} | lazyllm stop {name} (the model servers it started keep "
          "running: DELETE them through the API)")
