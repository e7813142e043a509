"""What the API server rejects and the OpenAPI schemas let through: a pure checker for a set of manifests.

``kubernetes-validate --strict`` checks types and field names only. These rules (docs/reference: scale-out §3.3)
are the API server's own validation, or a set that cannot work (a Service selecting no pod, a mount of a claim
nothing creates): names (DNS-1123 labels and subdomains, DNS-1035 for Services), port names (IANA_SVC_NAME),
quantities, extended resource names and whole GPU counts, label keys and values, selectors within the template's
labels, named targetPorts and probe ports that exist, declared and unique volumes and mount paths, ConfigMap and
Secret keys, and every PersistentVolumeClaim, Secret and ConfigMap (and ConfigMap key) a pod refers to present in
the set: its volumes (projected ones too), subPath mounts of a ConfigMap, env and envFrom (unless optional).

``check(objects)`` returns the problems as lines ("Deployment/x: ..."); an empty list means none found.
"""

from __future__ import annotations

import re
from typing import Iterator

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
IANA_SVC_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
QUANTITY = re.compile(r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
CONFIG_MAP_MAX = 1024 * 1024       # bytes of data and binaryData (decoded) a ConfigMap holds
STANDARD_RESOURCES = ("cpu", "memory", "ephemeral-storage")
GPU_RESOURCES = ("nvidia.com/gpu", "amd.com/gpu", "huawei.com/Ascend910", "huawei.com/Ascend310")
POD_KINDS = {"Deployment": ("spec", "template"), "Job": ("spec", "template"), "StatefulSet": ("spec", "template"),
             "DaemonSet": ("spec", "template"), "Pod": ()}
NAMESPACED_REFS = {"persistentVolumeClaim": ("PersistentVolumeClaim", "claimName"),
                   "secret": ("Secret", "secretName"), "configMap": ("ConfigMap", "name")}


def dns1123_label(name: object) -> bool:
    return isinstance(name, str) and len(name) <= 63 and bool(DNS1123_LABEL.match(name))


def dns1035_label(name: object) -> bool:
    return isinstance(name, str) and len(name) <= 63 and bool(DNS1035_LABEL.match(name))


def dns1123_subdomain(name: object) -> bool:
    return isinstance(name, str) and len(name) <= 253 and bool(DNS1123_SUBDOMAIN.match(name))


def port_name(name: object) -> bool:
    """IANA_SVC_NAME: at most 15 of [-a-z0-9], at least one letter, no leading, trailing or double '-'."""
    return (isinstance(name, str) and 0 < len(name) <= 15 and bool(IANA_SVC_NAME.match(name))
            and "--" not in name and any(c.isalpha() for c in name))


def quantity(value: object) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return value >= 0
    return isinstance(value, str) and bool(QUANTITY.match(value))


def qualified_name(key: object) -> bool:
    """A label key or resource name: ``[prefix/]name``, prefix a DNS-1123 subdomain, name at most 63."""
    if not isinstance(key, str) or key.count("/") > 1:
        return False
    prefix, _, name = key.rpartition("/")
    if "/" in key and not dns1123_subdomain(prefix):
        return False
    return 0 < len(name) <= 63 and bool(QUALIFIED_NAME.match(name))


def label_value(value: object) -> bool:
    return isinstance(value, str) and len(value) <= 63 and bool(LABEL_VALUE.match(value))


def resource_name(key: object) -> bool:
    """cpu, memory, ephemeral-storage, hugepages-*, or an extended resource: a qualified name with a domain."""
    if key in STANDARD_RESOURCES or (isinstance(key, str) and key.startswith("hugepages-")):
        return True
    return (isinstance(key, str) and "/" in key and qualified_name(key) and "=" not in key
            and not key.startswith("kubernetes.io/"))


def config_key(key: object) -> bool:
    """A ConfigMap or Secret key: at most 253 of [-._a-zA-Z0-9], not '.' or '..' nor starting with '..'."""
    return (isinstance(key, str) and len(key) <= 253 and bool(CONFIG_KEY.match(key)) and key != "."
            and not key.startswith(".."))


def _keys(obj: dict) -> set:
    """A ConfigMap's or Secret's keys."""
    return {k for field in ("data", "binaryData", "stringData") for k in (obj.get(field) or {})}


def _ref(obj: dict) -> str:
    return f"{obj.get('kind', '?')}/{(obj.get('metadata') or {}).get('name', '?')}"


def _dig(obj: dict, path: tuple[str, ...]) -> dict | None:
    for key in path:
        obj = (obj or {}).get(key)
    return obj if isinstance(obj, dict) else None


def _labels(where: str, labels: object) -> Iterator[str]:
    if labels is None:
        return
    if not isinstance(labels, dict):
        yield f"{where}: labels are not a mapping"
        return
    for key, value in labels.items():
        if not qualified_name(key):
            yield f"{where}: label key {key!r} is not a qualified name ([prefix/]name, name at most 63)"
        if not label_value(value):
            yield f"{where}: label {key}={value!r} has a value Kubernetes rejects (at most 63 of [-A-Za-z0-9_.])"


def _name(obj: dict) -> Iterator[str]:
    meta = obj.get("metadata") or {}
    name, kind = meta.get("name"), obj.get("kind")
    if kind == "Service":
        if not dns1035_label(name):
            yield f"{_ref(obj)}: a Service name is a DNS-1035 label (a letter first, [-a-z0-9], at most 63)"
    elif kind in POD_KINDS:
        if not dns1123_label(name):
            yield f"{_ref(obj)}: the name is not a DNS-1123 label ([-a-z0-9], at most 63)"
    elif not dns1123_subdomain(name):
        yield f"{_ref(obj)}: the name is not a DNS-1123 subdomain"
    namespace = meta.get("namespace")
    if namespace is not None and not dns1123_label(namespace):
        yield f"{_ref(obj)}: namespace {namespace!r} is not a DNS-1123 label"
    yield from _labels(_ref(obj), meta.get("labels"))
    for key in (meta.get("annotations") or {}):
        if not qualified_name(key):
            yield f"{_ref(obj)}: annotation key {key!r} is not a qualified name"


def _resources(where: str, resources: dict) -> Iterator[str]:
    limits = resources.get("limits") or {}
    requests = resources.get("requests") or {}
    for part, values in (("limits", limits), ("requests", requests)):
        for key, value in values.items():
            if not resource_name(key):
                yield f"{where}: resource name {key!r} in {part} is not cpu, memory or a qualified extended name"
            if not quantity(value):
                yield f"{where}: {part}.{key} {value!r} is not a quantity (8Gi, 500m, 2; not 8g)"
    for key in set(limits) | set(requests):
        if key in STANDARD_RESOURCES or str(key).startswith("hugepages-"):
            continue
        for part, values in (("limits", limits), ("requests", requests)):
            value = values.get(key)
            if value is not None and not (isinstance(value, int) and not isinstance(value, bool) or
                                          isinstance(value, str) and value.isdigit()):
                yield f"{where}: {part}.{key} {value!r} is not a whole number (extended resources are not shared)"
        if key not in limits:
            yield f"{where}: {key} is requested but not in limits (extended resources such as GPUs go in limits)"
        elif key in requests and str(requests[key]) != str(limits[key]):
            yield f"{where}: {key} requests {requests[key]!r} differ from limits {limits[key]!r} (they must be equal)"


def _probe_port(where: str, name: str, probe: dict, ports: set[str]) -> Iterator[str]:
    for handler in ("httpGet", "tcpSocket", "grpc"):
        port = (probe.get(handler) or {}).get("port")
        if isinstance(port, str):
            if not port_name(port):
                yield f"{where}: {name} port {port!r} is not an IANA_SVC_NAME"
            elif port not in ports:
                yield f"{where}: {name} names port {port!r}, which the container does not declare"


def _pod(obj: dict, pod: dict, have: dict[str, dict[str, dict]]) -> Iterator[str]:
    where = _ref(obj)
    volumes = pod.get("volumes") or []
    vnames = [v.get("name") for v in volumes]
    for vname in sorted({n for n in vnames if vnames.count(n) > 1}, key=str):
        yield f"{where}: volume name {vname!r} is declared twice"
    for v in volumes:
        if not dns1123_label(v.get("name")):
            yield f"{where}: volume name {v.get('name')!r} is not a DNS-1123 label"
        size = (v.get("emptyDir") or {}).get("sizeLimit")
        if size is not None and not quantity(size):
            yield f"{where}: volume {v.get('name')} sizeLimit {size!r} is not a quantity"
        sources = [(kind, v[field].get(key), v[field]) for field, (kind, key) in NAMESPACED_REFS.items()
                   if isinstance(v.get(field), dict)]
        sources += [(NAMESPACED_REFS[field][0], p[field].get("name"), p[field])      # projected: by "name"
                    for p in (v.get("projected") or {}).get("sources") or [] for field in ("secret", "configMap")
                    if isinstance(p.get(field), dict)]
        for kind, ref, source in sources:
            if ref not in have.get(kind, {}):
                if not source.get("optional"):
                    yield f"{where}: volume {v.get('name')} refers to {kind} {ref!r}, which the set does not create"
                continue
            for item in source.get("items") or []:
                if item.get("key") not in _keys(have[kind][ref]):
                    yield f"{where}: volume {v.get('name')} wants key {item.get('key')!r} of {kind} {ref}"
    declared = {v.get("name"): v for v in volumes}
    containers = list(pod.get("initContainers") or []) + list(pod.get("containers") or [])
    cnames = [c.get("name") for c in containers]
    for cname in sorted({n for n in cnames if cnames.count(n) > 1}, key=str):
        yield f"{where}: container name {cname!r} repeats"
    for c in containers:
        cw = f"{where} container {c.get('name')}"
        if not dns1123_label(c.get("name")):
            yield f"{cw}: the container name is not a DNS-1123 label"
        ports = c.get("ports") or []
        pnames = [p.get("name") for p in ports if p.get("name") is not None]
        for pname in pnames:
            if not port_name(pname):
                yield f"{cw}: port name {pname!r} is not an IANA_SVC_NAME (at most 15 of [-a-z0-9], a letter)"
        for pname in sorted({n for n in pnames if pnames.count(n) > 1}):
            yield f"{cw}: port name {pname!r} repeats"
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            if c.get(probe):
                yield from _probe_port(cw, probe, c[probe], set(pnames))
        mounts = c.get("volumeMounts") or []
        paths = [m.get("mountPath") for m in mounts]
        for path in sorted({p for p in paths if paths.count(p) > 1}, key=str):
            yield f"{cw}: two volumeMounts share the mountPath {path}"
        for m in mounts:
            volume = declared.get(m.get("name"))
            if volume is None:
                yield f"{cw}: volumeMount {m.get('name')!r} names no volume of the pod"
                continue
            sub = m.get("subPath")
            for field, (kind, key) in NAMESPACED_REFS.items():
                source = volume.get(field)
                if kind == "PersistentVolumeClaim" or not sub or not source or source.get("items") \
                        or source.get(key) not in have.get(kind, {}):
                    continue
                if sub not in _keys(have[kind][source[key]]):
                    yield f"{cw}: mount {m.get('mountPath')} takes key {sub!r}, which {kind} {source[key]} lacks"
        yield from _env_refs(cw, c, have)
        yield from _resources(cw, c.get("resources") or {})


def _env_refs(where: str, c: dict, have: dict[str, dict[str, dict]]) -> Iterator[str]:
    """The ConfigMaps and Secrets (and keys) a container's env and envFrom read, unless optional."""
    refs = [(kind, ref, None) for e in c.get("envFrom") or []
            for kind, ref in (("ConfigMap", e.get("configMapRef")), ("Secret", e.get("secretRef"))) if ref]
    refs += [(kind, ref, e.get("name")) for e in c.get("env") or []
             for kind, ref in (("ConfigMap", (e.get("valueFrom") or {}).get("configMapKeyRef")),
                               ("Secret", (e.get("valueFrom") or {}).get("secretKeyRef"))) if ref]
    for kind, ref, variable in refs:
        if ref.get("optional"):
            continue
        obj = have.get(kind, {}).get(ref.get("name"))
        what = f"env {variable}" if variable else "envFrom"
        if obj is None:
            yield f"{where}: {what} refers to {kind} {ref.get('name')!r}, which the set does not create"
        elif variable and ref.get("key") not in _keys(obj):
            yield f"{where}: {what} wants key {ref.get('key')!r}, which {kind} {ref.get('name')} lacks"


def _selects(selector: dict, labels: dict) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def check(objects: list[dict]) -> list[str]:
    """The problems of a manifest set, one line each; [] when none is found."""
    problems: list[str] = []
    have: dict[str, dict[str, dict]] = {}
    for obj in objects:
        have.setdefault(obj.get("kind", ""), {})[(obj.get("metadata") or {}).get("name")] = obj
    seen: set[tuple] = set()
    for obj in objects:
        key = (obj.get("kind"), (obj.get("metadata") or {}).get("namespace"), (obj.get("metadata") or {}).get("name"))
        if key in seen:
            problems.append(f"{_ref(obj)}: two objects of this kind share the name")
        seen.add(key)
    pods: list[tuple[dict, dict, dict]] = []          # (object, template labels, pod spec)
    for obj in objects:
        problems += _name(obj)
        kind = obj.get("kind")
        if kind in POD_KINDS:
            template = _dig(obj, POD_KINDS[kind]) if POD_KINDS[kind] else obj
            if template is None:
                problems.append(f"{_ref(obj)}: no pod template")
                continue
            labels = (template.get("metadata") or {}).get("labels") or {}
            problems += _labels(f"{_ref(obj)} template", labels)
            selector = _dig(obj, ("spec", "selector"))
            match = (selector or {}).get("matchLabels")
            if match is not None:
                problems += _labels(f"{_ref(obj)} selector", match)
                if not all(labels.get(k) == v for k, v in match.items()):
                    problems.append(f"{_ref(obj)}: selector.matchLabels {match} are not all template labels")
            elif kind in ("Deployment", "StatefulSet", "DaemonSet"):
                problems.append(f"{_ref(obj)}: no selector.matchLabels")
            pods.append((obj, labels, template.get("spec") or {}))
            problems += _pod(obj, template.get("spec") or {}, have)
        elif kind == "PersistentVolumeClaim":
            storage = (((obj.get("spec") or {}).get("resources") or {}).get("requests") or {}).get("storage")
            if not quantity(storage):
                problems.append(f"{_ref(obj)}: storage request {storage!r} is not a quantity")
        elif kind in ("ConfigMap", "Secret"):
            fields = ("data", "binaryData") if kind == "ConfigMap" else ("data", "stringData")
            keys = [k for field in fields for k in (obj.get(field) or {})]
            for k in keys:
                if not config_key(k):
                    problems.append(f"{_ref(obj)}: key {k!r} is not [-._a-zA-Z0-9]+ (nor '.', '..', '..x')")
            for k in sorted({k for k in keys if keys.count(k) > 1}, key=str):
                problems.append(f"{_ref(obj)}: key {k!r} is in {' and '.join(fields)} both")
            if kind == "ConfigMap":
                size = sum(len(v.encode()) if isinstance(v, str) else 0 for v in (obj.get("data") or {}).values())
                size += sum(len(v) * 3 // 4 - v.count("=") if isinstance(v, str) else 0
                            for v in (obj.get("binaryData") or {}).values())
                if size > CONFIG_MAP_MAX:
                    problems.append(f"{_ref(obj)}: {size} bytes of data, over the 1 MiB a ConfigMap holds")
    for obj in objects:
        if obj.get("kind") != "Service":
            continue
        spec = obj.get("spec") or {}
        selector = spec.get("selector") or {}
        problems += _labels(f"{_ref(obj)} selector", selector)
        chosen = [(o, pod) for o, labels, pod in pods if _selects(selector, labels)]
        if not chosen:
            problems.append(f"{_ref(obj)}: the selector {selector} matches no pod template in the set")
        names = [p.get("name") for p in spec.get("ports") or []]
        for name in names:
            if name is not None and not dns1123_label(name):
                problems.append(f"{_ref(obj)}: Service port name {name!r} is not a DNS-1123 label")
        if len(names) > 1 and (None in names or len(set(names)) != len(names)):
            problems.append(f"{_ref(obj)}: several ports need unique names")
        for port in spec.get("ports") or []:
            target = port.get("targetPort")
            if not isinstance(target, str):
                continue
            if not port_name(target):
                problems.append(f"{_ref(obj)}: targetPort {target!r} is not an IANA_SVC_NAME")
            for o, pod in chosen:
                declared = {p.get("name") for c in pod.get("containers") or [] for p in c.get("ports") or []}
                if target not in declared:
                    problems.append(f"{_ref(obj)}: targetPort {target!r} is no container port of {_ref(o)}")
    return problems


def policy(objects: list[dict]) -> list[str]:
    """Warnings, not errors (scale-out §3.3): what Pod Security 'restricted' refuses (host namespaces and paths,
    privilege, root, missing seccomp or capability drop), a GPU server without a startupProbe, and a GPU
    Deployment that rolls out with a surge (a second GPU pod that waits Pending for the first's GPU)."""
    out: list[str] = []
    for obj in objects:
        kind = obj.get("kind")
        if kind not in POD_KINDS:
            continue
        template = _dig(obj, POD_KINDS[kind]) if POD_KINDS[kind] else obj
        pod = (template or {}).get("spec") or {}
        where = _ref(obj)
        for field in ("hostNetwork", "hostIPC", "hostPID"):
            if pod.get(field):
                out.append(f"{where}: {field} (Pod Security 'baseline' refuses it)")
        for v in pod.get("volumes") or []:
            if "hostPath" in v:
                out.append(f"{where}: hostPath {v['hostPath'].get('path')} (Pod Security 'baseline' refuses it)")
        pod_ctx = pod.get("securityContext") or {}
        gpu = False
        for c in pod.get("containers") or []:
            ctx = c.get("securityContext") or {}
            cw = f"{where} container {c.get('name')}"
            if ctx.get("privileged"):
                out.append(f"{cw}: privileged")
            if ctx.get("allowPrivilegeEscalation") is not False:
                out.append(f"{cw}: allowPrivilegeEscalation is not false ('restricted' refuses it)")
            if "ALL" not in ((ctx.get("capabilities") or {}).get("drop") or []):
                out.append(f"{cw}: capabilities are not all dropped ('restricted' refuses it)")
            if not (ctx.get("runAsNonRoot") or pod_ctx.get("runAsNonRoot")):
                out.append(f"{cw}: runAsNonRoot is not set ('restricted' refuses it)")
            if not ((ctx.get("seccompProfile") or pod_ctx.get("seccompProfile") or {}).get("type")):
                out.append(f"{cw}: no seccompProfile ('restricted' wants RuntimeDefault)")
            limits = (c.get("resources") or {}).get("limits") or {}
            if any(k in GPU_RESOURCES or "gpu" in str(k).lower() for k in limits):
                gpu = True
                if kind != "Job" and not c.get("startupProbe"):
                    out.append(f"{cw}: a GPU server without a startupProbe (liveness kills it while it loads)")
        strategy = (obj.get("spec") or {}).get("strategy") or {}
        if kind == "Deployment" and gpu and strategy.get("type") != "Recreate" and \
                str((strategy.get("rollingUpdate") or {}).get("maxSurge", "25%")) not in ("0", "0%"):
            out.append(f"{where}: a GPU Deployment rolling out with a surge (use Recreate or maxSurge 0)")
    return out
