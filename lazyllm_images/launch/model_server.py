"""A framework + a model + a resolved GPU request -> the LaunchSpec of the model server, and what goes with it.

Pure: the launcher writes ``files``, sends ``secret_env`` on stdin, and passes ``spec`` to a renderer.
"""

from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass, field
from typing import Sequence

from .gpu import GPU_ULIMITS
from .spec import (SCRATCH, DEFAULT_USER, GpuRequest, HealthCheck, LaunchSpec, MountSpec, PortSpec, scratch_mount,
                   service_labels)

MODEL_DIR = "/model"
BASE_ENV = {"HOME": SCRATCH, "USER": "lazyllm", "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}


@dataclass(frozen=True)
class ModelServerPlan:
    spec: LaunchSpec
    framework: str
    api_kind: str                         # openai-chat | openai-embeddings | generate
    api_base: str                         # path of the API under the published port, "/v1"
    served_name: str                      # the "model" field clients send
    generation: dict[str, float | int] = field(default_factory=dict)    # defaults to send with each request
    generation_on_server: tuple[str, ...] = ()                          # those the server applies itself
    secret_env: dict[str, str] = field(default_factory=dict)            # on stdin, never in the spec
    files: tuple[tuple[str, str], ...] = ()                             # (host path, text): write 0640 first

    def default_params(self) -> list[str]:
        """The chat page's ``--default-param`` values (``key=value``, JSON values) for ``generation``."""
        import json
        return [f"{k}={json.dumps(v)}" for k, v in self.generation.items()]


def served_name_for(model_source: str, model_subdir: str = "") -> str:
    return posixpath.basename((model_subdir or model_source).rstrip("/")) or "model"


def model_server_plan(framework, *, name: str, image: str, model_source: str, gpus: GpuRequest,
                      model_mount: str = "bind", model_subdir: str = "", served_name: str | None = None,
                      options: Sequence[tuple[str, str]] = (), flags: Sequence[str] = (), pass_unknown: bool = False,
                      gpu_count: int | None = None, host_ip: str = "127.0.0.1", host_port: int | None = None,
                      files_dir: str | os.PathLike | None = None, service: str | None = None,
                      labels: dict | None = None, env: dict | None = None, network: str | None = None,
                      shm_size: str | None = None, ipc_host: bool = False) -> ModelServerPlan:
    """``framework``: a name or an adapter. ``gpus`` must be resolved (``gpu.resolve``); ``gpu_count`` is the
    host's GPU count when ``gpus`` is ``all`` (for tensor parallelism). ``model_mount``: bind (a host directory),
    volume (a named volume, the model in ``model_subdir``) or image (``model_source`` is a path inside the image).
    ``files_dir``: the host folder (str or Path) the generated files (MindIE's config.json) are written to and
    bind-mounted from, needed only by frameworks that generate some; ``files`` names each file in it."""
    from ..frameworks import Framework, get
    fw: Framework = get(framework) if isinstance(framework, str) else framework
    if gpus.kind == "auto":
        raise ValueError("resolve the GPU request (gpu.resolve) before planning")
    served = served_name or served_name_for(model_source, model_subdir)
    if model_mount == "image":              # the model ships inside the image (a package layer): no mount
        model_path = model_source
    else:
        model_path = posixpath.join(MODEL_DIR, model_subdir) if model_subdir else MODEL_DIR
    cmd = fw.server_argv(model_path, served, fw.container_port, options, flags, pass_unknown, gpus=gpus,
                         gpu_count=gpu_count)
    mounts = [scratch_mount()] if model_mount == "image" else \
        [MountSpec(model_mount, MODEL_DIR, model_source, read_only=True, purpose="model"), scratch_mount()]
    files = []
    if cmd.files and not files_dir:
        raise ValueError(f"{fw.name} generates files: pass files_dir")
    folder = posixpath.abspath(os.fspath(files_dir)) if files_dir else ""     # a str or a Path, relative or not
    for target, text in cmd.files:
        host_path = posixpath.join(folder, posixpath.basename(target))
        files.append((host_path, text))
        mounts.append(MountSpec("bind", target, host_path, read_only=True, purpose="config"))
    needs = fw.needs
    if gpus.vendor == "nvidia":
        gpus = gpus.with_capabilities(*needs.capabilities)
    run_as = DEFAULT_USER if needs.non_root and not (gpus.wants_gpu and gpus.vendor == "ascend") else None
    spec = LaunchSpec(
        name=name, image=image, command=cmd.argv, role="model",
        env={**BASE_ENV, **cmd.env, **(env or {})},
        ports=(PortSpec("api", fw.container_port, host_port, host_ip),), mounts=tuple(mounts), gpus=gpus,
        shm_size=None if (ipc_host or needs.ipc_host) else (shm_size or needs.shm_size),
        ipc_host=ipc_host or needs.ipc_host,
        ulimits=GPU_ULIMITS if gpus.wants_gpu else (),
        labels={**service_labels(service or name, "model", framework=fw.name, model=served,
                                 gpus=gpus.to_arg()), **(labels or {})},
        user=run_as, cap_add=needs.cap_add, read_only_rootfs=needs.read_only_rootfs,
        healthcheck=HealthCheck(fw.health_path, fw.container_port), network=network,
        stdin_open=bool(cmd.secret_env))
    return ModelServerPlan(spec=spec, framework=fw.name, api_kind=fw.api_kind, api_base=fw.api_base,
                           served_name=served, generation=dict(cmd.generation),
                           generation_on_server=cmd.generation_on_server, secret_env=dict(cmd.secret_env),
                           files=tuple(files))
