"""Helpers for benchmarks: timing commands, recording results in bench/results/ with the machine they ran on,
the date, the peer measured beside ours (name and version) and the load average at the start and end of the run."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
# The 1/5/15-minute load averages when the benchmark started (this module is imported first thing): a run whose
# load rose above 1.5 because of other work on the machine is to be run again.
LOAD_AT_START = [round(x, 2) for x in os.getloadavg()]


def time_command(argv: list[str], runs: int = 30, warmup: int = 3, env: dict | None = None) -> dict:
    """Wall time of a whole command, ``runs`` times after ``warmup``: median, p90, min, in seconds."""
    env = {**os.environ, **(env or {})}
    samples = []
    for i in range(warmup + runs):
        start = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=False)
        if i >= warmup:
            samples.append(time.perf_counter() - start)
    return summary(samples)


def summary(samples: list[float]) -> dict:
    """Median, p90 and min of wall times, in seconds."""
    samples = sorted(samples)
    return {"median_s": statistics.median(samples), "p90_s": samples[int(0.9 * (len(samples) - 1))],
            "min_s": samples[0], "runs": len(samples)}


def docker_version() -> dict:
    """The docker CLI's and the engine's versions (None where there is no docker or no engine)."""
    try:
        out = subprocess.run(["docker", "version", "--format", "{{.Client.Version}}|{{.Server.Version}}"],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return {"client": None, "server": None}
    client, _, server = out.stdout.strip().partition("|")
    return {"client": client or None, "server": server or None, "host": os.environ.get("DOCKER_HOST")}


def package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def machine() -> dict:
    return {"python": platform.python_version(), "cpus": os.cpu_count(), "machine": platform.machine(),
            "kernel": platform.release(), "docker": docker_version()}


def record(name: str, payload: dict, peer: dict | None = None) -> Path:
    """Write bench/results/NAME.json: the date, the machine, the peer ({"name": ..., "version": ...}), the load
    averages at start and end, then ``payload``."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    end = [round(x, 2) for x in os.getloadavg()]
    payload = {"benchmark": name, "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
               "machine": machine(), **({"peer": peer} if peer else {}),
               "load_average": {"start": LOAD_AT_START, "end": end}, **payload}
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path
