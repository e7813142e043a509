"""What each ``--target`` needs on this host: a compose client (compose), a Swarm this engine manages (swarm),
and its nodes' GPU generic resources; a kubectl context (k8s: rendering needs none, applying does)."""

from __future__ import annotations

import shutil
import subprocess

from . import OK, WARN, Check


def _run(argv: list[str]) -> str | None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def compose_client() -> str | None:
    from ..backends.compose import found_client
    found = found_client()
    if found is None:
        return None
    argv, version = found
    return f"compose {'v2' if len(argv) == 2 else 'v1'} {version} ({' '.join(argv)})"


def swarm_state(info: dict) -> tuple[str, dict]:
    swarm = info.get("Swarm") or {}
    state = swarm.get("LocalNodeState") or "inactive"
    data = {"state": state, "manager": bool(swarm.get("ControlAvailable")), "nodes": swarm.get("Nodes")}
    if state != "active":
        return f"swarm: {state} ('docker swarm init' makes this engine a manager)", data
    if not data["manager"]:
        return "swarm: a worker (deploy stacks from a manager)", data
    gpus = swarm_gpus()
    data["generic_resources"] = gpus
    said = ", ".join(f"{n}: {', '.join(r)}" for n, r in gpus.items()) or "no node advertises GPUs"
    return f"swarm: manager of {data['nodes']} node(s) ({said})", data


def swarm_gpus() -> dict[str, list[str]]:
    """node -> its advertised generic resources (``NVIDIA-GPU=GPU-...``)."""
    from .. import engine
    try:
        nodes = engine.client().nodes.list()
    except Exception:  # not a manager after all, or the engine went away: nothing to list
        return {}
    out = {}
    for node in nodes:
        resources = (node.attrs.get("Description", {}).get("Resources", {}) or {}).get("GenericResources") or []
        named = [f"{r['NamedResourceSpec']['Kind']}={r['NamedResourceSpec']['Value']}"
                 for r in resources if "NamedResourceSpec" in r]
        named += [f"{r['DiscreteResourceSpec']['Kind']}={r['DiscreteResourceSpec']['Value']}"
                  for r in resources if "DiscreteResourceSpec" in r]
        if named:
            out[node.attrs.get("Description", {}).get("Hostname", node.id[:12])] = named
    return out


def check(ctx: dict) -> Check:
    compose = compose_client()
    swarm, swarm_data = swarm_state(ctx.get("engine_info") or {})
    context = _run(["kubectl", "config", "current-context"]) if shutil.which("kubectl") else None
    k8s = f"k8s: kubectl context {context}" if context else "k8s: no kubectl context (render with -o, apply elsewhere)"
    data = {"compose": compose, "swarm": swarm_data, "kubectl_context": context}
    summary = "; ".join([compose or "compose: no client", swarm, k8s])
    if compose is None:
        return Check("targets", WARN, summary, "install the compose v2 plugin or docker-compose for --target compose",
                     data=data)
    return Check("targets", OK, summary, data=data)
