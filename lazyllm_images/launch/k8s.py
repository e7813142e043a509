"""The Kubernetes target: a described Service (``launch.unit``) -> manifests.yaml, secrets.yaml, kustomization.yaml.

Per unit a Deployment (a ``batch/v1`` Job for a job unit) and, when it has ports, a ClusterIP Service with named
ports whose name is the host name the other units already use. Storage never points at the machine that rendered
the files: a model folder (a ``model`` bind) becomes a subPath of the claim ``SERVICE-models`` that the user fills,
other bind folders the claim ``SERVICE-PURPOSE``, named volumes claims of their name, generated files
(``Unit.files``) a ConfigMap, tmpfs writable emptyDirs, ``/dev/shm`` a memory emptyDir sized by ``shm_size``. A
unit's secrets become a Secret in secrets.yaml (mode 0600) mounted at /run/secrets, read by ``runtime.secret_exec
--file``. GPUs are ``limits`` (requests equal) from a count, and GPU pods roll out with ``Recreate``; pods run
under the "restricted" Pod Security profile unless the spec runs as root. What has no Kubernetes form is refused
(the engine socket, a socket folder shared through the host, GPUs by index or UUID) or said: in
``Rendered.notes`` and, per workload, the ``org.lazyllm/k8s-notes`` annotation.

Every object set goes through ``k8s_check`` before it is returned; a finding there is a bug of this module
(ValueError). Checked offline against the schemas and those rules, never applied to a cluster here.
"""

from __future__ import annotations

import math
import posixpath
import re

from ..errors import UsageError
from . import gpu as gpu_mod
from . import k8s_check
from . import secrets as secrets_mod
from .spec import ENGINE_PURPOSE, DEFAULT_USER, LaunchSpec, MountSpec
from .targets import Rendered
from .unit import Service, Unit

NOTES = "org.lazyllm/k8s-notes"
MANAGED_BY = "lazyllm"
SOCKET_PURPOSE = "socket"          # a folder of Unix sockets shared by two containers through this host (graphs)
DRIVER_PURPOSE = "driver"          # the node's accelerator driver files (Ascend): the only hostPath emitted
SECRET_MODE = 0o440                # group-readable: fsGroup owns the files, the unprivileged user reads them
UNPRIVILEGED = int(DEFAULT_USER.split(":")[0])
GRACE_S = 60                       # streams finish before the pod is killed
PROGRESS_S = 600                   # Kubernetes' default progressDeadlineSeconds
CLAIM_SIZES = {"model": "100Gi", "hub-cache": "100Gi"}
CLAIM_SIZE = "10Gi"
PROBE_TIMEOUT_S = 5                # the 1 s default kills busy servers
_SUB = re.compile(r"[^A-Za-z0-9._-]+")


def k8s_name(name: str) -> str:
    """A DNS-1123 label: lower case, digits and '-', at most 63 characters."""
    out = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")[:63].strip("-")
    if not out:
        raise ValueError(f"{name!r} gives no Kubernetes name")
    return out


def service_name(name: str) -> str:
    """A DNS-1035 label (a Service's name, the host name other pods use): a DNS-1123 label starting with a
    letter."""
    out = k8s_name(name)
    return out if out[0].isalpha() else k8s_name("x-" + out)


def _quantity(size: str) -> str:
    """Docker's 8g / 512m / 1024 -> Kubernetes' 8Gi / 512Mi / 1024."""
    unit = size[-1].lower()
    return size[:-1] + {"k": "Ki", "m": "Mi", "g": "Gi", "b": ""}[unit] if unit.isalpha() else size


def _tmpfs_size(options: str) -> str | None:
    for option in options.split(","):
        if option.startswith("size="):
            return _quantity(option[len("size="):])
    return None


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


