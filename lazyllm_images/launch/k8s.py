"""The Kubernetes target: a described Service (``launch.unit``) -> manifests.yaml, secrets.yaml, kustomization.yaml.

Per unit a Deployment (a ``batch/v1`` Job for a job unit) and, when it has ports, a ClusterIP Service with named
ports whose name is the host name the other units already use. Storage never points at the machine that rendered
the files (claims, ConfigMaps and emptyDirs: ``k8s_pod``, with the pods' security contexts and probes); a bind of
a single file that ``read_file`` (the caller's I/O, e.g. ``small_file``) reads goes into a ConfigMap. A unit's
secrets become a Secret in secrets.yaml (mode 0600) mounted at /run/secrets, read by ``runtime.secret_exec
--file``. GPUs are ``limits`` (requests equal) from a count, and GPU pods roll out with ``Recreate``; pods run
under the "restricted" Pod Security profile unless the spec runs as root. What has no Kubernetes form is refused
(the engine socket, a socket folder shared through the host, GPUs by index or UUID) or said: in
``Rendered.notes`` and, per workload, the ``org.lazyllm/k8s-notes`` annotation.

Every object set goes through ``k8s_check`` before it is returned; a finding there is a bug of this module
(ValueError). Checked offline against the schemas and those rules, never applied to a cluster here.
"""

from __future__ import annotations

import os
import re
import stat
from typing import Callable

from ..errors import UsageError
from . import gpu as gpu_mod
from . import k8s_check
from . import secrets as secrets_mod
from .k8s_names import k8s_name, service_name
from .k8s_pod import Claims, FileMaps, PodVolumes, _quantity, probes, security
# the pod side's constants and helpers, importable from here as before the split
from .k8s_pod import (CLAIM_SIZE, CLAIM_SIZES, CONFIG_MAP_MAX, DRIVER_PURPOSE, PROBE_TIMEOUT_S,  # noqa: F401
                      SECRET_MODE, UNPRIVILEGED, _tmpfs_size)
from .spec import ENGINE_PURPOSE, LaunchSpec, MountSpec
from .targets import Rendered
from .unit import Service, Unit

NOTES = "org.lazyllm/k8s-notes"
MANAGED_BY = "lazyllm"
SOCKET_PURPOSE = "socket"          # a folder of Unix sockets shared by two containers through this host (graphs)
GRACE_S = 60                       # streams finish before the pod is killed
PROGRESS_S = 600                   # Kubernetes' default progressDeadlineSeconds


def _refuse(unit: Unit) -> None:
    for m in unit.spec.mounts:
        if m.purpose == ENGINE_PURPOSE:
            raise UsageError(f"{unit.name} drives this host's Docker engine through its socket (the inference or "
                             "training controller starts containers there): it has no Kubernetes form",
                             "run this service on the engine's host: --target compose (or the default docker)")
        if m.purpose == SOCKET_PURPOSE and m.kind == "bind":
            raise UsageError(f"{unit.name} talks to another container through Unix sockets in a host folder "
                             f"({m.target}), which pods on different nodes do not share: it has no Kubernetes "
                             "form yet", "run this service with --target compose")


def _is_local(unit: Unit) -> bool:
    """An image this tool built (the top of the unit's stack, or under the local prefix): it is on no registry
    until ``lazyllm install ... --registry R --push`` puts it there."""
    from ..resolve.stack import image_prefix
    return unit.stack is not None or unit.spec.image.startswith(image_prefix() + "/")


def _rename_hosts(values, renames: dict[str, str]):
    """URLs naming another unit (http://old-name:8000) name its Service instead, where the names differ."""
    out = []
    for value in values:
        for old, new in renames.items():
            value = re.sub(r"(?<=://)" + re.escape(old) + r"(?=[:/]|$)", new, value)
        out.append(value)
    return out


def _reading_secrets(unit: Unit) -> tuple[LaunchSpec, str | None, str]:
    """(the unit's spec, reading its secrets from their mounted file where it has any; the secrets' JSON line,
    None for none; their key, the Secret's file name)."""
    spec = unit.spec
    payload = secrets_mod.payload(unit.secrets)
    key = secrets_mod.key(unit.name)
    if payload and not spec.command and spec.entrypoint is None:
        raise ValueError(f"{unit.name} has secrets but no command for secret_exec to start")
    if payload:
        spec = secrets_mod.reading_file(spec, f"{secrets_mod.MOUNT_DIR}/{key}", unit.wrap)
    return spec, payload, key


