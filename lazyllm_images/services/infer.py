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
import os
import stat
import sys
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from ..errors import LaunchError, UsageError
from ..launch.spec import (ENGINE_PURPOSE, HealthCheck, LaunchSpec, MountSpec, PortSpec, scratch_mount,
                           service_labels)
from ..launch.unit import Service, Unit
from ..paths import dockerfiles_dir, package_dir, recipes_dir, service_files_dir, state_path
from ..requests import BuildOptions, InferServiceRequest

DEFAULT_PORT = 31340                    # upstream's LazyCraft deployment
API_PORT = 31340                        # inside the container
DEFAULT_NAME = "lazyllm-infer"
GROUP = "infer-controller"              # recipes/groups/infer-controller.yaml
CLI_ROOT = "/opt/lazyllm/cli"           # the CLI's package (and data) as the controller sees them
FACTS_FILE = "host-facts.json"
FACTS_TARGET = "/etc/lazyllm/host-facts.json"
STATE_TARGET = "/var/lib/lazyllm"       # owned by uid 10001 in every image (the python layer): a new volume is too
DB_PATH = f"{STATE_TARGET}/infer.db"
TOKENS_TARGET = "/tmp/lazyllm/infer-tokens"     # written from stdin into the tmpfs (runtime.secret_exec)
ENGINE_TARGET = "/var/run/docker.sock"
MODELS_TARGET = "/models"
CONTROLLER_UID = 10001
CPU_FRAMEWORKS = ("auto", "embedding", "infinity", "vllm-cpu")
NVIDIA_FRAMEWORKS = ("auto", "vllm", "vllm-cpu", "lightllm", "lmdeploy", "infinity", "embedding")
REFUSED_FRAMEWORKS = {"mindie": "MindIE's generated configuration files would live in the controller's container, "
                                "where no model container can mount them"}
# planning settings the controller must share with the CLI, the labels tests put on what they launch, and the hub
# settings hub.settings() reads besides its PASSED ones (tokens go on stdin)
PASSED_ENV = ("LAZYLLM_BASE", "LAZYLLM_IMAGE_PREFIX", "LAZYLLM_LABELS", "LAZYLLM_HUB_CACHE_VOLUME",
              "LAZYLLM_ENGINE_TIMEOUT", "HF_HUB_OFFLINE")


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

def engine_socket(dry_run: bool = False) -> tuple[str, int | None]:
    """(the engine's socket on this host, the group that may use it). The controller reaches the engine only
    through a local unix socket it can be given. A dry run needs no engine: a missing socket has no group."""
    from ..engine import docker_host
    url = docker_host()
    if not url.startswith("unix://"):
        raise UsageError(f"DOCKER_HOST={url}: the inference controller reaches the engine through a local unix "
                         "socket mounted into its container",
                         "run 'lazyllm run infer_service' on the engine's host (DOCKER_HOST=unix:///PATH or unset)")
    path = os.path.realpath(url[len("unix://"):])
    try:
        st = os.stat(path)
    except OSError as exc:
        if dry_run:
            return path, None
        raise UsageError(f"the engine's socket {path} is not there ({exc.strerror})",
                         "start the engine ('make engine') or set DOCKER_HOST") from None
    if not stat.S_ISSOCK(st.st_mode):
        raise UsageError(f"{path} (DOCKER_HOST) is not a socket", "set DOCKER_HOST=unix:///PATH/OF/docker.sock")
    if (st.st_mode & 0o060) != 0o060 and st.st_uid != CONTROLLER_UID:
        raise UsageError(f"the engine's socket {path} is not read-write for its group (mode "
                         f"{stat.filemode(st.st_mode)}): the controller runs as uid {CONTROLLER_UID} with that group",
                         f"give the socket to a group with read-write access (the docker group: chgrp docker {path}; "
                         f"chmod 660 {path}, as dockerd does with --group)")
    return path, st.st_gid


