"""The services this tool launched on the local engine, read back from container labels: ``ps``, ``logs``,
``stop``.

A service is one or more containers (a model server and its chat page, say) sharing ``org.lazyllm.service``.
Only containers carrying the tool's labels are ever listed, followed or removed.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime, timezone

from .. import LABEL_PREFIX, engine
from ..errors import UsageError

SERVICE = f"{LABEL_PREFIX}.service"


def _containers(show_all: bool = True, service: str | None = None):
    filters = engine.managed_filter("service", **({"service": service} if service else {}))
    return engine.client().containers.list(all=show_all, filters=filters)


def _uptime(started: str | None) -> str:
    if not started or started.startswith("0001"):
        return ""
    try:
        start = datetime.fromisoformat(started[:26].rstrip("Z") + "+00:00")
    except ValueError:
        return ""
    secs = int((datetime.now(timezone.utc) - start).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if secs >= size:
            return f"{secs // size}{unit}"
    return f"{secs}s"


def list_services(show_all: bool = False) -> list[dict]:
    rows: dict[str, dict] = {}
    for c in _containers(show_all=show_all):
        lab = c.labels
        name = lab.get(SERVICE, c.name)
        row = rows.setdefault(name, {"name": name, "containers": [], "roles": [], "framework": "", "model": "",
                                     "urls": {}, "gpus": "", "status": [], "uptime": ""})
        role = lab.get(f"{LABEL_PREFIX}.role", "")
        row["containers"].append(c.name)
        row["roles"].append(role)
        row["framework"] = row["framework"] or lab.get(f"{LABEL_PREFIX}.framework", "")
        row["model"] = row["model"] or lab.get(f"{LABEL_PREFIX}.model", "")
        row["gpus"] = row["gpus"] or lab.get(f"{LABEL_PREFIX}.gpus", "")
        try:
            row["urls"].update(json.loads(lab.get(f"{LABEL_PREFIX}.urls", "{}")))
        except ValueError:
            pass
        state = c.attrs.get("State", {})
        health = (state.get("Health") or {}).get("Status")
        row["status"].append(f"{role or c.name}:{state.get('Status', c.status)}" + (f" ({health})" if health else ""))
        row["uptime"] = row["uptime"] or _uptime(state.get("StartedAt"))
    return sorted(rows.values(), key=lambda r: r["name"])


def print_table(rows: list[dict]) -> None:
    if not rows:
        print("no services (launch one with 'lazyllm deploy' or 'lazyllm run')")
        return
    from rich.console import Console
    from rich.table import Table
    table = Table(box=None, header_style="bold")
    for col in ("name", "framework", "model", "urls", "gpus", "status", "uptime"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(r["name"], r["framework"], r["model"], "\n".join(f"{k}: {v}" for k, v in r["urls"].items()),
                      r["gpus"] or "-", "\n".join(r["status"]), r["uptime"])
    console = Console()
    if not console.is_terminal:                 # pipes and CI logs: do not squeeze URLs into 80 columns
        console = Console(width=200)
    console.print(table)


def _find(name: str):
    found = _containers(service=name)
    if not found:
        import docker.errors
        try:
            c = engine.client().containers.get(name)
        except docker.errors.NotFound:
            c = None
        # Containers inherit their image's labels, so 'managed' alone would match any container run from one of
        # our images by hand; services are the containers labelled kind=service at launch.
        if c is not None and c.labels.get(f"{LABEL_PREFIX}.kind") == "service":
            return [c]
        known = sorted({r["name"] for r in list_services(show_all=True)})
        raise UsageError(f"no service named {name!r}",
                         "'lazyllm ps' lists them" + (f" (known: {', '.join(known)})" if known else ""))
    return found


def show_logs(name: str, follow: bool = False, tail: str = "all") -> None:
    containers = _find(name)
    main = next((c for c in containers if c.labels.get(f"{LABEL_PREFIX}.primary") == "true"), containers[0])
    others = [c for c in containers if c.id != main.id]
    for c in others if not follow else []:
        sys.stdout.write(f"--- {c.name}\n")
        sys.stdout.write(c.logs(tail=_tail(tail)).decode(errors="replace"))
    if others and not follow:
        sys.stdout.write(f"--- {main.name}\n")
    stream = main.logs(stream=follow, follow=follow, tail=_tail(tail))
    if follow:
        try:
            for chunk in stream:
                sys.stdout.write(chunk.decode(errors="replace"))
                sys.stdout.flush()
        except KeyboardInterrupt:
            return
    else:
        sys.stdout.write(stream.decode(errors="replace"))


def _tail(tail: str):
    return "all" if tail == "all" else int(tail)


def stop(names, stop_all: bool = False, timeout: int = 3, echo=print) -> list[str]:
    targets = _containers(show_all=True) if stop_all else [c for n in names for c in _find(n)]
    removed = []
    for c in targets:
        try:
            if c.status == "running":
                c.stop(timeout=timeout)
            c.remove(force=True, v=False)
            removed.append(c.name)
        except Exception as exc:  # already gone (auto-remove) is fine
            if "No such container" not in str(exc) and "is already in progress" not in str(exc):
                raise
    services = {c.labels.get(SERVICE, c.name) for c in targets}
    _remove_networks(services)
    from .docker import remove_files
    for s in services:
        remove_files(s)
    for s in sorted(services):
        echo(f"stopped {s}")
    if not targets:
        echo("no services to stop")
    return removed


def _remove_networks(services: set[str]) -> None:
    client = engine.client()
    for s in services:
        for net in client.networks.list(filters=engine.managed_filter("network", service=s)):
            for _ in range(10):
                try:
                    net.remove()
                    break
                except Exception:
                    time.sleep(0.3)


def running_model(model: str) -> dict | None:
    """A running model server (not unhealthy) of another service serving ``model`` (its served name): its container,
    service, framework and in-network port, so a graph can reuse it instead of starting another (None if none)."""
    flt = engine.managed_filter("service", role="model", model=model)
    for c in engine.client().containers.list(filters=flt):
        health = ((c.attrs.get("State") or {}).get("Health") or {}).get("Status")
        if health == "unhealthy":           # "starting": the engine has not run its first check yet
            continue
        ports = sorted((c.attrs.get("Config") or {}).get("ExposedPorts") or {})
        if not ports:
            continue
        return {"container": c.name, "service": c.labels.get(SERVICE, ""), "port": int(ports[0].split("/")[0]),
                "framework": c.labels.get(f"{LABEL_PREFIX}.framework", "")}
    return None
