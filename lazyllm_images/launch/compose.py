"""LaunchSpecs -> a compose file (dict and YAML) that ``docker-compose config`` accepts, v1.29 and v2 alike.

One service per spec, keyed and named by the spec's name (so the chat page reaches the model server at the same
host name as under ``docker run`` on a user network). Named volumes are declared with their exact name, so compose
does not prefix them with the project. A spec's ``depends_on`` becomes ``condition: service_healthy``.
"""

from __future__ import annotations

import os
from typing import Callable, Mapping, Sequence

from . import gpu as gpu_mod
from .spec import LaunchSpec, MountSpec

NETWORK_MODES = ("host", "none", "bridge")


def _ports(spec: LaunchSpec) -> list[str]:
    out = []
    for p in spec.ports:
        ip = f"[{p.host_ip}]" if ":" in p.host_ip else p.host_ip
        host = "" if p.host_port is None else str(p.host_port)
        suffix = "" if p.protocol == "tcp" else f"/{p.protocol}"
        out.append(f"{ip}:{host}:{p.container_port}{suffix}")
    return out


def _volume(m: MountSpec) -> dict:
    out = {"type": m.kind, "source": m.source, "target": m.target}
    if m.read_only:
        out["read_only"] = True
    return out


def add_mounts(svc: dict, mounts: Sequence[MountSpec]) -> None:
    real = [_volume(m) for m in mounts if m.kind != "tmpfs"]
    tmpfs = [f"{m.target}:{m.options}" if m.options else m.target for m in mounts if m.kind == "tmpfs"]
    if real:
        svc["volumes"] = real
    if tmpfs:
        svc["tmpfs"] = tmpfs


def add_gpus(svc: dict, spec: LaunchSpec, rendering: gpu_mod.GpuRendering) -> None:
    devices = list(rendering.cdi_devices) + list(rendering.devices)
    devices += [d for d in spec.devices if d not in devices]
    if devices:
        svc["devices"] = [d if ":" in d or "=" in d else f"{d}:{d}" for d in devices]
    groups = list(rendering.group_add) + [g for g in spec.group_add if g not in rendering.group_add]
    if groups:
        svc["group_add"] = groups
    if rendering.reservations:
        svc["deploy"] = {"resources": {"reservations": {"devices": [dict(r) for r in rendering.reservations]}}}


def add_security(svc: dict, spec: LaunchSpec) -> None:
    if spec.user:
        svc["user"] = spec.user
    if spec.cap_drop:
        svc["cap_drop"] = list(spec.cap_drop)
    if spec.cap_add:
        svc["cap_add"] = list(spec.cap_add)
    if spec.security_opt:
        svc["security_opt"] = list(spec.security_opt)
    if spec.read_only_rootfs:
        svc["read_only"] = True
    if spec.init:
        svc["init"] = True


def add_resources(svc: dict, spec: LaunchSpec) -> None:
    if spec.ipc_host:
        svc["ipc"] = "host"
    if spec.shm_size:
        svc["shm_size"] = spec.shm_size
    if spec.ulimits:
        svc["ulimits"] = {u.name: {"soft": u.soft, "hard": u.hard} for u in spec.ulimits}


def add_healthcheck(svc: dict, spec: LaunchSpec) -> None:
    hc = spec.healthcheck
    if hc is not None:
        svc["healthcheck"] = {"test": ["CMD", *hc.command()], "interval": f"{hc.interval_s}s",
                              "timeout": f"{hc.timeout_s}s", "retries": hc.retries,
                              "start_period": f"{hc.start_period_s}s"}


def add_process(svc: dict, spec: LaunchSpec, names: set[str]) -> None:
    if spec.network in NETWORK_MODES:
        svc["network_mode"] = spec.network       # other names: compose's own project network joins the services
    if spec.working_dir:
        svc["working_dir"] = spec.working_dir
    if spec.stdin_open:
        svc["stdin_open"] = True
    if spec.restart != "no":
        svc["restart"] = spec.restart
    if spec.depends_on:
        missing = [d for d in spec.depends_on if d not in names]
        if missing:
            raise ValueError(f"{spec.name} depends on {', '.join(missing)}, which is not in this compose file")
        svc["depends_on"] = {d: {"condition": "service_healthy"} for d in spec.depends_on}


