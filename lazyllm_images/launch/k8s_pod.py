"""The pod side of the Kubernetes target (``launch.k8s``): a container's security context and probes, a pod's
volumes and mounts, and the PersistentVolumeClaims they use.

Storage never points at the machine that rendered the files: a model folder (a ``model`` bind) becomes a subPath
of the claim ``SERVICE-models`` that the user fills, other bind folders the claim ``SERVICE-PURPOSE``, a bind of a
single small file of this host (a workflow graph, the host's CA bundle, a config file: whatever the renderer's
``read_file`` reads) the ConfigMap ``SERVICE-PURPOSE`` holding a copy, mounted read-only by subPath, named volumes
claims of their name, generated files (``Unit.files``) the unit's ConfigMap, tmpfs writable emptyDirs, ``/dev/shm``
a memory emptyDir sized by ``shm_size``, the unit's Secret a read-only volume at /run/secrets.
"""

from __future__ import annotations

import base64
import json
import math
import posixpath
import re
from typing import Callable

from . import gpu as gpu_mod
from . import secrets as secrets_mod
from .k8s_names import k8s_name
from .spec import DEFAULT_USER, LaunchSpec, MountSpec
from .unit import Unit

DRIVER_PURPOSE = "driver"          # the node's accelerator driver files (Ascend): the only hostPath emitted
SECRET_MODE = 0o440                # group-readable: fsGroup owns the files, the unprivileged user reads them
UNPRIVILEGED = int(DEFAULT_USER.split(":")[0])
CLAIM_SIZES = {"model": "100Gi", "hub-cache": "100Gi"}
CLAIM_SIZE = "10Gi"
PROBE_TIMEOUT_S = 5                # the 1 s default kills busy servers
CONFIG_MAP_MAX = 1024 * 1024       # the API server's limit on a ConfigMap's data (and a Secret's)
APPLY_ANNOTATION_MAX = 256 * 1024  # client-side apply copies the object into an annotation, limited to this
_SUB = re.compile(r"[^A-Za-z0-9._-]+")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")    # text but tab, LF, CR: binaryData instead


def _quantity(size: str) -> str:
    """Docker's 8g / 512m / 1024 -> Kubernetes' 8Gi / 512Mi / 1024."""
    unit = size[-1].lower()
    return size[:-1] + {"k": "Ki", "m": "Mi", "g": "Gi", "b": ""}[unit] if unit.isalpha() else size


def _tmpfs_size(options: str) -> str | None:
    for option in options.split(","):
        if option.startswith("size="):
            return _quantity(option[len("size="):])
    return None


def security(spec: LaunchSpec) -> tuple[dict, dict, list[str]]:
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


def probes(spec: LaunchSpec, ports: list[dict]) -> dict:
    """The container's startup, readiness and liveness probes from the spec's healthcheck; a port it checks that
    ``ports`` lacks is added to them as ``health``."""
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