class _Renderer:
    def __init__(self, service: Service, registry: str | None, namespace: str | None, runtime_class: str | None):
        self.service = service
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
        self.claims: dict[str, dict] = {}         # claim name -> {size, users, fill: {source: subPath}}
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

    # ------------------------------------------------------------------ storage

    def claim(self, name: str, purpose: str, unit: str, source: str | None = None) -> str | None:
        """Register a use of claim ``name``; for a folder the user fills, the subPath its ``source`` gets."""
        entry = self.claims.setdefault(name, {"size": CLAIM_SIZES.get(purpose, CLAIM_SIZE), "users": [],
                                              "fill": {}, "purpose": purpose})
        if unit not in entry["users"]:
            entry["users"].append(unit)
        if source is None:
            return None
        if source not in entry["fill"]:
            base = _SUB.sub("-", posixpath.basename(source.rstrip("/"))).strip(".-") or purpose
            sub, n = base, 2
            while sub in entry["fill"].values():
                sub, n = f"{base}-{n}", n + 1
            entry["fill"][source] = sub
        return entry["fill"][source]

    def claim_objects(self) -> list[dict]:
        out = []
        for name, entry in self.claims.items():
            out.append({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                        "metadata": self.meta(name, self.common("storage")),
                        "spec": {"accessModes": ["ReadWriteOnce"],
                                 "resources": {"requests": {"storage": entry["size"]}}}})
            size = f"PVC {name} ({entry['size']}, ReadWriteOnce, the default StorageClass; resize it to fit)"
            if entry["fill"]:
                what = "; ".join(f"copy {src} to {sub}/" for src, sub in entry["fill"].items())
                self.notes.append(f"{size} must be filled before the pods start: {what} "
                                  "(e.g. a helper pod mounting it and 'kubectl cp')")
            else:
                self.notes.append(f"{size} starts empty; the pods fill it")
            if len(entry["users"]) > 1:
                self.notes.append(f"PVC {name} is shared by {', '.join(entry['users'])}: under ReadWriteOnce they "
                                  "run on one node; a ReadWriteMany StorageClass spreads them")
        return out

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

    def unit_notes(self, spec: LaunchSpec, dropped: list[MountSpec]) -> list[str]:
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

    def security(self, spec: LaunchSpec) -> tuple[dict, dict, list[str]]:
        """(pod securityContext, container securityContext, notes)."""
        pod: dict = {}
        notes: list[str] = []
        uid, _, gid = (spec.user or "").partition(":")
        if uid.isdigit() and int(uid) != 0:
            pod.update(runAsNonRoot=True, runAsUser=int(uid))
            if gid.isdigit():
                pod["runAsGroup"] = int(gid)
        else:
            notes.append(f"runs as {'root' if uid in ('0', 'root') else 'the image user (root unless it says)'}: "
                         "Pod Security 'restricted' refuses it")
        pod["fsGroup"] = int(gid) if gid.isdigit() and int(gid) != 0 else UNPRIVILEGED
        pod["fsGroupChangePolicy"] = "OnRootMismatch"       # no recursive chown of a model claim on each start
        groups = [int(g) for g in spec.group_add if g.isdigit()]
        if groups:
            pod["supplementalGroups"] = groups
        pod["seccompProfile"] = {"type": "RuntimeDefault"}
        ctx: dict = {}
        if any(o.split(":")[0].split("=")[0] == "no-new-privileges" and not o.endswith(("false", "=0"))
               for o in spec.security_opt):
            ctx["allowPrivilegeEscalation"] = False
        caps = {k: list(v) for k, v in (("drop", spec.cap_drop), ("add", spec.cap_add)) if v}
        if caps:
            ctx["capabilities"] = caps
        ctx["readOnlyRootFilesystem"] = bool(spec.read_only_rootfs)
        return pod, ctx, notes

    def probes(self, spec: LaunchSpec, ports: list[dict]) -> dict:
        hc = spec.healthcheck
        if hc is None:
            return {}
        port = next((p["name"] for p in ports if p["containerPort"] == hc.port), None)
        if port is None:
            port = "health"
            ports.append({"name": port, "containerPort": hc.port, "protocol": "TCP"})
        base = {"httpGet": {"path": hc.path, "port": port}, "periodSeconds": hc.interval_s,
                "timeoutSeconds": max(hc.timeout_s, PROBE_TIMEOUT_S)}
        return {"startupProbe": {**base, "failureThreshold": math.ceil(hc.start_period_s / hc.interval_s) + hc.retries},
                "readinessProbe": {**base, "failureThreshold": hc.retries},
                "livenessProbe": {**base, "failureThreshold": hc.retries}}

    def volumes(self, unit: Unit, spec: LaunchSpec) -> tuple[list[dict], list[dict], list[MountSpec], dict | None]:
        """(pod volumes, container mounts, optional node paths left out, the unit's ConfigMap or None)."""
        driver = gpu_mod.ASCEND_DRIVER_MOUNTS if spec.gpus.vendor == "ascend" and spec.gpus.wants_gpu else ()
        every = list(spec.mounts) + [m for m in driver if m.target not in {s.target for s in spec.mounts}]
        kept = list(gpu_mod.container_mounts(spec.mounts, driver, lambda path: False))
        dropped = [m for m in every if m not in kept]
        kname = self.names[unit.name]
        files = dict(unit.files)
        cm_name = k8s_name(f"{kname}-files")
        volumes: dict[str, dict] = {}       # volume name -> volume
        keyed: dict[tuple, str] = {}        # what it is -> its volume name
        mounts: list[dict] = []
        used_files: dict[str, str] = {}

        def volume(key: tuple, base: str, source: dict) -> str:
            if key not in keyed:
                name, n = k8s_name(base), 2
                while name in volumes:
                    name, n = k8s_name(f"{base}-{n}"), n + 1
                volumes[name] = {"name": name, **source}
                keyed[key] = name
            return keyed[key]

        for m in kept:
            mount: dict = {"mountPath": m.target}
            purpose = m.purpose or m.kind
            base = posixpath.basename(m.source.rstrip("/")) if m.kind == "bind" else ""
            if m.kind == "tmpfs":
                size = _tmpfs_size(m.options)
                mount["name"] = volume(("tmpfs", m.target), purpose, {"emptyDir": {"sizeLimit": size} if size else {}})
            elif m.kind == "volume":
                claim = k8s_name(m.source)
                self.claim(claim, purpose, unit.name)
                mount["name"] = volume(("claim", claim, False), purpose,
                                       {"persistentVolumeClaim": {"claimName": claim}})
            elif m.purpose == DRIVER_PURPOSE:
                mount["name"] = volume(("host", m.source), purpose, {"hostPath": {"path": m.source}})
                self.notes.append(f"{unit.name} mounts the nodes' {m.source} (hostPath: the accelerator driver; "
                                  "Pod Security 'baseline' and 'restricted' refuse it)")
            elif base in files and m.read_only:
                used_files[base] = files[base]
                mount["name"] = volume(("files",), "files", {"configMap": {"name": cm_name}})
                mount["subPath"] = base
            else:
                model = m.purpose == "model"
                claim = k8s_name(f"{self.part_of}-models" if model else f"{self.part_of}-{purpose}")
                mount["subPath"] = self.claim(claim, purpose, unit.name, m.source)
                source = {"claimName": claim, **({"readOnly": True} if m.read_only else {})}
                mount["name"] = volume(("claim", claim, m.read_only), "models" if model else purpose,
                                       {"persistentVolumeClaim": source})
            if m.read_only:
                mount["readOnly"] = True
            mounts.append({"name": mount.pop("name"), **mount})
        if spec.shm_size or spec.ipc_host:
            shm = {"medium": "Memory", **({"sizeLimit": _quantity(spec.shm_size)} if spec.shm_size else {})}
            mounts.append({"name": volume(("shm",), "shm", {"emptyDir": shm}), "mountPath": "/dev/shm"})
        config_map = None
        if used_files:
            config_map = {"apiVersion": "v1", "kind": "ConfigMap",
                          "metadata": self.meta(cm_name, self.labels(unit)[0]), "data": used_files}
        unused = sorted(set(files) - set(used_files))
        if unused:
            raise ValueError(f"{unit.name}: generated files {unused} are mounted nowhere")
        return list(volumes.values()), mounts, dropped, config_map

    def unit(self, unit: Unit) -> None:
        _refuse(unit)
        spec = unit.spec
        kname = self.names[unit.name]
        limits = gpu_mod.k8s_limits(spec.gpus)          # UsageError for 'all', indexes, UUIDs, MIG ids
        payload = secrets_mod.payload(unit.secrets)
        key = secrets_mod.key(unit.name)
        if payload and not spec.command and spec.entrypoint is None:
            raise ValueError(f"{unit.name} has secrets but no command for secret_exec to start")
        if payload:
            spec = secrets_mod.reading_file(spec, f"{secrets_mod.MOUNT_DIR}/{key}", unit.wrap)
        labels, selector = self.labels(unit)
        volumes, mounts, dropped, config_map = self.volumes(unit, spec)
        if payload:
            secret_name = k8s_name(key)
            self.secrets.append({"apiVersion": "v1", "kind": "Secret",
                                 "metadata": self.meta(secret_name, labels), "type": "Opaque",
                                 "stringData": {key: payload}})
            volumes.append({"name": "secrets", "secret": {"secretName": secret_name, "defaultMode": SECRET_MODE}})
            mounts.append({"name": "secrets", "mountPath": secrets_mod.MOUNT_DIR, "readOnly": True})
        if config_map:
            self.config_maps.append(config_map)

        c: dict = {"name": kname, "image": self.image(unit), "imagePullPolicy": "IfNotPresent"}
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
        probes = {} if unit.job else self.probes(spec, ports)
        if ports:
            c["ports"] = ports
        if limits:
            c["resources"] = {"requests": dict(limits), "limits": dict(limits)}
        c.update(probes)
        if mounts:
            c["volumeMounts"] = mounts
        pod_ctx, ctx, security_notes = self.security(spec)
        c["securityContext"] = ctx

        pod: dict = {"automountServiceAccountToken": False,    # nothing here talks to the API server
                     "enableServiceLinks": False}               # a Service named vllm would set VLLM_PORT
        if self.runtime_class and limits:
            pod["runtimeClassName"] = self.runtime_class
        pod["securityContext"] = pod_ctx
        if not unit.job:
            pod["terminationGracePeriodSeconds"] = GRACE_S
        pod["containers"] = [c]
        if volumes:
            pod["volumes"] = volumes

        notes = self.unit_notes(spec, dropped) + security_notes
        self.notes += [f"{unit.name}: {n}" for n in notes]
        if spec.shm_size:
            self.notes.append(f"{unit.name}: /dev/shm ({_quantity(spec.shm_size)}) counts as the pod's memory: "
                              "memory requests and limits, if you add them, must cover the model's RAM plus it")
        annotations = {NOTES: "; ".join(notes)} if notes else None
        template = {"metadata": {"labels": labels}, "spec": pod}
        if unit.job:
            pod["restartPolicy"] = "Never"
            self.workloads.append({"apiVersion": "batch/v1", "kind": "Job",
                                   "metadata": self.meta(kname, labels, annotations),
                                   "spec": {"backoffLimit": 0, "template": template}})
        else:
            body: dict = {"replicas": 1, "selector": {"matchLabels": selector}}
            if limits:       # the default rolling update starts a second GPU pod before stopping the first
                body["strategy"] = {"type": "Recreate"}
            start = spec.healthcheck.start_period_s if spec.healthcheck else 0
            body["progressDeadlineSeconds"] = max(PROGRESS_S, 2 * start)
            body["template"] = template
            self.workloads.append({"apiVersion": "apps/v1", "kind": "Deployment",
                                   "metadata": self.meta(kname, labels, annotations), "spec": body})
        if spec.ports:
            self.services.append({"apiVersion": "v1", "kind": "Service", "metadata": self.meta(kname, labels),
                                  "spec": {"type": "ClusterIP", "selector": selector,
                                           "ports": [{"name": p.name, "port": p.container_port,
                                                      "targetPort": p.name, "protocol": p.protocol.upper()}
                                                     for p in spec.ports]}})

    # ------------------------------------------------------------------ the set

    def build(self) -> list[dict]:
        """Every object: claims, ConfigMaps, workloads, Services, then the Secrets; checked."""
        for unit in self.service.units:
            self.unit(unit)
        self.manifests = self.claim_objects() + self.config_maps + self.workloads + self.services
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
            runtime_class: str | None = None) -> list[dict]:
    """Every object ``render`` writes, as dicts (the Secrets last)."""
    return _Renderer(service, registry, namespace, runtime_class).build()


def preflight(service: Service, registry: str | None) -> None:
    """The UsageErrors ``render`` would raise, without rendering: call it before building anything (a unit with
    no Kubernetes form, GPUs by id, a local image and no registry, two units with one Kubernetes name)."""
    r = _Renderer(service, registry, None, None)
    for unit in service.units:
        _refuse(unit)
        gpu_mod.k8s_limits(unit.spec.gpus)
        r.image(unit)


def render(service: Service, registry: str | None, namespace: str | None = None,
           runtime_class: str | None = None) -> Rendered:
    """manifests.yaml, secrets.yaml (when a unit has secrets) and kustomization.yaml for ``service``."""
    return _Renderer(service, registry, namespace, runtime_class).render()


def spec_service(spec: LaunchSpec, **unit) -> Service:
    """A one-unit Service around a bare LaunchSpec (tests, and callers that have only a spec)."""
    return Service(spec.name, (Unit(spec, **unit),))

