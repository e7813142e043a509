"""What the image's layers declared that launching needs (``org.lazyllm.launch.<layer>`` labels, from the recipes'
``launch:``), merged and applied to a LaunchSpec: environment, extra NVIDIA driver capabilities, shared memory,
writable scratch folders."""

from __future__ import annotations

import json
from dataclasses import replace

from .. import LABEL_PREFIX
from .engine_api import parse_bytes
from .spec import LaunchSpec, MountSpec

PREFIX = f"{LABEL_PREFIX}.launch."


def from_labels(labels: dict[str, str]) -> list[dict]:
    out = []
    for key in sorted(labels):
        if key.startswith(PREFIX):
            try:
                out.append(json.loads(labels[key]))
            except ValueError:
                continue
    return out


def from_plan(plan) -> list[dict]:
    """The same declarations, read from a plan before its image exists (dry runs)."""
    return [layer.launch for layer in plan.layers if layer.launch]


def apply(spec: LaunchSpec, needs: list[dict]) -> LaunchSpec:
    env = dict(spec.env)
    mounts = list(spec.mounts)
    gpus, shm = spec.gpus, spec.shm_size
    targets = {m.target for m in mounts}
    for need in needs:
        for key, value in (need.get("env") or {}).items():
            env.setdefault(key, value)
        caps = need.get("gpu_capabilities") or []
        if caps and gpus.wants_gpu and gpus.vendor == "nvidia":
            gpus = gpus.with_capabilities(*caps)
        wanted = need.get("shm_size")
        if wanted and not spec.ipc_host and (shm is None or parse_bytes(wanted) > parse_bytes(shm)):
            shm = wanted
        for m in need.get("mounts") or []:
            if m.get("kind") == "tmpfs" and m["target"] not in targets:
                mounts.append(MountSpec("tmpfs", m["target"], purpose="scratch",
                                        options="rw,nosuid,nodev,mode=1777"))
                targets.add(m["target"])
    return replace(spec, env=env, mounts=tuple(mounts), gpus=gpus, shm_size=shm)