Gids = Mapping[str, Sequence[int]]          # host device node -> the groups owning it (host.device_gids)
Exists = Callable[[str], bool]


def service(spec: LaunchSpec, names: set[str], gpu_mode: str = "runtime", gids: Gids | None = None,
            path_exists: Exists = os.path.exists) -> dict:
    """One compose service for ``spec`` (``names``: the services in the same file). ``gids`` and ``path_exists``
    as for ``launch.docker.container_kwargs``."""
    rendering = gpu_mod.render(spec.gpus, gpu_mode)
    if gids:
        rendering = gpu_mod.with_device_groups(rendering, gids)
    svc: dict = {"image": spec.image, "container_name": spec.name}
    if spec.entrypoint is not None:
        svc["entrypoint"] = list(spec.entrypoint)
    if spec.command:
        svc["command"] = list(spec.command)
    env = {**rendering.env, **spec.env}
    if env:
        svc["environment"] = {k: str(v) for k, v in env.items()}
    if spec.ports:
        svc["ports"] = _ports(spec)
    add_mounts(svc, gpu_mod.container_mounts(spec.mounts, rendering.mounts, path_exists))
    add_gpus(svc, spec, rendering)
    add_resources(svc, spec)
    add_security(svc, spec)
    if spec.labels:
        svc["labels"] = dict(spec.labels)
    add_healthcheck(svc, spec)
    add_process(svc, spec, names)
    return svc


def compose_dict(specs: Sequence[LaunchSpec], gpu_mode: str = "runtime", gids: Gids | None = None,
                 volume_labels: dict[str, str] | None = None, path_exists: Exists = os.path.exists) -> dict:
    """The compose file for ``specs`` (a model server and its chat page, say)."""
    names = {s.name for s in specs}
    if len(names) != len(specs):
        raise ValueError("two specs share a name")
    out: dict = {"services": {s.name: service(s, names, gpu_mode, gids, path_exists) for s in specs}}
    volumes = sorted({m.source for s in specs for m in s.mounts if m.kind == "volume"})
    if volumes:
        out["volumes"] = {v: {"name": v, **({"labels": dict(volume_labels)} if volume_labels else {})}
                          for v in volumes}
    return _escape(out)


def _escape(value):
    """Compose interpolates ``$VAR`` in every string; ``$$`` is a literal dollar."""
    if isinstance(value, str):
        return value.replace("$", "$$")
    if isinstance(value, dict):
        return {k: _escape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_escape(v) for v in value]
    return value


def compose_yaml(specs: Sequence[LaunchSpec], gpu_mode: str = "runtime", gids: Gids | None = None,
                 volume_labels: dict[str, str] | None = None, path_exists: Exists = os.path.exists) -> str:
    from .yamltext import dump
    return dump(compose_dict(specs, gpu_mode, gids, volume_labels, path_exists))


# ------------------------------------------------------------------ a whole service as one compose file

SECRETS_SUFFIX = ".secrets"      # <stem>.secrets/: the secret files (folder 0700: only the owner reaches them)
FILES_SUFFIX = ".files"          # <stem>.files/: the units' generated files (configs a framework needs)