def _unit_notes(spec: LaunchSpec, dropped: list[MountSpec]) -> list[str]:
    """What the unit asks for that its pod does not do (its workload's annotation)."""
    notes = []
    if spec.ulimits:
        notes.append("ulimits (" + ", ".join(u.name for u in spec.ulimits) + ") are the node runtime's to set")
    if spec.depends_on:
        notes.append("no start order: waits for " + ", ".join(spec.depends_on) + " by retrying")
    if spec.devices:
        notes.append("host devices " + ", ".join(spec.devices) + " need a device plugin")
    if any(not g.isdigit() for g in spec.group_add):
        notes.append("group names are not supported; numeric supplementalGroups only")
    for p in spec.ports:
        if p.host_port:
            notes.append(f"host port {p.host_port} is not published: use the Service "
                         f"(kubectl port-forward) or an Ingress")
    if spec.ipc_host:
        notes.append("no host IPC namespace: /dev/shm is a memory emptyDir")
    if spec.network == "host":
        notes.append("no host network: the pod network and the Services")
    if spec.extra_networks:
        notes.append("reaches other services (" + ", ".join(spec.extra_networks) + ") by name: only when they "
                     "run in the same namespace under the same names")
    if dropped:
        notes.append("optional node paths not mounted: " + ", ".join(m.target for m in dropped))
    return notes


