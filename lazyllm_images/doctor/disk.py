"""Free disk under the engine's data root (images and build cache live there)."""

import os

from . import FAIL, OK, WARN, Check

FAIL_GIB, WARN_GIB = 5, 30


def check(ctx: dict) -> Check:
    info = ctx.get("engine_info") or {}
    root = info.get("DockerRootDir") or "/var/lib/docker"
    path = root
    while path and not os.path.exists(path):
        path = os.path.dirname(path)
    try:
        st = os.statvfs(path or "/")
    except OSError as exc:
        return Check("disk", WARN, f"cannot read free space of {root}: {exc}",
                     "check it with 'df -h' on the engine's host")
    free_gib = st.f_bavail * st.f_frsize / 2**30
    data = {"path": root, "free_gib": round(free_gib, 1)}
    summary = f"{free_gib:.1f} GiB free under {root}"
    if free_gib < FAIL_GIB:
        return Check("disk", FAIL, summary, "free space: 'lazyllm prune', 'docker builder prune', or move the "
                     "engine's data-root to a larger disk", data=data, blocking=True)
    if free_gib < WARN_GIB:
        return Check("disk", WARN, summary, "CUDA stacks take 10-20 GiB each; 'lazyllm prune' frees unused layers",
                     data=data)
    return Check("disk", OK, summary, data=data, blocking=True)
