"""LaunchSpecs -> Kubernetes Deployment + Service manifests (dicts and multi-document YAML).

What Kubernetes cannot say is refused or recorded, never faked: GPUs by index or UUID are a UsageError (the
device plugin picks devices from a count); ulimits, ``init`` and start order have no equivalent and are listed in
the ``org.lazyllm/k8s-notes`` annotation. Bind mounts become hostPath volumes, named volumes PVCs of that name,
tmpfs and the sized /dev/shm memory-backed emptyDirs. Labels whose values Kubernetes rejects go to annotations only.
"""

from __future__ import annotations

import math
import os
import re
from typing import Callable, Sequence

from . import gpu as gpu_mod
from ..errors import UsageError
from .spec import ENGINE_PURPOSE, LaunchSpec, MountSpec

_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
NOTES = "org.lazyllm/k8s-notes"


def k8s_name(name: str) -> str:
    """A DNS-1123 label: lower case, digits and '-', at most 63 characters."""
    out = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")[:63].strip("-")
    if not out:
        raise ValueError(f"{name!r} gives no Kubernetes name")
    return out


def _labels(spec: LaunchSpec) -> dict[str, str]:
    out = {"app.kubernetes.io/name": k8s_name(spec.name), "app.kubernetes.io/managed-by": "lazyllm"}
    out.update({k: v for k, v in spec.labels.items() if len(v) <= 63 and _LABEL_VALUE.match(v)})
    return out


def _volume(m: MountSpec, index: int) -> tuple[dict, dict]:
    if m.purpose == ENGINE_PURPOSE:
        raise UsageError("a container that drives this host's Docker engine (the inference or training controller) has no "
                         "Kubernetes form yet", "run it on the engine's host: 'lazyllm run infer_service'")
    vname = f"{k8s_name(m.purpose or m.kind)}-{index}"
    mount = {"name": vname, "mountPath": m.target}
    if m.read_only:
        mount["readOnly"] = True
    if m.kind == "bind":
        volume = {"name": vname, "hostPath": {"path": m.source}}
    elif m.kind == "volume":
        volume = {"name": vname, "persistentVolumeClaim": {"claimName": k8s_name(m.source),
                                                           **({"readOnly": True} if m.read_only else {})}}
    else:
        volume = {"name": vname, "emptyDir": {"medium": "Memory"}}
    return volume, mount


def _security(spec: LaunchSpec) -> tuple[dict, dict]:
    ctx: dict = {}
    if "no-new-privileges" in spec.security_opt or "no-new-privileges:true" in spec.security_opt:
        ctx["allowPrivilegeEscalation"] = False
    caps = {k: list(v) for k, v in (("drop", spec.cap_drop), ("add", spec.cap_add)) if v}
    if caps:
        ctx["capabilities"] = caps
    if spec.read_only_rootfs:
        ctx["readOnlyRootFilesystem"] = True
    pod: dict = {}
    if spec.user:
        uid, _, gid = spec.user.partition(":")
        if uid.isdigit():
            ctx["runAsUser"] = int(uid)
            ctx["runAsNonRoot"] = int(uid) != 0
        if gid.isdigit():
            ctx["runAsGroup"] = int(gid)
    groups = [int(g) for g in spec.group_add if g.isdigit()]
    if groups:
        pod["supplementalGroups"] = groups
    return ctx, pod


def _probes(spec: LaunchSpec) -> dict:
    hc = spec.healthcheck
    if hc is None:
        return {}
    get = {"path": hc.path, "port": hc.port}
    base = {"httpGet": get, "periodSeconds": hc.interval_s, "timeoutSeconds": hc.timeout_s}
    return {"startupProbe": {**base, "failureThreshold": math.ceil(hc.start_period_s / hc.interval_s) + hc.retries},
            "readinessProbe": {**base, "failureThreshold": hc.retries},
            "livenessProbe": {**base, "failureThreshold": hc.retries}}


def _quantity(size: str) -> str:
    """Docker's 8g / 512m / 1024 -> Kubernetes' 8Gi / 512Mi / 1024."""
    unit = size[-1].lower()
    return size[:-1] + {"k": "Ki", "m": "Mi", "g": "Gi", "b": ""}[unit] if unit.isalpha() else size


