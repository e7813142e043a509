"""Helpers for benchmarks: timing commands, recording results in bench/results/ with the machine they ran on."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


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


def machine() -> dict:
    return {"python": platform.python_version(), "cpus": os.cpu_count(), "machine": platform.machine(),
            "kernel": platform.release()}


def record(name: str, payload: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {"benchmark": name, "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
               "machine": machine(), **payload}
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path
