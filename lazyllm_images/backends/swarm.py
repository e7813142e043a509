"""Run a rendered stack file (``launch.swarm``) on a Docker Swarm: deploy and wait, remove, list.

Through the ``docker`` CLI (``docker stack`` exists only there), on the engine ``DOCKER_HOST`` names, which must be
a Swarm manager. A task with a healthcheck stays ``starting`` until it passes, so "every service has a running
task" means healthy. Ports are host-mode (``endpoint_mode: dnsrr``, no routing mesh): a URL is the address of the
node running the task plus the port it published there.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

from ..errors import LaunchError

NOT_MANAGER_HINT = ("run 'docker swarm init' on this engine (or 'docker swarm join' it to one), or point "
                    "DOCKER_HOST at a Swarm manager")
_NOISE = ("Since --detach=false", "In a future release", "Ignoring unsupported options", "Ignoring deprecated")
_DONE = ("running",)
_FINAL_BAD = ("failed", "rejected", "orphaned")


def up(path: str, doc: dict, timeout: float, keep: bool = False) -> dict[str, str]:
    """``docker stack deploy`` the file at ``path`` (``doc``: its parsed content) and wait until every service has
    a running (healthy) task, jobs a completed one; returns the ``x-lazyllm`` URLs (key -> http://NODE:PORT/PATH).
    A stack that does not get there (or a Ctrl-C) is removed again, unless ``keep``."""
    _require_manager()
    name = stack_name(doc)
    folder = os.path.dirname(os.path.abspath(path)) or "."
    result = _docker("stack", "deploy", "--resolve-image", "never", "-c", os.path.abspath(path), name,
                     cwd=folder, timeout=300)
    ignored = [ln.strip() for ln in (result.stdout + result.stderr).splitlines()
               if ln.startswith("Ignoring unsupported options")]
    for line in ignored:
        sys.stderr.write(f"warning: docker stack deploy: {line}\n")
    if result.returncode != 0:
        raise LaunchError(f"docker stack deploy refused {path}: {_one_line(result.stderr or result.stdout)}",
                          "fix the stack file (or write it again with lazyllm), then run lazyllm stack up again")
    try:
        tasks = _wait(name, doc, timeout)
    except BaseException:
        if not keep:
            down(path, doc)
        raise
    return _urls(doc, tasks)


def down(path: str, doc: dict, timeout: float = 120) -> None:
    """``docker stack rm`` and wait until its tasks and networks are gone; then its secrets and configs (every
    version, by label) and its volumes on this node."""
    _require_manager()
    name = stack_name(doc)
    result = _docker("stack", "rm", name, timeout=120)
    if result.returncode != 0 and "Nothing found in stack" not in result.stderr + result.stdout:
        raise LaunchError(f"docker stack rm {name} failed: {_one_line(result.stderr or result.stdout)}",
                          "run it again; 'docker stack ps " + name + "' shows what is left")
    deadline = time.monotonic() + timeout
    namespace = f"label=com.docker.stack.namespace={name}"
    while True:
        # tasks on a node that is down stay listed until it returns or is removed: not waited for
        lost = _down_nodes("{{.Hostname}}")
        rows = _lines(_docker("stack", "ps", name, "--format", "{{.Node}}"))
        tasks = [n for n in rows if n not in lost]
        networks = _lines(_docker("network", "ls", "-q", "--filter", namespace))
        if not tasks and not networks:
            if rows:
                sys.stderr.write(f"warning: {len(rows)} task(s) of {name} stay listed on unreachable node(s) "
                                 f"{', '.join(sorted(set(rows)))} until they return or 'docker node rm' them\n")
            break
        for net in networks:
            _docker("network", "rm", net)          # refused while endpoints remain: tried again
        if time.monotonic() > deadline:
            raise LaunchError(f"stack {name} is still there after {timeout:.0f} s ({len(tasks)} task(s), "
                              f"{len(networks)} network(s))",
                              f"see 'docker stack ps {name}' and 'docker network ls'; run lazyllm stack down again")
        time.sleep(1)
    service_label = f"label=org.lazyllm.service={name}"
    for kind in ("secret", "config"):
        ids = _lines(_docker(kind, "ls", "-q", "--filter", service_label, "--filter", "label=org.lazyllm.target=swarm"))
        ids += _lines(_docker(kind, "ls", "-q", "--filter", namespace))
        if ids:
            _docker(kind, "rm", *sorted(set(ids)))
    vols = _lines(_docker("volume", "ls", "-q", "--filter", namespace))
    if vols:
        _docker("volume", "rm", *vols)


def ps(path: str, doc: dict) -> list[dict]:
    """The stack's current tasks: service (unit name), node (hostname), state, ports, error."""
    _require_manager()
    name = stack_name(doc)
    result = _docker("stack", "ps", name, "--no-trunc", "--filter", "desired-state=running",
                     "--format", "{{json .}}")
    if result.returncode != 0:
        if "Nothing found in stack" in result.stderr + result.stdout:
            return []
        raise LaunchError(f"docker stack ps {name} failed: {_one_line(result.stderr)}", None)
    out = []
    for line in _lines(result):
        row = json.loads(line)
        task = row.get("Name", "")
        unit = task.removeprefix(f"{name}_").rsplit(".", 1)[0]
        out.append({"service": unit, "node": row.get("Node", ""), "state": row.get("CurrentState", ""),
                    "ports": row.get("Ports", ""), "error": row.get("Error", "").strip('"')})
    return out


def stack_name(doc: dict) -> str:
    meta = doc.get("x-lazyllm") or {}
    if meta.get("target") != "swarm" or not meta.get("service"):
        raise LaunchError("this stack file was not written for Swarm by lazyllm (no x-lazyllm: {target: swarm})",
                          "write it with --target swarm")
    return meta["service"]


# ------------------------------------------------------------------ waiting

def _wait(name: str, doc: dict, timeout: float) -> dict[str, dict]:
    """Per service key, its running task (``docker inspect`` of the task), once all are running."""
    keys = list(doc.get("services") or {})
    jobs = {k for k, svc in doc["services"].items()
            if ((svc.get("deploy") or {}).get("restart_policy") or {}).get("condition") == "none"}
    deadline = time.monotonic() + timeout
    last: dict[str, str] = {}
    while True:
        tasks = _tasks(name)
        ready: dict[str, dict] = {}
        for key in keys:
            mine = [t for t in tasks if t["_service"] == key]
            good = [t for t in mine if t["Status"]["State"] in (("complete",) if key in jobs else _DONE)]
            if key in jobs:
                failed = [t for t in mine if t["Status"]["State"] in _FINAL_BAD]
                if failed and not good:
                    raise LaunchError(f"{key} (a job) failed on Swarm: {_why(failed[0])}",
                                      f"see 'docker service logs {name}_{key}'")
            if good:
                ready[key] = good[0]
            elif mine:
                last[key] = _why(max(mine, key=lambda t: t.get("UpdatedAt", "")))
            else:
                last[key] = "no task yet"
        if len(ready) == len(keys):
            return ready
        if time.monotonic() > deadline:
            waiting = [k for k in keys if k not in ready]
            reasons = "; ".join(f"{k}: {last.get(k, 'no task')}" for k in waiting)
            raise LaunchError(f"stack {name} not ready after {timeout:.0f} s: {reasons}",
                              _hint(name, " ".join(last.get(k, "") for k in waiting)))
        time.sleep(1)


def _tasks(name: str) -> list[dict]:
    """Every task of the stack that Swarm wants running (or, for jobs, complete), inspected."""
    ids = _lines(_docker("stack", "ps", name, "-q", "--no-trunc"))
    if not ids:
        return []
    result = _docker("inspect", "--type", "task", *ids)
    if result.returncode != 0:        # a task removed between the two calls: next round
        return []
    # a node that stopped answering still lists its tasks as running until Swarm reschedules them: not those
    down = _down_nodes("{{.ID}}")
    services = {}
    for line in _lines(_docker("stack", "services", name, "--format", "{{.ID}} {{.Name}}")):
        sid, _, sname = line.partition(" ")
        services[sid] = sname.removeprefix(f"{name}_")
    out = []
    for task in json.loads(result.stdout or "[]"):
        if task.get("DesiredState") not in ("running", "complete") or \
                any(task.get("NodeID", "").startswith(n) for n in down):
            continue
        task["_service"] = next((n for sid, n in services.items() if task["ServiceID"].startswith(sid)), "")
        out.append(task)
    return out


def _down_nodes(field: str) -> set[str]:
    """The nodes not Ready (``field``: {{.ID}} or {{.Hostname}})."""
    rows = _lines(_docker("node", "ls", "--format", field + " {{.Status}}"))
    return {ln.rsplit(" ", 1)[0] for ln in rows if not ln.endswith(" Ready")}


def _why(task: dict) -> str:
    status = task.get("Status") or {}
    text = status.get("Err") or status.get("Message") or ""
    return f"{status.get('State', '?')} ({text})" if text else status.get("State", "?")


def _hint(name: str, reasons: str) -> str:
    if "insufficient resources" in reasons:
        return ("no node has the free GPUs (generic resources) or memory it asks for: free some "
                "('docker service ls'), add nodes advertising node-generic-resources, or ask for fewer")
    if "host-mode port" in reasons or "port" in reasons and "in use" in reasons:
        return "a published port is taken on every eligible node: choose another --port, or free it"
    if "No such image" in reasons or "pull access denied" in reasons or "manifest unknown" in reasons:
        return "push the images to a registry every node reaches (--registry HOST:PORT/NS), then deploy again"
    return f"see 'docker stack ps --no-trunc {name}' and 'docker service logs {name}_SERVICE'"


# ------------------------------------------------------------------ URLs

def _urls(doc: dict, tasks: dict[str, dict]) -> dict[str, str]:
    out: dict[str, str] = {}
    addrs: dict[str, str] = {}
    for key, url in ((doc.get("x-lazyllm") or {}).get("urls") or {}).items():
        task = tasks.get(url["unit"])
        if task is None:
            continue
        ports = ((task.get("Status") or {}).get("PortStatus") or {}).get("Ports") or []
        published = next((p.get("PublishedPort") for p in ports if p.get("TargetPort") == url["port"]), None)
        if not published:
            continue
        node = task.get("NodeID", "")
        if node not in addrs:
            addrs[node] = _node_addr(node)
        out[key] = f"http://{addrs[node]}:{published}{url.get('path', '')}"
    return out


def _node_addr(node_id: str) -> str:
    result = _docker("node", "inspect", node_id, "--format", "{{.Status.Addr}} {{if .ManagerStatus}}"
                     "{{.ManagerStatus.Addr}}{{end}}")
    addr, _, manager = result.stdout.strip().partition(" ")
    if addr in ("", "0.0.0.0") and manager:            # a manager may report 0.0.0.0 as its own address
        addr = manager.rsplit(":", 1)[0]
    return addr or "127.0.0.1"


# ------------------------------------------------------------------ the CLI

def _cli() -> str:
    found = shutil.which("docker")
    if not found:
        raise LaunchError("no docker CLI on PATH (the Swarm target runs 'docker stack')",
                          "install the docker CLI (docker-ce-cli or docker.io)")
    return found


def _docker(*args: str, cwd: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    try:
        return subprocess.run([_cli(), *args], capture_output=True, text=True, cwd=cwd, timeout=timeout, check=False,
                              env=os.environ.copy())
    except subprocess.TimeoutExpired as exc:
        raise LaunchError(f"docker {' '.join(args[:3])} did not answer within {timeout:.0f} s",
                          "check that the Swarm manager answers (docker node ls)") from exc


def _require_manager() -> None:
    result = _docker("info", "--format", "{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}", timeout=20)
    where = os.environ.get("DOCKER_HOST") or "the default socket"
    if result.returncode != 0:
        raise LaunchError(f"no Docker engine answers at {where}: {_one_line(result.stderr)}",
                          "start the engine, or set DOCKER_HOST to a Swarm manager")
    state, _, control = result.stdout.strip().partition(" ")
    if state != "active" or control != "true":
        what = "a Swarm worker, not a manager" if state == "active" else f"not in a Swarm ({state or 'inactive'})"
        raise LaunchError(f"this engine ({where}) is not a Swarm manager: it is {what}", NOT_MANAGER_HINT)


def _lines(result: subprocess.CompletedProcess) -> list[str]:
    return [ln for ln in result.stdout.splitlines() if ln.strip()] if result.returncode == 0 else []


def _one_line(text: str) -> str:
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip() and not ln.startswith(_NOISE)]
    return " / ".join(lines[-2:]) if lines else "no output"