def small_file(path: str) -> bytes | None:
    """The bytes of the regular file ``path`` (symbolic links followed, as a bind mount does) when it fits a
    ConfigMap (at most 1 MiB); None for a folder, a missing or unreadable path, a bigger file: ``render``'s
    ``read_file`` for a caller rendering this host's service."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)       # a FIFO does not block the render
    except OSError:
        return None
    try:
        with os.fdopen(fd, "rb") as stream:
            info = os.fstat(stream.fileno())
            if not stat.S_ISREG(info.st_mode) or info.st_size > CONFIG_MAP_MAX:
                return None
            data = stream.read(CONFIG_MAP_MAX + 1)
    except OSError:
        return None
    return data if len(data) <= CONFIG_MAP_MAX else None


class _Renderer:
    def __init__(self, service: Service, registry: str | None, namespace: str | None, runtime_class: str | None,
                 read_file: Callable[[str], bytes | None] | None = None, node_labels: tuple = ()):
        self.service = service
        self.node_labels = dict(node_labels)
        self.registry = registry
        self.namespace = namespace
        self.runtime_class = runtime_class
        self.part_of = k8s_name(service.name)
        self.names = {u.name: service_name(u.name) for u in service.units}
        taken: dict[str, str] = {}
        for unit, kname in self.names.items():
            if kname in taken:
                raise UsageError(f"units {taken[kname]} and {unit} get the same Kubernetes name {kname}",
                                 "name the service differently (--name)")
            taken[kname] = unit
        self.renames = {old: new for old, new in self.names.items() if old != new}
        self.claims = Claims()
        self.file_maps = FileMaps(self.part_of, read_file, {k8s_name(f"{k}-files") for k in self.names.values()})
        self.workloads: list[dict] = []
        self.services: list[dict] = []
        self.config_maps: list[dict] = []
        self.secrets: list[dict] = []
        self.notes: list[str] = []

    # ------------------------------------------------------------------ metadata

    def meta(self, name: str, labels: dict, annotations: dict | None = None) -> dict:
        out: dict = {"name": name}
        if self.namespace:
            out["namespace"] = self.namespace
        out["labels"] = labels
        if annotations:
            out["annotations"] = annotations
        return out

    def common(self, component: str) -> dict[str, str]:
        return {"app.kubernetes.io/part-of": self.part_of, "app.kubernetes.io/component": k8s_name(component),
                "app.kubernetes.io/managed-by": MANAGED_BY}

    def labels(self, unit: Unit) -> tuple[dict[str, str], dict[str, str]]:
        """(every label, the selector: stable keys only)."""
        spec = unit.spec
        kname = self.names[unit.name]
        app = spec.labels.get("org.lazyllm.framework") or spec.role
        selector = {"app.kubernetes.io/instance": kname, "app.kubernetes.io/part-of": self.part_of}
        out = {"app.kubernetes.io/name": k8s_name(app), "app.kubernetes.io/instance": kname,
               **self.common(spec.role)}
        out.update({k: v for k, v in spec.labels.items()
                    if k not in out and k8s_check.qualified_name(k) and k8s_check.label_value(v)})
        return out, selector

    # ------------------------------------------------------------------ one unit

    def image(self, unit: Unit) -> str:
        if not _is_local(unit):
            return unit.spec.image
        if not self.registry:
            raise UsageError(f"--target k8s needs --registry: {unit.name}'s image {unit.spec.image} exists only on "
                             "this host, and cluster nodes pull images from a registry",
                             "push the stack first: 'lazyllm install ... --registry R --push', then render with "
                             "--registry R")
        from ..build.registry import remote_ref
        return remote_ref(self.registry, unit.spec.image)

    def unit(self, unit: Unit) -> None:
        """The unit's workload, and its Service, Secret and ConfigMap where it has ports, secrets, files."""
        _refuse(unit)
        limits = gpu_mod.k8s_limits(unit.spec.gpus)          # UsageError for 'all', indexes, UUIDs, MIG ids
        spec, payload, key = _reading_secrets(unit)
        labels, selector = self.labels(unit)
        kname = self.names[unit.name]
        vols = PodVolumes(unit, kname, self.part_of, self.claims, self.file_maps)
        vols.add(spec)
        self.notes += vols.notes
        if payload:
            self.secrets.append({"apiVersion": "v1", "kind": "Secret",
                                 "metadata": self.meta(k8s_name(key), labels), "type": "Opaque",
                                 "stringData": {key: payload}})
            vols.add_secret(k8s_name(key))
        if vols.used_files:
            self.config_maps.append({"apiVersion": "v1", "kind": "ConfigMap",
                                     "metadata": self.meta(vols.cm_name, dict(labels)), "data": vols.used_files})
        pod_ctx, ctx, security_notes = security(spec)
        container = self.container(unit, spec, limits, vols.mounts, ctx)
        pod = self.pod(unit, bool(limits), pod_ctx, container, vols.volumes())
        notes = _unit_notes(spec, vols.dropped) + security_notes
        self.notes += [f"{unit.name}: {n}" for n in notes]
        if spec.shm_size:
            self.notes.append(f"{unit.name}: /dev/shm ({_quantity(spec.shm_size)}) counts as the pod's memory: "
                              "memory requests and limits, if you add them, must cover the model's RAM plus it")
        meta = self.meta(kname, labels, {NOTES: "; ".join(notes)} if notes else None)
        self.workloads.append(self.workload(unit, spec, bool(limits), meta, selector, pod))
        if spec.ports:
            self.services.append({"apiVersion": "v1", "kind": "Service", "metadata": self.meta(kname, labels),
                                  "spec": {"type": "ClusterIP", "selector": selector,
                                           "ports": [{"name": p.name, "port": p.container_port,
                                                      "targetPort": p.name, "protocol": p.protocol.upper()}
                                                     for p in spec.ports]}})

    def container(self, unit: Unit, spec: LaunchSpec, limits: dict, mounts: list[dict], ctx: dict) -> dict:
        """The unit's one container: image, command (URLs to other units renamed), env, ports, GPUs, probes."""
        c: dict = {"name": self.names[unit.name], "image": self.image(unit), "imagePullPolicy": "IfNotPresent"}
        if spec.entrypoint is not None:
            c["command"] = _rename_hosts(spec.entrypoint, self.renames)
        if spec.command:
            c["args"] = _rename_hosts(spec.command, self.renames)
        if spec.working_dir:
            c["workingDir"] = spec.working_dir
        env = dict(gpu_mod.render(spec.gpus, "runtime").env) if spec.gpus.vendor == "nvidia" else {}
        env.update(spec.env)
        if env:
            c["env"] = [{"name": k, "value": v}
                        for k, v in zip(env, _rename_hosts([str(v) for v in env.values()], self.renames))]
        ports = [{"name": p.name, "containerPort": p.container_port, "protocol": p.protocol.upper()}
                 for p in spec.ports]
        unit_probes = {} if unit.job else probes(spec, ports)
        if ports:
            c["ports"] = ports
        if limits:
            c["resources"] = {"requests": dict(limits), "limits": dict(limits)}
        c.update(unit_probes)
        if mounts:
            c["volumeMounts"] = mounts
        c["securityContext"] = ctx
        return c

    def pod(self, unit: Unit, gpus: bool, pod_ctx: dict, container: dict, volumes: list[dict]) -> dict:
        pod: dict = {"automountServiceAccountToken": False,    # nothing here talks to the API server
                     "enableServiceLinks": False}               # a Service named vllm would set VLLM_PORT
        if self.runtime_class and gpus:
            pod["runtimeClassName"] = self.runtime_class
        if self.node_labels:
            pod["nodeSelector"] = dict(self.node_labels)
        pod["securityContext"] = pod_ctx
        if not unit.job:
            pod["terminationGracePeriodSeconds"] = GRACE_S
        pod["containers"] = [container]
        if volumes:
            pod["volumes"] = volumes
        if unit.job:
            pod["restartPolicy"] = "Never"
        return pod

    def workload(self, unit: Unit, spec: LaunchSpec, gpus: bool, meta: dict, selector: dict, pod: dict) -> dict:
        """A Job for a job unit, else a Deployment of one replica."""
        template = {"metadata": {"labels": meta["labels"]}, "spec": pod}
        if unit.job:
            return {"apiVersion": "batch/v1", "kind": "Job", "metadata": meta,
                    "spec": {"backoffLimit": 0, "template": template}}
        body: dict = {"replicas": 1, "selector": {"matchLabels": selector}}
        if gpus:       # the default rolling update starts a second GPU pod before stopping the first
            body["strategy"] = {"type": "Recreate"}
        start = spec.healthcheck.start_period_s if spec.healthcheck else 0
        body["progressDeadlineSeconds"] = max(PROGRESS_S, 2 * start)
        body["template"] = template
        return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta, "spec": body}

    # ------------------------------------------------------------------ the set

    def build(self) -> list[dict]:
        """Every object: claims, ConfigMaps (files of this host, then generated files), workloads, Services, then
        the Secrets; checked."""
        for unit in self.service.units:
            self.unit(unit)
        claims, notes = self.claims.objects(lambda name: self.meta(name, self.common("storage")))
        self.notes += notes
        file_maps, notes = self.file_maps.objects(lambda name: self.meta(name, self.common("config")))
        self.notes += notes
        self.manifests = claims + file_maps + self.config_maps + self.workloads + self.services
        problems = k8s_check.check(self.manifests + self.secrets)
        if problems:
            raise ValueError("the Kubernetes manifests fail their own checks (a bug of lazyllm):\n  "
                             + "\n  ".join(problems))
        return self.manifests + self.secrets

    def render(self) -> Rendered:
        self.build()
        objects = self.manifests
        from .yamltext import dump, dump_all
        header = (f"# {self.service.name}: rendered by lazyllm --target k8s; checked offline against the "
                  "Kubernetes schemas and lazyllm's rules, not applied to a cluster\n")
        files = [("manifests.yaml", header + dump_all(objects), 0o644)]
        resources = ["manifests.yaml"]
        if self.secrets:
            files.append(("secrets.yaml", "# plain-text secrets: keep this file private (mode 0600)\n"
                          + dump_all(self.secrets), 0o600))
            resources.append("secrets.yaml")
        files.append(("kustomization.yaml", dump({"apiVersion": "kustomize.config.k8s.io/v1beta1",
                                                  "kind": "Kustomization", "resources": resources}), 0o644))
        ns = f" -n {self.namespace}" if self.namespace else ""
        notes = list(self.notes)
        if self.renames:
            notes.append("units renamed to Kubernetes names (URLs between them follow): "
                         + ", ".join(f"{a} -> {b}" for a, b in self.renames.items()))
        primary = self.service.units[self.service.primary] if self.service.units else None
        if primary is not None and primary.spec.ports:
            p = primary.spec.ports[0]
            notes.append(f"reach it: kubectl{ns} port-forward service/{self.names[primary.name]} "
                         f"{p.host_port or p.container_port}:{p.container_port}")
        if self.secrets:
            notes.append("secrets.yaml holds the secrets in plain text (mode 0600): keep it out of version control")
        notes.append("apply: kubectl apply -k <output folder>; the manifests are checked offline against the "
                     "Kubernetes schemas and lazyllm's rules, not applied to a cluster")
        return Rendered(tuple(files), tuple(dict.fromkeys(notes)))


