"""A ``launch.unit.Service`` -> a stack file for ``docker stack deploy`` (schema 3.9: the newest a 20.10 engine knows).

One Swarm service per unit, keyed by the unit's name (its DNS name on the service's overlay network). What this
writes, and why (``reference/scale-out.md`` §1):

- ``endpoint_mode: dnsrr`` and host-mode ports: VIPs and the routing mesh need IPVS, which many kernels lack;
  a port opens only on the node running the task (``backends.swarm`` reads which).
- GPUs as generic resources (``NVIDIA-GPU``, a count): Swarm has no device requests; CPU units get
  ``NVIDIA_VISIBLE_DEVICES=void`` (nodes with ``default-runtime: nvidia`` would otherwise give them every GPU).
- Secrets as Swarm secrets (a file beside the stack file, mode 0600, a content hash in the name: they are
  immutable), read by ``runtime.secret_exec --file``; generated files as configs at their mount targets.
- ``/tmp`` (and any tmpfs) as a volume: every Swarm tmpfs is ``noexec``; ``/dev/shm`` as a sized tmpfs mount
  (Swarm ignores ``shm_size``).
- What Swarm cannot express (ipc=host, security_opt, devices, start order) goes to ``Rendered.notes``.

Pure: no I/O. ``backends.swarm`` deploys the written files.
"""

from __future__ import annotations

import posixpath
import re

from .. import LABEL_PREFIX, MANAGED_LABEL
from ..errors import UsageError
from . import secrets as secrets_mod
from .compose import (
    FILES_SUFFIX,
    SECRETS_SUFFIX,
    _escape,
    add_healthcheck,
    add_security,
)
from .spec import ENGINE_PURPOSE, SCRATCH, LaunchSpec, MountSpec
from .targets import Rendered
from .unit import Service, Unit

VERSION = "3.9"
GPU_KIND = "NVIDIA-GPU"
RESOURCE_ENV = "DOCKER_RESOURCE_NVIDIA-GPU"
TARGET = "swarm"
_UNITS = {"b": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3}
_KEY = re.compile(r"[^A-Za-z0-9_.-]+")


def render(service: Service, registry: str | None, stack_file: str, node_hostname: str | None = None,
           node_labels: tuple[tuple[str, str], ...] = ()) -> Rendered:
    """The stack file (and its secret and config files, relative to the stack file's folder) for ``service``.

    ``registry``: where every node pulls the images from (``remote_ref``); None: the images exist only on this
    node, whose hostname ``node_hostname`` then pins every service. ``node_labels``: (key, value) placement
    constraints on ``node.labels`` for every unit (``--node-label``)."""
    if registry is None and not node_hostname:
        raise UsageError("a Swarm service needs its images on every node it may run on",
                         "push them with --registry HOST:PORT/NS (lazyllm install ... --push), or run on this "
                         "node only")
    for unit in service.units:
        _check_unit(unit)
    stem = posixpath.splitext(posixpath.basename(stack_file))[0] or service.name
    stack = service.name
    net = f"{stack}-net"
    labels = _object_labels(stack)
    files: list[tuple[str, str, int]] = []
    notes: list[str] = []
    doc: dict = {"version": VERSION, "services": {}}
    top_secrets: dict = {}
    top_configs: dict = {}
    volumes: dict = {}
    urls: dict = {}
    if registry is None:
        notes.append(f"the images exist only on this node: every service is pinned to node.hostname == "
                     f"{node_hostname} (push them with --registry to let Swarm place them anywhere)")
    for unit in service.units:
        spec = unit.spec
        text = secrets_mod.payload(unit.secrets)
        svc_secrets = []
        if text is not None:
            key = secrets_mod.key(unit.name)
            rel = f"{stem}{SECRETS_SUFFIX}/{key}"
            files.append((rel, text, 0o600))
            top_secrets[key] = {"file": f"./{rel}", "name": f"{stack}_{key}_{secrets_mod.digest(text)}",
                                "labels": dict(labels)}
            uid, gid = _ids(spec)
            svc_secrets.append({"source": key, "target": key, "uid": uid, "gid": gid, "mode": 0o400})
            spec = secrets_mod.reading_file(spec, secrets_mod.path(unit.name), unit.wrap)
        image = _image(spec.image, registry)
        svc, svc_configs = _service(unit, spec, image, net, stem, stack, top_configs, volumes, files, notes)
        if svc_secrets:
            svc["secrets"] = svc_secrets
        if svc_configs:
            svc["configs"] = svc_configs
        deploy = svc["deploy"]
        constraints = [f"node.labels.{k} == {v}" for k, v in node_labels]
        if registry is None:
            constraints.append(f"node.hostname == {node_hostname}")
        if constraints:
            deploy.setdefault("placement", {}).setdefault("constraints", []).extend(constraints)
        doc["services"][unit.name] = svc
        for key, path in unit.urls:
            if spec.ports:
                urls[key] = {"unit": unit.name, "port": spec.ports[0].container_port, "path": path}
    doc["networks"] = {net: {"name": net, "driver": "overlay", "attachable": True, "labels": dict(labels)}}
    if volumes:
        doc["volumes"] = volumes
    if top_secrets:
        doc["secrets"] = top_secrets
    if top_configs:
        doc["configs"] = top_configs
    doc["x-lazyllm"] = {"target": TARGET, "service": stack, "urls": urls}
    from .yamltext import dump
    files.insert(0, (posixpath.basename(stack_file), dump(_escape(doc)), 0o644))
    return Rendered(tuple(files), tuple(notes))