def _dist_info() -> Path | None:
    """This package's installed metadata (``resolve.runtime`` reads the runtime extra from it), if installed."""
    from importlib.metadata import PackageNotFoundError, distribution
    try:
        found = getattr(distribution("lazyllm-images"), "_path", None)
    except PackageNotFoundError:
        return None
    return Path(found).resolve() if found and Path(found).is_dir() else None


def cli_mounts() -> tuple[tuple[MountSpec, ...], dict[str, str]]:
    """The CLI's code and data, read-only under CLI_ROOT, and the environment that makes the controller use them."""
    from .deploy import check_readable
    pkg = package_dir()
    mounts = [(pkg, f"{CLI_ROOT}/{pkg.name}")]
    dist = _dist_info()
    if dist is not None:
        mounts.append((dist, f"{CLI_ROOT}/{dist.name}"))
    inner: dict[str, str] = {}
    for key, folder in (("recipes", recipes_dir().resolve()), ("dockerfiles", dockerfiles_dir().resolve())):
        if folder.is_relative_to(pkg):                          # a wheel has them in the package (_data/)
            inner[key] = f"{CLI_ROOT}/{pkg.name}/{folder.relative_to(pkg).as_posix()}"
        else:                                                   # a source checkout: paths fall back to ROOT/NAME
            inner[key] = f"{CLI_ROOT}/{key}"
            mounts.append((folder, inner[key]))
    for source, _ in mounts:
        check_readable(str(source), f"{CONTROLLER_UID}:{CONTROLLER_UID}")
    env = {"PYTHONPATH": CLI_ROOT, "PYTHONDONTWRITEBYTECODE": "1", "LAZYLLM_RECIPES": inner["recipes"]}
    binds = tuple(MountSpec("bind", target, str(source), read_only=True, purpose="cli") for source, target in mounts)
    return binds, env


@dataclass(frozen=True)
class ModelRoot:
    host: str
    inner: str


def model_roots(dirs: tuple[str, ...]) -> tuple[ModelRoot, ...]:
    """``--models DIR``: existing folders the controller's user can list, each at /models/N."""
    out: list[ModelRoot] = []
    seen: set[str] = set()
    for text in dirs:
        folder = Path(text).expanduser().resolve()
        if not folder.is_dir():
            raise UsageError(f"--models {text}: no such folder", "give a folder that holds model folders")
        st = folder.stat()
        if st.st_uid != CONTROLLER_UID and (st.st_mode & 0o005) != 0o005:
            raise UsageError(f"--models {folder}: the controller runs as uid {CONTROLLER_UID} and cannot list it "
                             f"(mode {stat.filemode(st.st_mode)})",
                             f"make it readable: chmod a+rx {folder} (and a+rX the model folders in it)")
        if str(folder) in seen:
            continue
        seen.add(str(folder))
        out.append(ModelRoot(str(folder), f"{MODELS_TARGET}/{len(out)}"))
    return tuple(out)


def controller_gpus(text: str | None, host) -> tuple[int, ...]:
    """``--gpus``: the devices the controller hands out. Default: every NVIDIA GPU of this host (none without)."""
    from ..runtime.controller.gpus import parse_devices
    have = tuple(g.index for g in host.nvidia.gpus)
    word = (text or "").strip().lower()
    if word in ("", "all"):
        return have
    try:
        wanted = parse_devices(word)
    except ValueError as exc:
        raise UsageError(str(exc), "write none, a count (--gpus 2) or device indexes (--gpus 0,2)") from None
    missing = [d for d in wanted if d not in have]
    if missing and not have:
        raise UsageError(f"--gpus {text}: this host has no NVIDIA GPU ({host.nvidia.reason or 'none found'})",
                         "leave --gpus out (or --gpus none): the controller then serves CPU frameworks only")
    if missing:
        raise UsageError(f"--gpus {text}: no GPU {missing[0]} here; this host's GPUs are "
                         f"{', '.join(map(str, have))}", "'lazyllm doctor' lists them")
    return wanted


