"""After a layer builds: its smoke tests (no network, no privileges), its pip freeze, and the check that no
protected package changed. The results become labels, so the same image is never tested again."""

from __future__ import annotations

import json
from dataclasses import dataclass

from packaging.utils import canonicalize_name

from .. import LABEL_PREFIX, engine
from ..errors import BuildError
from ..plan import PlannedLayer

# Runs inside the freshly built image with its own Python: reads the freeze files, runs the checks.
PROBE = r"""
import importlib, json, os, subprocess, sys
spec = json.loads(sys.argv[1])
def read(name):
    path = f"/opt/lazyllm/freeze/{name}.txt"
    return open(path).read() if name and os.path.exists(path) else ""
out = {"freeze": read(spec["layer"]), "parent_freeze": read(spec.get("parent")), "failures": []}
for module in spec.get("imports", []):
    try:
        importlib.import_module(module)
    except BaseException as exc:
        out["failures"].append(f"import {module}: {type(exc).__name__}: {exc}"[:500])
for argv in spec.get("commands", []):
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=300)
        if r.returncode:
            out["failures"].append(f"{' '.join(argv)}: exit {r.returncode}: {(r.stderr or r.stdout)[-300:]}")
    except Exception as exc:
        out["failures"].append(f"{' '.join(argv)}: {exc}")
for snippet in spec.get("gpu", []) if spec.get("gpu_present") else []:
    try:
        exec(snippet, {})
    except BaseException as exc:
        out["failures"].append(f"gpu check {snippet[:60]!r}: {type(exc).__name__}: {exc}"[:500])
print("LAZYLLM-PROBE " + json.dumps(out))
"""


@dataclass
class Verified:
    freeze: dict[str, str]          # package -> version, the whole environment after this layer
    delta: list[str]                # name==version added or changed by this layer
    gpu_checked: bool


def parse_freeze(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if "==" in line and not line.startswith("#"):
            name, _, version = line.partition("==")
            out[canonicalize_name(name)] = version.strip()
        elif " @ " in line:
            name, _, url = line.partition(" @ ")
            out[canonicalize_name(name)] = f"@ {url.strip()}"
    return out


def _run_probe(ref: str, spec: dict, gpu_present: bool) -> dict:
    import docker.errors
    from docker.types import DeviceRequest
    kwargs = dict(network_mode="none", cap_drop=["ALL"], security_opt=["no-new-privileges"], remove=True,
                  stdout=True, stderr=True, labels=engine.runtime_labels("probe"),
                  environment={"PYTHONDONTWRITEBYTECODE": "1"})
    if gpu_present and spec.get("gpu"):
        kwargs["device_requests"] = [DeviceRequest(count=-1, capabilities=[["gpu"]])]
    try:
        out = engine.client().containers.run(ref, ["python", "-c", PROBE, json.dumps(spec)], **kwargs)
    except docker.errors.ContainerError as exc:
        text = (exc.stderr or b"").decode(errors="replace")[-800:]
        raise BuildError(f"the smoke test of {ref} could not run: {text.strip().splitlines()[-1] if text else exc}",
                         "the image's Python is broken; see 'docker run --rm " + ref + " python -V'") from exc
    line = next((x for x in out.decode(errors="replace").splitlines() if x.startswith("LAZYLLM-PROBE ")), None)
    if line is None:
        raise BuildError(f"the smoke test of {ref} printed no result", "run it by hand to see why")
    return json.loads(line[len("LAZYLLM-PROBE "):])


def verify(layer: PlannedLayer, parent: PlannedLayer | None, gpu_present: bool) -> Verified:
    spec = {"layer": layer.name, "parent": parent.name if parent else None, **layer.smoke,
            "gpu_present": gpu_present}
    result = _run_probe(layer.ref, spec, gpu_present)
    if result["failures"]:
        raise BuildError(f"layer {layer.name}: smoke test failed: {result['failures'][0]}",
                         f"{len(result['failures'])} check(s) failed; the image {layer.ref} was removed")
    freeze, before = parse_freeze(result["freeze"]), parse_freeze(result["parent_freeze"])
    changed = [(p, before[p], freeze.get(p, "(removed)")) for p in layer.protect
               if p in before and freeze.get(p) != before[p]]
    if changed:
        pkg, old, new = changed[0]
        raise BuildError(f"layer {layer.name} changed protected package {pkg} ({old} -> {new})",
                         "a later layer must not replace it: pin a compatible version in that layer's recipe")
    delta = sorted(f"{k}=={v}" if not v.startswith("@") else f"{k} {v}"
                   for k, v in freeze.items() if before.get(k) != v)
    return Verified(freeze, delta, bool(gpu_present and layer.smoke.get("gpu")))


def verified_labels(layer: PlannedLayer, v: Verified) -> dict[str, str]:
    p = LABEL_PREFIX
    return {f"{p}.lock.{layer.name}": ";".join(v.delta),
            f"{p}.verified.{layer.name}": "smoke-passed" + ("+gpu" if v.gpu_checked else ""),
            f"{p}.parent": layer.parent, f"{p}.tag": layer.tag}


def is_verified(labels: dict[str, str] | None, layer: PlannedLayer) -> bool:
    return bool(labels) and f"{LABEL_PREFIX}.verified.{layer.name}" in labels and \
        labels.get(f"{LABEL_PREFIX}.tag") == layer.tag
