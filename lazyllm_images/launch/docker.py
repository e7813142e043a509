"""LaunchSpec -> docker-py ``client.containers.create(**kwargs)`` and the equivalent ``docker run`` argv.

Each ``add_*`` function renders one concern to both targets side by side (the ramalama style), so the dry-run
text and the engine call cannot drift apart. The kwargs hold only plain dicts, lists and strings (docker-py turns
DeviceRequest, Ulimit and Healthcheck dicts into its types; ``Mounts`` are Engine API dicts), so they compare
exactly in golden files and serialise to JSON.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

from . import gpu as gpu_mod
from .spec import LaunchSpec, MountSpec

NS = 1_000_000_000      # the Engine API counts healthcheck durations in nanoseconds


@dataclass
class _Call:
    kwargs: dict = field(default_factory=dict)
    argv: list[str] = field(default_factory=list)

    def flag(self, *args: str) -> None:
        self.argv.extend(args)


def _csv_field(value: str) -> str:
    """One field of a ``--mount`` value (``key=value``), quoted whole the CSV way when it holds a comma or a
    quote: the docker CLI reads the flag with a CSV reader."""
    return f'"{value.replace(chr(34), chr(34) * 2)}"' if ("," in value or '"' in value) else value


def add_identity(call: _Call, spec: LaunchSpec) -> None:
    call.kwargs.update(image=spec.image, name=spec.name, detach=True)
    call.flag("--name", spec.name, "--detach")
    if spec.labels:
        call.kwargs["labels"] = dict(spec.labels)
        for k, v in spec.labels.items():
            call.flag("--label", f"{k}={v}")


def add_env(call: _Call, spec: LaunchSpec, extra: dict[str, str]) -> None:
    env = {**extra, **spec.env}
    if env:
        call.kwargs["environment"] = env
        for k, v in env.items():
            call.flag("--env", f"{k}={v}")


def add_security(call: _Call, spec: LaunchSpec) -> None:
    if spec.user:
        call.kwargs["user"] = spec.user
        call.flag("--user", spec.user)
    if spec.cap_drop:
        call.kwargs["cap_drop"] = list(spec.cap_drop)
        call.flag(*(a for c in spec.cap_drop for a in ("--cap-drop", c)))
    if spec.cap_add:
        call.kwargs["cap_add"] = list(spec.cap_add)
        call.flag(*(a for c in spec.cap_add for a in ("--cap-add", c)))
    if spec.security_opt:
        call.kwargs["security_opt"] = list(spec.security_opt)
        call.flag(*(a for o in spec.security_opt for a in ("--security-opt", o)))
    if spec.read_only_rootfs:
        call.kwargs["read_only"] = True
        call.flag("--read-only")
    if spec.init:
        call.kwargs["init"] = True
        call.flag("--init")


def add_ports(call: _Call, spec: LaunchSpec) -> None:
    if not spec.ports:
        return
    call.kwargs["ports"] = {f"{p.container_port}/{p.protocol}": (p.host_ip, p.host_port) for p in spec.ports}
    for p in spec.ports:
        ip = f"[{p.host_ip}]" if ":" in p.host_ip else p.host_ip
        host = "" if p.host_port is None else str(p.host_port)
        suffix = "" if p.protocol == "tcp" else f"/{p.protocol}"
        call.flag("--publish", f"{ip}:{host}:{p.container_port}{suffix}")


def _mount_dict(m: MountSpec) -> dict:
    return {"Type": m.kind, "Source": m.source, "Target": m.target, "ReadOnly": m.read_only}


def _mount_flag(m: MountSpec) -> str:
    parts = [f"type={m.kind}", f"source={m.source}", f"target={m.target}"] + (["readonly"] if m.read_only else [])
    return ",".join(_csv_field(p) for p in parts)


def add_mounts(call: _Call, mounts: tuple[MountSpec, ...]) -> None:
    real = [m for m in mounts if m.kind != "tmpfs"]
    tmpfs = [m for m in mounts if m.kind == "tmpfs"]
    if real:
        call.kwargs["mounts"] = [_mount_dict(m) for m in real]
        for m in real:
            call.flag("--mount", _mount_flag(m))
    if tmpfs:
        call.kwargs["tmpfs"] = {m.target: m.options for m in tmpfs}
        for m in tmpfs:
            call.flag("--tmpfs", f"{m.target}:{m.options}" if m.options else m.target)


def add_gpus(call: _Call, rendering: gpu_mod.GpuRendering) -> None:
    if rendering.device_requests:
        call.kwargs["device_requests"] = [dict(r) for r in rendering.device_requests]
    call.flag(*rendering.run_args)


def add_devices(call: _Call, spec: LaunchSpec, rendering: gpu_mod.GpuRendering) -> None:
    devices = list(rendering.devices) + [d for d in spec.devices if d not in rendering.devices]
    gpu_devices = set(rendering.devices)
    if devices:
        call.kwargs["devices"] = [d if ":" in d else f"{d}:{d}:rwm" for d in devices]
        call.flag(*(a for d in devices if d not in gpu_devices for a in ("--device", d)))
    groups = list(rendering.group_add) + [g for g in spec.group_add if g not in rendering.group_add]
    if groups:
        call.kwargs["group_add"] = groups
        call.flag(*(a for g in spec.group_add if g not in rendering.group_add for a in ("--group-add", g)))


def add_resources(call: _Call, spec: LaunchSpec) -> None:
    if spec.ipc_host:
        call.kwargs["ipc_mode"] = "host"
        call.flag("--ipc", "host")
    if spec.shm_size:
        call.kwargs["shm_size"] = spec.shm_size
        call.flag("--shm-size", spec.shm_size)
    if spec.ulimits:
        call.kwargs["ulimits"] = [{"name": u.name, "soft": u.soft, "hard": u.hard} for u in spec.ulimits]
        call.flag(*(a for u in spec.ulimits for a in ("--ulimit", f"{u.name}={u.soft}:{u.hard}")))


def add_healthcheck(call: _Call, spec: LaunchSpec) -> None:
    hc = spec.healthcheck
    if hc is None:
        return
    text = shlex.join(hc.command())      # docker run takes a shell-form probe; the kwargs use the same one
    call.kwargs["healthcheck"] = {"test": ["CMD-SHELL", text], "interval": hc.interval_s * NS,
                                  "timeout": hc.timeout_s * NS, "retries": hc.retries,
                                  "start_period": hc.start_period_s * NS}
    call.flag("--health-cmd", text, "--health-interval", f"{hc.interval_s}s", "--health-timeout",
              f"{hc.timeout_s}s", "--health-retries", str(hc.retries), "--health-start-period",
              f"{hc.start_period_s}s")


def add_process(call: _Call, spec: LaunchSpec) -> None:
    if spec.network:
        call.kwargs["network"] = spec.network
        call.flag("--network", spec.network)
    if spec.working_dir:
        call.kwargs["working_dir"] = spec.working_dir
        call.flag("--workdir", spec.working_dir)
    if spec.stdin_open:
        call.kwargs["stdin_open"] = True
        call.flag("--interactive")
    if spec.restart != "no":
        call.kwargs["restart_policy"] = {"Name": spec.restart}
        call.flag("--restart", spec.restart)
    if spec.entrypoint is not None:
        call.kwargs["entrypoint"] = list(spec.entrypoint)
        # docker run takes only the program as --entrypoint; its arguments go before the command
        call.flag("--entrypoint", spec.entrypoint[0] if spec.entrypoint else "")


def _command_tail(spec: LaunchSpec) -> list[str]:
    tail = list(spec.entrypoint[1:]) if spec.entrypoint else []
    return tail + list(spec.command)


Gids = Mapping[str, Sequence[int]]          # host device node -> the groups owning it (host.device_gids)
Exists = Callable[[str], bool]


def _render(spec: LaunchSpec, gpu_mode: str, gids: Gids | None, path_exists: Exists) -> _Call:
    rendering = gpu_mod.render(spec.gpus, gpu_mode)
    if gids:
        rendering = gpu_mod.with_device_groups(rendering, gids)
    call = _Call()
    add_identity(call, spec)
    add_security(call, spec)
    add_env(call, spec, rendering.env)
    add_ports(call, spec)
    add_mounts(call, gpu_mod.container_mounts(spec.mounts, rendering.mounts, path_exists))
    add_gpus(call, rendering)
    add_devices(call, spec, rendering)
    add_resources(call, spec)
    add_healthcheck(call, spec)
    add_process(call, spec)
    if spec.command:
        call.kwargs["command"] = list(spec.command)
    return call


def container_kwargs(spec: LaunchSpec, gpu_mode: str = "runtime", gids: Gids | None = None,
                     path_exists: Exists = os.path.exists) -> dict:
    """Keyword arguments for docker-py ``client.containers.create(**kwargs)`` (``detach`` included: drop it for
    ``create``, keep it for ``run``). ``gids``: the groups owning the host's device nodes (``host.device_gids``),
    added by number instead of the names; ``path_exists``: optional driver mounts absent from the host are left
    out."""
    return _render(spec, gpu_mode, gids, path_exists).kwargs


def run_argv(spec: LaunchSpec, gpu_mode: str = "runtime", gids: Gids | None = None, docker: str = "docker",
             path_exists: Exists = os.path.exists) -> list[str]:
    """The ``docker run`` argv that does what ``container_kwargs`` does."""
    call = _render(spec, gpu_mode, gids, path_exists)
    return [docker, "run", *call.argv, spec.image, *_command_tail(spec)]


def dry_run_text(spec: LaunchSpec, gpu_mode: str = "runtime", gids: Gids | None = None,
                 path_exists: Exists = os.path.exists) -> str:
    """``run_argv`` quoted for a POSIX shell (for ``--dry-run``: the mounts it shows are those the host has)."""
    return shlex.join(run_argv(spec, gpu_mode, gids, path_exists=path_exists))