# ------------------------------------------------------------------ checks

def _check_unit(unit: Unit) -> None:
    spec = unit.spec
    for m in spec.mounts:
        if m.purpose == ENGINE_PURPOSE:
            raise UsageError(f"{spec.name} starts containers through the engine's socket, which a Swarm service "
                             "cannot do on whichever node it lands (its containers would not be Swarm's)",
                             "deploy it with --target compose, or on this engine (--target docker)")
        if m.kind == "bind" and m.purpose == "socket":
            raise UsageError(f"{spec.name} shares a socket folder with another container ({m.target}), which "
                             "only works when both run on one host",
                             "deploy it with --target compose, or on this engine (--target docker)")
    gpus = spec.gpus
    if gpus.kind == "auto":
        raise ValueError("resolve the GPU request (gpu.resolve) before rendering it")
    if gpus.wants_gpu and gpus.vendor != "nvidia":
        raise UsageError(f"{spec.name} asks for {gpus.vendor} accelerators; the Swarm target renders NVIDIA GPUs "
                         "only (generic resources named NVIDIA-GPU)",
                         "deploy it with --target compose, or on this engine (--target docker)")
    if gpus.kind == "all" or gpus.kind == "devices":
        what = "all GPUs" if gpus.kind == "all" else f"GPUs {','.join(gpus.devices)}"
        raise UsageError(f"{spec.name} asks for {what}; Swarm counts GPUs (generic resources) and chooses which "
                         "a task gets, so it cannot take all of a node's or particular ones",
                         "ask for a count instead, e.g. --gpus 1")


# ------------------------------------------------------------------ one service

def _service(unit: Unit, spec: LaunchSpec, image: str, net: str, stem: str, stack: str, top_configs: dict,
             volumes: dict, files: list, notes: list) -> tuple[dict, list]:
    name = unit.name
    svc: dict = {"image": image}
    if spec.entrypoint is not None:
        svc["entrypoint"] = list(spec.entrypoint)
    if spec.command:
        svc["command"] = list(spec.command)
    env = dict(spec.env)
    reservations: dict = {}
    if spec.gpus.wants_gpu:
        env["NVIDIA_DRIVER_CAPABILITIES"] = ",".join(spec.gpus.capabilities)
        reservations["generic_resources"] = [{"discrete_resource_spec": {"kind": GPU_KIND,
                                                                         "value": spec.gpus.count}}]
        notes.append(f"{name}: {spec.gpus.count} GPU(s) as Swarm generic resources: each GPU node needs "
                     f"\"node-generic-resources\": [\"{GPU_KIND}=GPU-<uuid>\", ...] and \"default-runtime\": "
                     f"\"nvidia\" in daemon.json, and swarm-resource = \"{RESOURCE_ENV}\" in "
                     "/etc/nvidia-container-runtime/config.toml")
    elif spec.gpus.vendor == "nvidia":
        env["NVIDIA_VISIBLE_DEVICES"] = "void"
    if env:
        svc["environment"] = {k: str(v) for k, v in env.items()}
    if spec.ports:
        svc["ports"] = [{"target": p.container_port, **({"published": p.host_port} if p.host_port else {}),
                         "protocol": p.protocol, "mode": "host"} for p in spec.ports]
        bound = sorted({p.host_ip for p in spec.ports if p.host_ip not in ("", "0.0.0.0", "::")})
        if bound:
            notes.append(f"{name}: Swarm publishes on every address of the node, not only {', '.join(bound)}: "
                         "firewall the port if the node is reachable from outside")
    configs = _mounts(unit, spec, svc, stem, stack, top_configs, volumes, files, notes)
    add_security(svc, spec)
    if "security_opt" in svc:
        notes.append(f"{name}: Swarm drops security_opt ({', '.join(svc.pop('security_opt'))})")
    if spec.working_dir:
        svc["working_dir"] = spec.working_dir
    if spec.ulimits:
        svc["ulimits"] = {u.name: {"soft": u.soft, "hard": u.hard} for u in spec.ulimits}
    if spec.ipc_host:
        notes.append(f"{name}: Swarm has no ipc: host; give it a sized /dev/shm (--shm-size) instead")
    if spec.devices:
        notes.append(f"{name}: Swarm drops devices ({', '.join(spec.devices)})")
    if spec.group_add:
        notes.append(f"{name}: Swarm drops group_add ({', '.join(spec.group_add)})")
    if spec.depends_on:
        notes.append(f"{name}: Swarm starts services in no order (it would wait for {', '.join(spec.depends_on)}):"
                     " it restarts until they answer")
    others = [n for n in (spec.network,) + tuple(spec.extra_networks) if n and n != net]
    if others:
        notes.append(f"{name}: joins only {net} on Swarm, not {', '.join(others)}")
    labels = {**spec.labels, f"{LABEL_PREFIX}.target": TARGET}
    svc["labels"] = dict(labels)
    add_healthcheck(svc, spec)
    svc["networks"] = [net]
    deploy: dict = {"mode": "replicated", "replicas": 1, "endpoint_mode": "dnsrr", "labels": dict(labels)}
    if reservations:
        deploy["resources"] = {"reservations": reservations}
    if spec.ports:
        deploy["placement"] = {"max_replicas_per_node": 1}
    hc = spec.healthcheck
    monitor = (hc.start_period_s + hc.interval_s * hc.retries + hc.timeout_s) if hc else 30
    deploy["update_config"] = {"parallelism": 1, "order": "stop-first", "failure_action": "rollback",
                               "monitor": f"{monitor}s"}
    deploy["restart_policy"] = {"condition": "none"} if unit.job else {"condition": "any", "delay": "5s"}
    svc["deploy"] = deploy
    return svc, configs


