"""What every controller service (``run infer_service``, ``run training_service``) gives its controller's
container, and nothing more: the CLI's own code read-only (so the controller plans exactly the CLI's image
names), the host's facts in a file, the engine's socket through its group, a labelled state volume, the tokens on
stdin, the host's CA bundle and proxies. The controller itself runs as uid 10001 with every capability dropped,
no-new-privileges and a read-only root.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from ..errors import LaunchError, UsageError
from ..launch.spec import (
    ENGINE_PURPOSE,
    HealthCheck,
    LaunchSpec,
    MountSpec,
    PortSpec,
    scratch_mount,
)
from ..launch.unit import Unit
from ..paths import (
    dockerfiles_dir,
    package_dir,
    recipes_dir,
    service_files_dir,
    state_path,
)

CLI_ROOT = "/opt/lazyllm/cli"           # the CLI's package (and data) as the controller sees them
FACTS_FILE = "host-facts.json"
FACTS_TARGET = "/etc/lazyllm/host-facts.json"
STATE_TARGET = "/var/lib/lazyllm"       # owned by uid 10001 in every image (the python layer): a new volume is too
ENGINE_TARGET = "/var/run/docker.sock"
CONTROLLER_UID = 10001
# planning settings the controller must share with the CLI, the labels tests put on what they launch, and the hub
# settings hub.settings() reads besides its PASSED ones (tokens go on stdin)
PASSED_ENV = ("LAZYLLM_BASE", "LAZYLLM_IMAGE_PREFIX", "LAZYLLM_LABELS", "LAZYLLM_HUB_CACHE_VOLUME",
              "LAZYLLM_ENGINE_TIMEOUT", "HF_HUB_OFFLINE")


def engine_socket(dry_run: bool = False, command: str = "infer_service") -> tuple[str, int | None]:
    """(the engine's socket on this host, the group that may use it). The controller reaches the engine only
    through a local unix socket it can be given. A dry run needs no engine: a missing socket has no group."""
    from ..engine import docker_host
    url = docker_host()
    if not url.startswith("unix://"):
        raise UsageError(f"DOCKER_HOST={url}: the controller reaches the engine through a local unix socket mounted "
                         "into its container",
                         f"run 'lazyllm run {command}' on the engine's host (DOCKER_HOST=unix:///PATH or unset)")
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


def folder_roots(dirs: tuple[str, ...], target: str = "/models", flag: str = "--models",
                 writable: bool = False) -> tuple[ModelRoot, ...]:
    """``--models DIR`` (or ``--data DIR``): existing folders the controller's user can list, each at TARGET/N;
    WRITABLE: the controller's jobs write into them too (exports)."""
    out: list[ModelRoot] = []
    seen: set[str] = set()
    for text in dirs:
        folder = Path(text).expanduser().resolve()
        if not folder.is_dir():
            raise UsageError(f"{flag} {text}: no such folder", "give a folder that holds model folders"
                             if flag == "--models" else "give a folder that holds datasets")
        st = folder.stat()
        if st.st_uid != CONTROLLER_UID and (st.st_mode & 0o005) != 0o005:
            raise UsageError(f"{flag} {folder}: the controller runs as uid {CONTROLLER_UID} and cannot list it "
                             f"(mode {stat.filemode(st.st_mode)})",
                             f"make it readable: chmod a+rx {folder} (and a+rX the folders in it)")
        if writable and not out and st.st_uid != CONTROLLER_UID and (st.st_mode & 0o003) != 0o003:
            raise UsageError(f"{flag} {folder}: exports are written there as uid {CONTROLLER_UID}, who cannot "
                             f"(mode {stat.filemode(st.st_mode)})",
                             f"chown {CONTROLLER_UID} {folder}, or chmod a+rwx {folder}")
        if str(folder) in seen:
            continue
        seen.add(str(folder))
        out.append(ModelRoot(str(folder), f"{target}/{len(out)}"))
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
                         "leave --gpus out (or --gpus none): the controller then runs on the CPU only")
    if missing:
        raise UsageError(f"--gpus {text}: no GPU {missing[0]} here; this host's GPUs are "
                         f"{', '.join(map(str, have))}", "'lazyllm doctor' lists them")
    return wanted


def token_path(volume: str, kind: str = "infer") -> Path:
    """Where the token generated for a state volume is kept on this host (0600, in a 0700 folder)."""
    return state_path() / kind / f"{volume}.token"


@dataclass(frozen=True)
class Tokens:
    text: str | None        # what reaches the controller on stdin (None: a dry run)
    where: Path             # the file the operator reads them from
    count: int
    generated: bool         # kept by the CLI (one token) rather than given with --token-file