def objects(service: Service, registry: str | None, namespace: str | None = None,
            runtime_class: str | None = None, read_file: Callable[[str], bytes | None] | None = None,
            node_labels: tuple[tuple[str, str], ...] = ()) -> list[dict]:
    """Every object ``render`` writes, as dicts (the Secrets last)."""
    return _Renderer(service, registry, namespace, runtime_class, read_file, node_labels).build()


def preflight(service: Service, registry: str | None) -> None:
    """The UsageErrors ``render`` would raise, without rendering: call it before building anything (a unit with
    no Kubernetes form, GPUs by id, a local image and no registry, two units with one Kubernetes name)."""
    r = _Renderer(service, registry, None, None)
    for unit in service.units:
        _refuse(unit)
        gpu_mod.k8s_limits(unit.spec.gpus)
        r.image(unit)


def render(service: Service, registry: str | None, namespace: str | None = None,
           runtime_class: str | None = None, read_file: Callable[[str], bytes | None] | None = None,
           node_labels: tuple[tuple[str, str], ...] = ()) -> Rendered:
    """manifests.yaml, secrets.yaml (when a unit has secrets) and kustomization.yaml for ``service``.
    ``read_file(source)``: the bytes of a bind mount's source when it is a file small enough for a ConfigMap, else
    None (``small_file`` reads this host's); without it every bind folder or file is a claim the user fills.
    ``node_labels``: the pods' nodeSelector (``--node-label``)."""
    return _Renderer(service, registry, namespace, runtime_class, read_file, node_labels).render()


def spec_service(spec: LaunchSpec, **unit) -> Service:
    """A one-unit Service around a bare LaunchSpec (tests, and callers that have only a spec)."""
    return Service(spec.name, (Unit(spec, **unit),))