def _mounts(unit: Unit, spec: LaunchSpec, svc: dict, stem: str, stack: str, top_configs: dict, volumes: dict,
            files: list, notes: list) -> list:
    name = unit.name
    generated = dict(unit.files)
    mounts: list[dict] = []
    configs: list[dict] = []
    for m in spec.mounts:
        base = posixpath.basename(m.source) if m.kind == "bind" else ""
        if m.kind == "bind" and base in generated:
            text = generated.pop(base)
            key = _KEY.sub("-", f"{name}-{base}")
            rel = f"{stem}{FILES_SUFFIX}/{name}/{base}"
            files.append((rel, text, 0o644))
            top_configs[key] = {"file": f"./{rel}", "name": f"{stack}_{key}_{secrets_mod.digest(text)}",
                                "labels": _object_labels(stack)}
            uid, gid = _ids(spec)
            configs.append({"source": key, "target": m.target, "uid": uid, "gid": gid, "mode": 0o444})
        elif m.kind == "tmpfs":
            if m.target == "/dev/shm":
                mounts.append({"type": "tmpfs", "target": m.target, "tmpfs": {"size": _tmpfs_size(m)}})
            else:
                # Swarm's tmpfs is noexec (JIT caches load .so files from /tmp): a volume, new with each task
                mounts.append({"type": "volume", "target": m.target})
                if m.target != SCRATCH and m.purpose != "scratch":
                    notes.append(f"{name}: {m.target} is a volume on Swarm (its tmpfs is noexec)")
        elif m.kind == "volume":
            mounts.append({"type": "volume", "source": m.source, "target": m.target,
                           **({"read_only": True} if m.read_only else {})})
            volumes[m.source] = {"name": m.source, "labels": _object_labels(stack)}
        else:
            if m.optional:
                notes.append(f"{name}: Swarm cannot leave out a missing bind source: {m.source} dropped")
                continue
            mounts.append({"type": "bind", "source": m.source, "target": m.target,
                           **({"read_only": True} if m.read_only else {})})
            notes.append(f"{name}: {m.source} must exist on every node the service may run on")
    if generated:
        raise ValueError(f"{name}: generated files {sorted(generated)} have no bind mount naming them")
    if spec.shm_size and not any(v["target"] == "/dev/shm" for v in mounts):
        mounts.append({"type": "tmpfs", "target": "/dev/shm", "tmpfs": {"size": size_bytes(spec.shm_size)}})
    if mounts:
        svc["volumes"] = mounts
    return configs


def size_bytes(text: str) -> int:
    """``8g`` -> 8589934592 (the LaunchSpec's size forms)."""
    text = text.strip().lower()
    if text[-1] in _UNITS:
        return int(text[:-1]) * _UNITS[text[-1]]
    return int(text)


def _tmpfs_size(m: MountSpec) -> int:
    for opt in m.options.split(","):
        if opt.startswith("size="):
            return size_bytes(opt[5:])
    return 64 * 1024 ** 2


def _ids(spec: LaunchSpec) -> tuple[str, str]:
    """Owner of the secret and config files: the container's user when numeric (root reads anything)."""
    user = spec.user or "0:0"
    uid, _, gid = user.partition(":")
    uid = uid if uid.isdigit() else "10001"
    gid = gid if gid.isdigit() else uid
    return uid, gid


def _image(ref: str, registry: str | None) -> str:
    if registry is None:
        return ref
    from ..build.registry import remote_ref
    return remote_ref(registry, ref)


def _object_labels(stack: str) -> dict:
    return {MANAGED_LABEL: "true", f"{LABEL_PREFIX}.service": stack, f"{LABEL_PREFIX}.target": TARGET}