def token_path(volume: str) -> Path:
    """Where the token generated for a state volume is kept on this host (0600, in a 0700 folder)."""
    return state_path() / "infer" / f"{volume}.token"


@dataclass(frozen=True)
class Tokens:
    text: str | None        # what reaches the controller on stdin (None: a dry run)
    where: Path             # the file the operator reads them from
    count: int
    generated: bool         # kept by the CLI (one token) rather than given with --token-file


def tokens_for(request: InferServiceRequest, volume: str, dry_run: bool) -> Tokens:
    from ..runtime.controller import tokens as tk
    if request.token_file:
        path = Path(request.token_file).expanduser().resolve()
        try:
            found = tk.read_tokens(path)
        except tk.TokenError as exc:
            raise UsageError(str(exc), "one token a line, at least 16 characters each") from None
        return Tokens("".join(t + "\n" for t in found), path, len(found), False)
    path = token_path(volume)
    if dry_run:
        return Tokens(None, path, 1, True)
    try:
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.parent.chmod(0o700)
            tk.generate_into(path)
        found = tk.read_tokens(path)
    except (OSError, tk.TokenError) as exc:
        raise LaunchError(f"cannot keep the generated token in {path}: {exc}",
                          "set LAZYLLM_HOME to a writable folder, or give --token-file") from None
    return Tokens("".join(t + "\n" for t in found), path, len(found), True)


def _trust(env: dict[str, str]) -> tuple[tuple[MountSpec, ...], dict[str, str], dict[str, str]]:
    """The host's CA bundle (mounted at its own path: the controller hands that path to model containers as their
    bind source) and proxies (credentials go on stdin)."""
    from ..host import ca_bundle, proxy_env
    from .trust import CA_VARIABLES, split_secret
    public, secret = split_secret(proxy_env())
    env.update(public)
    bundle = ca_bundle()
    if not bundle:
        return (), env, secret
    real = os.path.realpath(bundle)
    env.update({"LAZYLLM_CA_BUNDLE": real, **{k: real for k in CA_VARIABLES}})
    return (MountSpec("bind", real, real, read_only=True, purpose="ca"),), env, secret


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
    socket_path, socket_gid = engine_socket(launch.dry_run)
    name = launch.name or DEFAULT_NAME
    if not launch.dry_run:
        _check_free(name, launch)
    volume = f"{name}-state"
    tokens = tokens_for(request, volume, launch.dry_run)
    settings = hub.settings()                       # checked now: a bad HF_ENDPOINT is an error before anything
    plan = resolve((GROUP,), build, host=host)
    stacks = tuple(stack_plans(built, build, host))

    mounts, env = cli_mounts()
    env = {"HOME": "/tmp", "PYTHONUNBUFFERED": "1", **env, "LAZYLLM_HOST_FACTS": FACTS_TARGET,
           **{k: os.environ[k] for k in PASSED_ENV if os.environ.get(k)}, **dict(settings.env)}
    trust_mounts, env, secret_env = _trust(env)
    secret_env.update(hub.secrets(settings))
    mounts += trust_mounts
    mounts += (MountSpec("bind", ENGINE_TARGET, socket_path, purpose=ENGINE_PURPOSE),
               MountSpec("volume", STATE_TARGET, volume, purpose="infer-state"),
               MountSpec("bind", FACTS_TARGET, str(service_files_dir(name) / FACTS_FILE), read_only=True,
                         purpose="config"),
               *(MountSpec("bind", r.inner, r.host, read_only=True, purpose="model") for r in roots),
               scratch_mount())
    ends = endpoint_host(request)
    command = ["python3", "-m", "lazyllm_images.runtime.infer", "--host", "0.0.0.0", "--port", str(API_PORT),
               "--db", DB_PATH, "--token-file", TOKENS_TARGET, "--frameworks", ",".join(allowed),
               "--gpus", ",".join(map(str, gpus)) or "none", "--publish-host", launch.host,
               "--endpoint-host", ends, "--engine-network", f"{name}-net"]
    for root in roots:
        command += ["--models", f"{root.host}={root.inner}"]
    if not request.allow_hub:
        command.append("--no-hub")
    for flag, value in (("--base", build.base), ("--cuda", build.cuda), ("--python", build.python),
                        ("--torch", build.torch)):
        if value:
            command += [flag, value]
    spec = LaunchSpec(
        name=f"{name}-controller", image=plan.top.ref, command=tuple(command), role="infer", env=env,
        ports=(PortSpec("api", API_PORT, launch.port or DEFAULT_PORT, launch.host),), mounts=mounts,
        labels=service_labels(name, "infer", framework="infer-controller",
                              model=",".join(r.host for r in roots) or "hub ids",
                              gpus=",".join(map(str, gpus)) or None),
        healthcheck=HealthCheck("/healthz", API_PORT, start_period_s=60), network=f"{name}-net",
        read_only_rootfs=True, group_add=(str(socket_gid),) if socket_gid is not None else ())
    # a dry run shows the shape (the wrapper reads stdin), never a token
    secrets = {"files": {TOKENS_TARGET: tokens.text or "(the tokens)"}, "env": secret_env}
    facts = json.dumps(host_mod.facts_document(), indent=1, sort_keys=True) + "\n"
    unit = Unit(spec, stack=plan, secrets=secrets, files=((FACTS_FILE, facts),),
                urls=(("api", "/v1/inference_services"),))
    notes = [f"frameworks clients may ask for: {', '.join(allowed)}"]
    notes += [f"stack for {what}: {p.top.ref}  (built before the controller starts)" for what, p in stacks]
    notes.append(f"engine: {socket_path} (group {socket_gid}) at {ENGINE_TARGET} in the controller's container"
                 if socket_gid is not None else
                 f"engine: {socket_path} is not there now (a real start needs it; its group is added then)")
    notes.append(_token_line(tokens))
    service = Service(name, (unit,), gpu_mode([unit], launch.dry_run), notes=tuple(f"# {n}" for n in notes))
    return Described(service, allowed, built, stacks, roots, gpus, tokens, ends, volume)