def tokens_for(request, volume: str, dry_run: bool, kind: str = "infer") -> Tokens:
    from ..runtime.controller import tokens as tk
    if request.token_file:
        path = Path(request.token_file).expanduser().resolve()
        try:
            found = tk.read_tokens(path)
        except tk.TokenError as exc:
            raise UsageError(str(exc), "one token a line, at least 16 characters each") from None
        return Tokens("".join(t + "\n" for t in found), path, len(found), False)
    path = token_path(volume, kind)
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


def token_line(tokens: Tokens, owns: str = "services") -> str:
    if not tokens.generated:
        return (f"tokens: the {tokens.count} in {tokens.where} (--token-file), read at start; each sees only its own "
                f"{owns}")
    verb = "kept in" if tokens.text or tokens.where.exists() else "generated at the first start into"
    return f"token: {verb} {tokens.where} (mode 0600; one per state volume, reused at every start)"


def trust(env: dict[str, str]) -> tuple[tuple[MountSpec, ...], dict[str, str], dict[str, str]]:
    """The host's CA bundle (mounted at its own path: the controller hands that path to the containers it starts
    as their bind source) and proxies (credentials go on stdin)."""
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


def check_free(name: str, launch, default_port: int) -> None:
    from ..backends.docker import port_in_use, unique_service_name
    unique_service_name(name, True)                 # the name is its records' volume: never NAME-2 behind one's back
    port = launch.port or default_port
    if port_in_use(launch.host, port):
        raise UsageError(f"port {port} on {launch.host} is in use",
                         "stop what holds it, or choose another with --port")


@dataclass(frozen=True)
class ControllerSpec:
    """What differs between controllers: their command, role, ports, state, extra mounts and labels."""
    name: str                       # the service's name: the container is NAME-controller, the volume NAME-state
    role: str                       # launch.spec ROLES: infer | training
    plan: object                    # the controller's stack (resolve of its group)
    command: tuple[str, ...]
    api_port: int                   # inside the container
    host_port: int
    host: str
    tokens_target: str              # where the tokens land in the tmpfs (runtime.secret_exec)
    url: tuple[str, str]            # ("api", path) the summary prints
    mounts: tuple[MountSpec, ...] = ()
    labels: dict | None = None
    env: dict | None = None         # more (public) environment
    secret_env: dict | None = None  # more environment on stdin (the hub's token)


def controller_unit(c: ControllerSpec, socket: tuple[str, int | None], tokens: Tokens) -> Unit:
    """The controller's unit: CLI_ROOT, the facts file, the engine's socket, the state volume, C's mounts, a
    scratch tmpfs; tokens and credentials on stdin (a dry run shows the shape, never a token)."""
    from .. import host as host_mod
    socket_path, socket_gid = socket
    mounts, env = cli_mounts()
    env = {"HOME": "/tmp", "PYTHONUNBUFFERED": "1", **env, "LAZYLLM_HOST_FACTS": FACTS_TARGET,
           **{k: os.environ[k] for k in PASSED_ENV if os.environ.get(k)}, **(c.env or {})}
    trust_mounts, env, secret_env = trust(env)
    secret_env.update(c.secret_env or {})
    mounts += trust_mounts
    mounts += (MountSpec("bind", ENGINE_TARGET, socket_path, purpose=ENGINE_PURPOSE),
               MountSpec("volume", STATE_TARGET, f"{c.name}-state", purpose=f"{c.role}-state"),
               MountSpec("bind", FACTS_TARGET, str(service_files_dir(c.name) / FACTS_FILE), read_only=True,
                         purpose="config"),
               *c.mounts, scratch_mount())
    spec = LaunchSpec(
        name=f"{c.name}-controller", image=c.plan.top.ref, command=c.command, role=c.role, env=env,
        ports=(PortSpec("api", c.api_port, c.host_port, c.host),), mounts=mounts, labels=c.labels or {},
        healthcheck=HealthCheck("/healthz", c.api_port, start_period_s=60), network=f"{c.name}-net",
        read_only_rootfs=True, group_add=(str(socket_gid),) if socket_gid is not None else ())
    secrets = {"files": {c.tokens_target: tokens.text or "(the tokens)"}, "env": secret_env}
    facts = json.dumps(host_mod.facts_document(), indent=1, sort_keys=True) + "\n"
    return Unit(spec, stack=c.plan, secrets=secrets, files=((FACTS_FILE, facts),), urls=(c.url,))


def engine_note(socket: tuple[str, int | None]) -> str:
    path, gid = socket
    return (f"engine: {path} (group {gid}) at {ENGINE_TARGET} in the controller's container" if gid is not None else
            f"engine: {path} is not there now (a real start needs it; its group is added then)")


def build_flags(build) -> list[str]:
    """The build options the stacks were built with, as the controller's flags (it plans the same names)."""
    out: list[str] = []
    for flag, value in (("--base", build.base), ("--cuda", build.cuda), ("--python", build.python),
                        ("--torch", build.torch)):
        if value:
            out += [flag, value]
    return out