def _notes(spec: LaunchSpec) -> list[str]:
    notes = []
    if spec.ulimits:
        notes.append("ulimits (" + ", ".join(u.name for u in spec.ulimits) + ") are the node runtime's to set")
    if spec.depends_on:
        notes.append("no start order: waits for " + ", ".join(spec.depends_on) + " by retrying")
    if spec.devices:
        notes.append("host devices " + ", ".join(spec.devices) + " need a device plugin")
    if any(not g.isdigit() for g in spec.group_add):
        notes.append("group names are not supported; numeric supplementalGroups only")
    if any(p.host_port for p in spec.ports):
        notes.append("host ports are not published; use the Service (port-forward or an Ingress)")
    return notes


def container(spec: LaunchSpec, path_exists: Callable[[str], bool] = os.path.exists) -> tuple[dict, list[dict], dict]:
    """(container, pod volumes, pod-level fields). ``path_exists``: optional driver paths (Ascend's dcmi,
    npu-smi) are mounted only where it finds them; pass the nodes' answer when it differs from this host's."""
    c: dict = {"name": k8s_name(spec.name), "image": spec.image, "imagePullPolicy": "IfNotPresent"}
    if spec.entrypoint is not None:
        c["command"] = list(spec.entrypoint)
    if spec.command:
        c["args"] = list(spec.command)
    env = dict(gpu_mod.render(spec.gpus, "runtime").env) if spec.gpus.vendor == "nvidia" else {}
    env.update(spec.env)
    if env:
        c["env"] = [{"name": k, "value": str(v)} for k, v in env.items()]
    if spec.ports:
        c["ports"] = [{"name": p.name, "containerPort": p.container_port, "protocol": p.protocol.upper()}
                      for p in spec.ports]
    driver = gpu_mod.ASCEND_DRIVER_MOUNTS if spec.gpus.vendor == "ascend" and spec.gpus.wants_gpu else ()
    mounts = list(gpu_mod.container_mounts(spec.mounts, driver, path_exists))
    if spec.shm_size:
        mounts.append(MountSpec("tmpfs", "/dev/shm", purpose="shm"))
    pairs = [_volume(m, i) for i, m in enumerate(mounts)]
    volumes = [v for v, _ in pairs]
    if spec.shm_size:
        volumes[-1]["emptyDir"]["sizeLimit"] = _quantity(spec.shm_size)
    if pairs:
        c["volumeMounts"] = [m for _, m in pairs]
    limits = gpu_mod.k8s_limits(spec.gpus)
    if limits:
        c["resources"] = {"limits": limits}
    ctx, pod = _security(spec)
    c["securityContext"] = ctx
    c.update(_probes(spec))
    if spec.working_dir:
        c["workingDir"] = spec.working_dir
    if spec.stdin_open:
        c["stdin"] = True
    if spec.ipc_host:
        pod["hostIPC"] = True
    if spec.network == "host":
        pod["hostNetwork"] = True
    return c, volumes, pod


def manifests(specs: Sequence[LaunchSpec], namespace: str | None = None,
              path_exists: Callable[[str], bool] = os.path.exists) -> list[dict]:
    """A Deployment (and, when it publishes ports, a Service) per spec."""
    out: list[dict] = []
    for spec in specs:
        c, volumes, pod = container(spec, path_exists)
        labels = _labels(spec)
        selector = {"app.kubernetes.io/name": labels["app.kubernetes.io/name"]}
        meta: dict = {"name": k8s_name(spec.name), "labels": labels}
        annotations = {**spec.labels, **({NOTES: "; ".join(_notes(spec))} if _notes(spec) else {})}
        if annotations:
            meta["annotations"] = annotations
        if namespace:
            meta["namespace"] = namespace
        pod_spec = {**pod, "containers": [c], **({"volumes": volumes} if volumes else {})}
        out.append({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta,
                    "spec": {"replicas": 1, "selector": {"matchLabels": selector},
                             "template": {"metadata": {"labels": labels}, "spec": pod_spec}}})
        if spec.ports:
            svc_meta = {k: v for k, v in meta.items() if k != "annotations"}
            out.append({"apiVersion": "v1", "kind": "Service", "metadata": svc_meta,
                        "spec": {"type": "ClusterIP", "selector": selector,
                                 "ports": [{"name": p.name, "port": p.container_port, "targetPort": p.name,
                                            "protocol": p.protocol.upper()} for p in spec.ports]}})
    return out


def manifests_yaml(specs: Sequence[LaunchSpec], namespace: str | None = None,
                   path_exists: Callable[[str], bool] = os.path.exists) -> str:
    from .yamltext import dump_all
    return dump_all(manifests(specs, namespace, path_exists))
