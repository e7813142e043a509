"""LaunchSpec: one container as the tool means to run it, before any target (docker, compose, k8s) is chosen.

Frozen dataclasses, no engine and no I/O. Defaults are the hardened ones: ``no-new-privileges``, every capability
dropped, an init process, read-only model mounts. A spec says *what*; ``launch.docker``, ``launch.compose`` and
``launch.k8s`` say it for one target each. Mapping fields (env, labels) are plain dicts: treat them as read-only and
use ``dataclasses.replace`` to change a spec.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .. import LABEL_PREFIX, MANAGED_LABEL
from ..errors import UsageError

ROLES = ("model", "chat", "mcp", "rag", "workflow", "training", "infer")
ENGINE_ROLES = ("infer", "training")   # controllers that start containers: the only specs the engine socket reaches
ENGINE_PURPOSE = "engine"              # a bind mount of the engine's socket (MountSpec.purpose)
PYTHON = "python3"                 # the interpreter the images put on PATH (a venv's bin has it too)
DEFAULT_USER = "10001:10001"       # the unprivileged user the python layer creates ("lazyllm")
SCRATCH = "/tmp"                   # the writable scratch directory (a tmpfs): HOME and caches live there
TMPFS_OPTIONS = "rw,exec,nosuid,nodev,mode=1777"   # exec: triton/torch JIT load .so files from their caches

_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
_ENV = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SECRET_ENV = re.compile(r"(TOKEN|SECRET|PASSWORD|PASSWD|API_KEY|APIKEY|ACCESS_KEY|CREDENTIAL)", re.I)
_SIZE = re.compile(r"^[0-9]+[bkmgBKMG]?$")


# ------------------------------------------------------------------ one GPU request model

VENDORS = ("nvidia", "amd", "ascend")
DEFAULT_CAPABILITIES = ("compute", "utility")
GPU_FORMS = "all | N (a count) | 0,1 (indexes) | device=0 | GPU-uuid,... | 0:1 or MIG-uuid (MIG devices) | none"
_UUID = re.compile(r"^(GPU|MIG)-[A-Za-z0-9-]+(/[0-9]+/[0-9]+)?$")     # MIG-GPU-<uuid>/gi/ci: drivers before R470
_MIG_INDEX = re.compile(r"^([0-9]+):([0-9]+)$")                       # GPU 0's MIG device 1, as the toolkit takes it


def is_mig(device: str) -> bool:
    """A MIG device id: ``0:1`` or a ``MIG-`` UUID."""
    return device.startswith("MIG-") or bool(_MIG_INDEX.match(device))


@dataclass(frozen=True)
class GpuRequest:
    """Which accelerators a container gets: none, all, a count, or device indexes/UUIDs.

    ``auto`` (nothing said) is resolved against the framework and the host by ``gpu.resolve`` before any
    rendering. ``capabilities`` are the NVIDIA driver capabilities (a layer may add ``video``).
    """

    kind: str = "none"               # none | all | count | devices | auto
    count: int = 0
    devices: tuple[str, ...] = ()
    vendor: str = "nvidia"           # nvidia | amd | ascend
    capabilities: tuple[str, ...] = DEFAULT_CAPABILITIES

    def __post_init__(self):
        if self.kind not in ("none", "all", "count", "devices", "auto"):
            raise ValueError(f"GPU request kind {self.kind!r} is not known")
        if self.vendor not in VENDORS:
            raise ValueError(f"accelerator vendor {self.vendor!r} is not one of {', '.join(VENDORS)}")
        if (self.kind == "count") != (self.count > 0):
            raise ValueError("a count request needs count >= 1 (and only a count request has one)")
        if (self.kind == "devices") != bool(self.devices):
            raise ValueError("a devices request needs device ids (and only a devices request has them)")

    @classmethod
    def none(cls, vendor: str = "nvidia") -> "GpuRequest":
        return cls("none", vendor=vendor)

    @classmethod
    def all(cls, vendor: str = "nvidia") -> "GpuRequest":
        return cls("all", vendor=vendor)

    @classmethod
    def parse(cls, text: str | None, vendor: str = "nvidia",
              capabilities: tuple[str, ...] = DEFAULT_CAPABILITIES) -> "GpuRequest":
        """``--gpus`` text: all | N | 0,1 | device=0,1 | GPU-uuid,... | 0:1 | MIG-uuid | none; None or "" is
        ``auto``."""
        raw = (text or "").strip()
        word = raw.lower()
        if word in ("", "auto"):
            return cls("auto", vendor=vendor, capabilities=capabilities)
        if word in ("none", "all"):
            return cls(word, vendor=vendor, capabilities=capabilities)
        if word.startswith("count="):
            word = raw = raw[len("count="):]
            if not (word.isascii() and word.isdigit()):
                raise _gpu_usage(text)
        if word.isascii() and word.isdigit():
            if int(word) == 0:
                raise UsageError("--gpus 0 is ambiguous",
                                 "say --gpus none for no GPU, or --gpus device=0 for the first")
            return cls("count", count=int(word), vendor=vendor, capabilities=capabilities)
        body = raw[len("device="):] if word.startswith("device=") else raw
        if "," not in body and not word.startswith("device=") and not (_UUID.match(body) or _MIG_INDEX.match(body)):
            raise _gpu_usage(text)
        return cls("devices", devices=_device_ids(body, text), vendor=vendor, capabilities=capabilities)

    @property
    def wants_gpu(self) -> bool:
        return self.kind in ("all", "count", "devices")

    @property
    def size(self) -> int | None:
        """How many accelerators: None for all (the host decides) and auto, 0 for none."""
        return {"none": 0, "count": self.count, "devices": len(self.devices)}.get(self.kind)

    def to_arg(self) -> str:
        """The ``--gpus`` text that parses back to this request (vendor and capabilities aside)."""
        if self.kind == "count":
            return str(self.count)
        if self.kind == "devices":
            return ",".join(self.devices) if len(self.devices) > 1 else f"device={self.devices[0]}"
        return self.kind

    def with_capabilities(self, *extra: str) -> "GpuRequest":
        caps = list(self.capabilities)
        for cap in extra:
            if cap not in caps:
                caps.append(cap)
        return GpuRequest(self.kind, self.count, self.devices, self.vendor, tuple(caps))


def _gpu_usage(text: str | None) -> UsageError:
    return UsageError(f"cannot read --gpus {text!r}", f"write one of: {GPU_FORMS}")


def _device_ids(body: str, text: str | None) -> tuple[str, ...]:
    ids: list[str] = []
    for item in body.split(","):
        item = item.strip()
        mig = _MIG_INDEX.match(item) if item.isascii() else None
        if item.isascii() and item.isdigit():
            item = str(int(item))
        elif mig:
            item = f"{int(mig[1])}:{int(mig[2])}"
        elif not _UUID.match(item):
            raise _gpu_usage(text)
        if item in ids:
            raise UsageError(f"GPU {item} is named twice in --gpus {text!r}", f"write one of: {GPU_FORMS}")
        ids.append(item)
    return tuple(ids)


@dataclass(frozen=True)
class PortSpec:
    """A published port. ``host_port`` None: the engine picks a free one (read back after start)."""

    name: str                      # api | chat | sse | ...
    container_port: int
    host_port: int | None = None
    host_ip: str = "127.0.0.1"
    protocol: str = "tcp"

    def __post_init__(self):
        for port in (self.container_port, self.host_port):
            if port is not None and not 0 < port < 65536:
                raise ValueError(f"port {port} is out of range")
        if self.protocol not in ("tcp", "udp"):
            raise ValueError(f"protocol {self.protocol!r} is not tcp or udp")


@dataclass(frozen=True)
class MountSpec:
    """A bind mount, a named volume or a tmpfs. ``purpose='model'`` mounts are always read-only.

    ``optional``: a host path that may be missing (driver files); the launcher drops it when absent.
    ``options``: tmpfs mount options (``rw,exec,size=1g``).
    """

    kind: str                      # bind | volume | tmpfs
    target: str
    source: str = ""
    read_only: bool = False
    purpose: str = ""              # model | documents | cache | driver | config | scratch | ...
    options: str = ""
    optional: bool = False

    def __post_init__(self):
        if self.kind not in ("bind", "volume", "tmpfs"):
            raise ValueError(f"mount kind {self.kind!r} is not bind, volume or tmpfs")
        if not self.target.startswith("/"):
            raise ValueError(f"mount target {self.target!r} is not an absolute path")
        if self.kind != "tmpfs" and not self.source:
            raise ValueError(f"{self.kind} mount at {self.target} needs a source")
        if self.kind == "bind" and not self.source.startswith("/"):
            raise ValueError(f"bind mount source {self.source!r} is not an absolute path")
        if self.purpose == "model" and not self.read_only:
            raise ValueError("model mounts are read-only")


@dataclass(frozen=True)
class Ulimit:
    name: str
    soft: int
    hard: int


@dataclass(frozen=True)
class HealthCheck:
    """An HTTP GET on ``path`` inside the container; healthy on a 2xx answer."""

    path: str
    port: int
    interval_s: int = 10
    timeout_s: int = 5
    start_period_s: int = 600
    retries: int = 3

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    def command(self) -> tuple[str, ...]:
        """Exec-form probe. No proxy: a container may carry HTTP(S)_PROXY, and the probe is local."""
        code = ("import urllib.request as u; "
                f'u.build_opener(u.ProxyHandler({{}})).open("{self.url}", timeout={self.timeout_s})')
        return (PYTHON, "-c", code)


@dataclass(frozen=True)
class LaunchSpec:
    name: str
    image: str
    command: tuple[str, ...] = ()
    role: str = "model"
    entrypoint: tuple[str, ...] | None = None
    env: dict[str, str] = field(default_factory=dict)          # non-secret only: secrets travel on stdin
    ports: tuple[PortSpec, ...] = ()
    mounts: tuple[MountSpec, ...] = ()
    gpus: GpuRequest = field(default_factory=GpuRequest.none)
    shm_size: str | None = None
    ipc_host: bool = False
    ulimits: tuple[Ulimit, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)
    user: str | None = DEFAULT_USER
    cap_drop: tuple[str, ...] = ("ALL",)
    cap_add: tuple[str, ...] = ()
    security_opt: tuple[str, ...] = ("no-new-privileges",)
    read_only_rootfs: bool = False
    init: bool = True
    healthcheck: HealthCheck | None = None
    network: str | None = None
    devices: tuple[str, ...] = ()       # extra host devices, "/dev/x" or "/dev/x:/dev/y:rwm" (GPUs: see gpus)
    group_add: tuple[str, ...] = ()
    working_dir: str | None = None
    stdin_open: bool = False            # the launcher writes secrets on stdin
    depends_on: tuple[str, ...] = ()    # names of specs that must be healthy before this one starts
    extra_networks: tuple[str, ...] = ()   # other services' networks it joins (a graph runner reusing a model)
    restart: str = "no"                 # no | on-failure | unless-stopped

    def __post_init__(self):
        _check_spec(self)

    def port(self, name: str) -> PortSpec:
        for p in self.ports:
            if p.name == name:
                return p
        raise KeyError(name)


def _check_spec(spec: LaunchSpec) -> None:
    if not _NAME.match(spec.name):
        raise ValueError(f"container name {spec.name!r} must match {_NAME.pattern}")
    if spec.role not in ROLES:
        raise ValueError(f"role {spec.role!r} is not one of {', '.join(ROLES)}")
    if not spec.image:
        raise ValueError("a launch spec needs an image")
    for key in spec.env:
        if not _ENV.match(key):
            raise ValueError(f"environment variable name {key!r} is not valid")
        if _SECRET_ENV.search(key):
            raise ValueError(f"{key} looks like a secret: secrets reach containers on stdin, never as env")
    names = [p.name for p in spec.ports]
    if len(set(names)) != len(names):
        raise ValueError(f"port names repeat: {names}")
    targets = [m.target for m in spec.mounts]
    if len(set(targets)) != len(targets):
        raise ValueError(f"two mounts share a target: {targets}")
    if spec.shm_size is not None and not _SIZE.match(spec.shm_size):
        raise ValueError(f"shm size {spec.shm_size!r} is not like 8g")
    if spec.ipc_host and spec.shm_size:
        raise ValueError("ipc=host and a sized /dev/shm exclude each other")
    if spec.restart not in ("no", "on-failure", "unless-stopped", "always"):
        raise ValueError(f"restart policy {spec.restart!r} is not known")
    if spec.name in spec.depends_on:
        raise ValueError("a spec cannot depend on itself")
    engine = [m for m in spec.mounts if m.purpose == ENGINE_PURPOSE]
    if engine and spec.role not in ENGINE_ROLES:
        raise ValueError(f"only a controller ({', '.join(ENGINE_ROLES)}) gets the engine's socket, not a {spec.role} "
                         "container")
    if any(m.kind != "bind" for m in engine):
        raise ValueError("the engine's socket is a bind mount")
    if engine and (spec.user in (None, "") or spec.user.split(":")[0] in ("0", "root")):
        raise ValueError("a container holding the engine's socket runs as an unprivileged user")


def service_labels(service: str, role: str, *, kind: str = "service", **extra: str) -> dict[str, str]:
    """The ``org.lazyllm.*`` labels ``ps``/``stop`` read back (same scheme as ``engine.labels``)."""
    out = {MANAGED_LABEL: "true", f"{LABEL_PREFIX}.kind": kind, f"{LABEL_PREFIX}.service": service,
           f"{LABEL_PREFIX}.role": role}
    out.update({f"{LABEL_PREFIX}.{k.replace('_', '-')}": str(v) for k, v in extra.items() if v is not None})
    return out


def labels_from_env(text: str | None) -> dict[str, str]:
    """``LAZYLLM_LABELS`` (``k=v,k2=v2``): extra labels every launched object carries (tests use it)."""
    out: dict[str, str] = {}
    for item in (text or "").split(","):
        if "=" in item:
            key, value = item.split("=", 1)
            if key.strip():
                out[key.strip()] = value.strip()
    return out


def scratch_mount(options: str = TMPFS_OPTIONS) -> MountSpec:
    return MountSpec("tmpfs", SCRATCH, options=options, purpose="scratch")