def _check_free(name: str, launch) -> None:
    from ..backends.docker import port_in_use, unique_service_name
    unique_service_name(name, True)                 # the name is its records' volume: never NAME-2 behind one's back
    port = launch.port or DEFAULT_PORT
    if port_in_use(launch.host, port):
        raise UsageError(f"port {port} on {launch.host} is in use",
                         "stop what holds it, or choose another with --port")


def _token_line(tokens: Tokens) -> str:
    if not tokens.generated:
        return (f"tokens: the {tokens.count} in {tokens.where} (--token-file), read at start; each sees only its own "
                "services")
    verb = "kept in" if tokens.text or tokens.where.exists() else "generated at the first start into"
    return f"token: {verb} {tokens.where} (mode 0600; one per state volume, reused at every start)"


def build_stacks(found: Described, build: BuildOptions) -> None:
    """The framework stacks the controller will ask for, built (or found) before it starts."""
    from ..build.runner import build_plan
    for what, plan in found.stacks:
        sys.stderr.write(f"stack for {what}: {plan.stack_tag}\n")
        build_plan(plan, build, write_lock=False, quiet=True)


def run(request: InferServiceRequest) -> None:
    from .start import start
    if request.launch.compose:
        raise UsageError("infer_service has no compose form: its controller starts model containers on this host's "
                         "engine (compose and cluster targets come later)",
                         "run it here: 'lazyllm run infer_service' (--dry-run shows the engine calls)")
    found = describe(request)
    if not request.launch.dry_run:
        build_stacks(found, request.build)
    start(found.service, request.launch, request.build, partial(print_summary, found))


def print_summary(found: Described, urls: dict[str, str]) -> None:
    api = urls["api"]
    name = found.service.name
    token = f"$(cat {found.tokens.where})" if found.tokens.generated else "TOKEN"
    print(f"service:    {name}")
    print(f"api:        {api}")
    key, _, said = _token_line(found.tokens).partition(": ")
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