class Claims:
    """The PersistentVolumeClaims of a service's units, in the order of their first use."""

    def __init__(self) -> None:
        self.entries: dict[str, dict] = {}      # claim name -> {size, users, fill: {source: subPath}, purpose}

    def use(self, name: str, purpose: str, unit: str, source: str | None = None) -> str | None:
        """Register a use of claim ``name``; for a folder the user fills, the subPath its ``source`` gets."""
        entry = self.entries.setdefault(name, {"size": CLAIM_SIZES.get(purpose, CLAIM_SIZE), "users": [],
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

    def objects(self, meta: Callable[[str], dict]) -> tuple[list[dict], list[str]]:
        """(a PersistentVolumeClaim per claim, with ``meta(name)`` its metadata; the notes on filling and sharing
        them)."""
        out, notes = [], []
        for name, entry in self.entries.items():
            out.append({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": meta(name),
                        "spec": {"accessModes": ["ReadWriteOnce"],
                                 "resources": {"requests": {"storage": entry["size"]}}}})
            size = f"PVC {name} ({entry['size']}, ReadWriteOnce, the default StorageClass; resize it to fit)"
            if entry["fill"]:
                what = "; ".join(f"copy {src} to {sub}/" for src, sub in entry["fill"].items())
                notes.append(f"{size} must be filled before the pods start: {what} "
                             "(e.g. a helper pod mounting it and 'kubectl cp')")
            else:
                notes.append(f"{size} starts empty; the pods fill it")
            if len(entry["users"]) > 1:
                notes.append(f"PVC {name} is shared by {', '.join(entry['users'])}: under ReadWriteOnce they "
                             "run on one node; a ReadWriteMany StorageClass spreads them")
        return out, notes


def config_key(source: str, purpose: str) -> str:
    """A ConfigMap key ([-._a-zA-Z0-9]+, at most 253, not '.' or '..' nor starting with '..') from a file's
    base name."""
    key = _SUB.sub("-", posixpath.basename(source.rstrip("/")))[-253:]
    if key == "." or key.startswith(".."):
        key = key.lstrip(".")
    return key or k8s_name(purpose)


class FileMaps:
    """The ConfigMaps that hold single files of this host bind-mounted by a service's units, one per distinct file
    (base name and bytes): units mounting the same file share its ConfigMap. ``read_file(source)`` gives a file's
    bytes, None for what is no file that fits a ConfigMap (a folder, a missing path, a file over 1 MiB): that stays
    a claim."""

    def __init__(self, part_of: str, read_file: Callable[[str], bytes | None] | None, taken: set[str]):
        self.part_of = part_of
        self.read_file = read_file
        self.taken = set(taken)                 # ConfigMap names in use (the units' generated files)
        self.read: dict[str, bytes | None] = {}  # source -> its bytes, read once
        self.entries: dict[tuple[str, bytes], dict] = {}   # (key, bytes) -> {name, key, purpose, sources, users}

    def content(self, source: str) -> bytes | None:
        if self.read_file is None:
            return None
        if source not in self.read:
            data = self.read_file(source)
            self.read[source] = data if isinstance(data, bytes) and len(data) <= CONFIG_MAP_MAX else None
        return self.read[source]

    def use(self, m: MountSpec, unit: str) -> tuple[str, str] | None:
        """(ConfigMap name, key) holding the file bind ``m`` mounts; None when its source is no file it holds."""
        data = self.content(m.source)
        if data is None:
            return None
        purpose = m.purpose or "file"
        key = config_key(m.source, purpose)
        entry = self.entries.get((key, data))
        if entry is None:
            base = k8s_name(f"{self.part_of}-{purpose}")
            name, n = base, 2
            while name in self.taken:
                name, n = k8s_name(f"{base[:60]}-{n}"), n + 1
            self.taken.add(name)
            entry = self.entries[(key, data)] = {"name": name, "key": key, "data": data, "sources": [], "users": []}
        for field, value in (("sources", m.source), ("users", unit)):
            if value not in entry[field]:
                entry[field].append(value)
        return entry["name"], key

    def objects(self, meta: Callable[[str], dict]) -> tuple[list[dict], list[str]]:
        """(a ConfigMap per file, ``meta(name)`` its metadata, ``data`` for UTF-8 text, ``binaryData`` base64
        otherwise; the notes saying where each came from)."""
        out, notes = [], []
        for entry in self.entries.values():
            obj: dict = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta(entry["name"])}
            try:
                text = entry["data"].decode("utf-8")
            except UnicodeDecodeError:
                text = None
            if text is not None and not _CONTROL.search(text):
                obj["data"] = {entry["key"]: text}
            else:
                obj["binaryData"] = {entry["key"]: base64.b64encode(entry["data"]).decode("ascii")}
            out.append(obj)
            notes.append(f"ConfigMap {entry['name']} holds a copy of {', '.join(entry['sources'])} "
                         f"({len(entry['data'])} bytes, mounted read-only by {', '.join(entry['users'])}): "
                         "render again after changing it")
            if len(json.dumps(obj)) > APPLY_ANNOTATION_MAX:
                notes.append(f"ConfigMap {entry['name']} is too big for client-side apply's annotation "
                             "(256 KiB): kubectl apply --server-side -k <output folder>")
        return out, notes


class PodVolumes:
    """One unit's pod volumes and its container's mounts, each volume named once for what it is. After ``add``:
    ``mounts``, ``volumes()``, ``dropped`` (the optional node paths left out), ``used_files`` (the generated files
    its ConfigMap ``cm_name`` holds) and ``notes`` (for the service's notes)."""

    def __init__(self, unit: Unit, kname: str, part_of: str, claims: Claims, file_maps: FileMaps | None = None):
        self.unit = unit
        self.part_of = part_of
        self.claims = claims
        self.file_maps = file_maps
        self.files = dict(unit.files)
        self.cm_name = k8s_name(f"{kname}-files")
        self.named: dict[str, dict] = {}        # volume name -> volume
        self.keyed: dict[tuple, str] = {}       # what it is -> its volume name
        self.secret_volume: dict | None = None
        self.mounts: list[dict] = []
        self.used_files: dict[str, str] = {}
        self.dropped: list[MountSpec] = []
        self.notes: list[str] = []

    def volumes(self) -> list[dict]:
        return list(self.named.values()) + ([self.secret_volume] if self.secret_volume else [])

    def add(self, spec: LaunchSpec) -> None:
        """Mount what ``spec`` mounts (the Ascend driver's node paths for its GPUs) and its /dev/shm."""
        driver = gpu_mod.ASCEND_DRIVER_MOUNTS if spec.gpus.vendor == "ascend" and spec.gpus.wants_gpu else ()
        every = list(spec.mounts) + [m for m in driver if m.target not in {s.target for s in spec.mounts}]
        kept = list(gpu_mod.container_mounts(spec.mounts, driver, lambda path: False))
        self.dropped = [m for m in every if m not in kept]
        for m in kept:
            self.mount(m)
        if spec.shm_size or spec.ipc_host:
            shm = {"medium": "Memory", **({"sizeLimit": _quantity(spec.shm_size)} if spec.shm_size else {})}
            self.mounts.append({"name": self.volume(("shm",), "shm", {"emptyDir": shm}), "mountPath": "/dev/shm"})
        unused = sorted(set(self.files) - set(self.used_files))
        if unused:
            raise ValueError(f"{self.unit.name}: generated files {unused} are mounted nowhere")

    def add_secret(self, secret_name: str) -> None:
        """The unit's Secret, read-only at secret_exec's folder."""
        self.secret_volume = {"name": "secrets", "secret": {"secretName": secret_name, "defaultMode": SECRET_MODE}}
        self.mounts.append({"name": "secrets", "mountPath": secrets_mod.MOUNT_DIR, "readOnly": True})

    def volume(self, key: tuple, base: str, source: dict) -> str:
        """The name of the volume ``key`` (``source`` under a new name from ``base`` the first time)."""
        if key not in self.keyed:
            name, n = k8s_name(base), 2
            while name in self.named:
                name, n = k8s_name(f"{base}-{n}"), n + 1
            self.named[name] = {"name": name, **source}
            self.keyed[key] = name
        return self.keyed[key]

    def mount(self, m: MountSpec) -> None:
        mount: dict = {"mountPath": m.target}
        purpose = m.purpose or m.kind
        base = posixpath.basename(m.source.rstrip("/")) if m.kind == "bind" else ""
        if m.kind == "tmpfs":
            size = _tmpfs_size(m.options)
            mount["name"] = self.volume(("tmpfs", m.target), purpose, {"emptyDir": {"sizeLimit": size} if size else {}})
        elif m.kind == "volume":
            claim = k8s_name(m.source)
            self.claims.use(claim, purpose, self.unit.name)
            mount["name"] = self.volume(("claim", claim, False), purpose,
                                        {"persistentVolumeClaim": {"claimName": claim}})
        elif m.purpose == DRIVER_PURPOSE:
            mount["name"] = self.volume(("host", m.source), purpose, {"hostPath": {"path": m.source}})
            self.notes.append(f"{self.unit.name} mounts the nodes' {m.source} (hostPath: the accelerator driver; "
                              "Pod Security 'baseline' and 'restricted' refuse it)")
        elif base in self.files and m.read_only:
            self.used_files[base] = self.files[base]
            mount["name"] = self.volume(("files",), "files", {"configMap": {"name": self.cm_name}})
            mount["subPath"] = base
        elif self.file_maps is not None and (held := self.file_maps.use(m, self.unit.name)) is not None:
            cm_name, key = held
            mount["name"] = self.volume(("configmap", cm_name), purpose, {"configMap": {"name": cm_name}})
            mount["subPath"] = key
            mount["readOnly"] = True
            if not m.read_only:
                self.notes.append(f"{self.unit.name}: {m.target} is a read-only copy of {m.source} (ConfigMap "
                                  f"{cm_name}): writes to it fail")
        else:
            self.folder(m, mount, purpose)
        if m.read_only:
            mount["readOnly"] = True
        self.mounts.append({"name": mount.pop("name"), **mount})

    def folder(self, m: MountSpec, mount: dict, purpose: str) -> None:
        """A bind folder: a subPath of the service's claim for its purpose (``SERVICE-models`` for a model)."""
        model = m.purpose == "model"
        claim = k8s_name(f"{self.part_of}-models" if model else f"{self.part_of}-{purpose}")
        mount["subPath"] = self.claims.use(claim, purpose, self.unit.name, m.source)
        source = {"claimName": claim, **({"readOnly": True} if m.read_only else {})}
        mount["name"] = self.volume(("claim", claim, m.read_only), "models" if model else purpose,
                                    {"persistentVolumeClaim": source})