def render(service, stack_file: str, gids: Gids | None = None, files_dir: str | None = None,
           labels: Callable[..., dict] | None = None, path_exists: Exists = os.path.exists):
    """``service`` (a ``launch.unit.Service``, ports filled in) -> ``Rendered``: the compose file and, beside it,
    its secret files (one JSON line per unit, mounted at /run/secrets/<key> and read by ``secret_exec --file``) and
    generated files. Never a secret in the compose file itself. ``files_dir``: where the service's generated files
    would live on the local engine (binds from there are rewritten to the folder beside the file). ``labels(kind,
    **extra)``: the labels of the networks and volumes the file makes (``engine.runtime_labels``)."""
    from . import secrets as secret_files
    from .targets import Rendered
    stem = os.path.splitext(os.path.basename(stack_file))[0]
    out_files: list[tuple[str, str, int]] = []
    specs, unit_secrets = [], {}
    for unit in service.units:
        spec = unit.spec
        line = secret_files.payload(unit.secrets)
        if line is not None:
            key = secret_files.key(unit.name)
            spec = secret_files.reading_file(spec, secret_files.path(unit.name), unit.wrap)
            out_files.append((f"{stem}{SECRETS_SUFFIX}/{key}", line, 0o644))
            unit_secrets[spec.name] = key
        out_files += [(f"{stem}{FILES_SUFFIX}/{name}", text, 0o644) for name, text in unit.files]
        specs.append(spec)
    specs = _in_start_order(specs)
    doc = compose_dict(specs, service.gpu_mode, gids, None, path_exists)
    if labels is not None:
        purposes = {m.source: m.purpose or "data" for s in specs for m in s.mounts if m.kind == "volume"}
        for name, volume in doc.get("volumes", {}).items():
            volume["labels"] = labels("volume", purpose=purposes[name])
    folders: tuple[tuple[str, int], ...] = ()
    if files_dir:
        _relative_files(doc, files_dir, f"./{stem}{FILES_SUFFIX}")
        prefix = files_dir.rstrip("/") + "/"
        folders = tuple(sorted({(f"{stem}{FILES_SUFFIX}/{m.source[len(prefix):]}", 0o777) for s in specs
                                for m in s.mounts if m.purpose == "socket" and m.source.startswith(prefix)}))
    for name, key in unit_secrets.items():
        doc["services"][name]["secrets"] = [key]
    if unit_secrets:
        doc["secrets"] = {key: {"file": f"./{stem}{SECRETS_SUFFIX}/{key}"} for key in unit_secrets.values()}
    if any(s.network == f"{service.name}-net" for s in specs):
        doc["networks"] = {"default": {"name": f"{service.name}-net",
                                       **({"labels": labels("network", service=service.name)} if labels else {})}}
    _join_external(doc, specs)
    doc["x-lazyllm"] = stack_extension("compose", service)
    from .yamltext import dump
    return Rendered(((os.path.basename(stack_file), dump(doc), 0o644), *out_files), folders=folders)


def _join_external(doc: dict, specs: list[LaunchSpec]) -> None:
    """A unit that joins another service's network (a graph reusing a running model server) names it as an
    external network beside the file's own."""
    external = sorted({n for s in specs for n in s.extra_networks})
    for spec in specs:
        if spec.extra_networks:
            doc["services"][spec.name]["networks"] = ["default", *spec.extra_networks]
    if external:
        doc.setdefault("networks", {"default": {}})
        doc["networks"].update({n: {"name": n, "external": True} for n in external})


def _in_start_order(specs: list[LaunchSpec]) -> list[LaunchSpec]:
    """Units start in order, each healthy before the next (as on the local engine): each depends on the ones
    before it that have a health check."""
    from dataclasses import replace
    out = []
    for i, spec in enumerate(specs):
        before = tuple(s.name for s in specs[:i] if s.healthcheck is not None and s.name not in spec.depends_on)
        out.append(replace(spec, depends_on=tuple(spec.depends_on) + before) if before else spec)
    return out


def stack_extension(target: str, service) -> dict:
    """The ``x-lazyllm`` key of a stack file: which target, which service, and where its URLs are served (unit,
    container port, path), for ``lazyllm stack up`` to print once it is healthy."""
    urls = {key: {"unit": u.name, "port": u.spec.ports[0].container_port, "path": path}
            for u in service.units for key, path in u.urls if u.spec.ports}
    return {"target": target, "service": service.name, "urls": urls,
            "primary": service.units[service.primary].name if service.units else None}


def _relative_files(doc: dict, files_dir: str, folder: str) -> None:
    """Binds of the service's generated files come from the folder beside the compose file (compose resolves a
    relative source against the file's own folder)."""
    prefix = files_dir.rstrip("/") + "/"
    for svc in doc["services"].values():
        for volume in svc.get("volumes", []):
            if volume["type"] == "bind" and volume["source"].startswith(prefix):
                volume["source"] = folder + "/" + volume["source"][len(prefix):]
