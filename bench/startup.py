"""`lazyllm --help` start-up time (target: under 150 ms), next to the docker CLI's own --help and bare Python.

Run: make bench  (or .venv/bin/python bench/startup.py). Results: bench/results/startup.json.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import docker_version, record, time_command  # noqa: E402

TARGET_S = 0.150


def main() -> int:
    lazyllm = str(Path(sys.executable).parent / "lazyllm")
    rows = {
        "lazyllm --help": time_command([lazyllm, "--help"]),
        "lazyllm deploy mcp_server --help": time_command([lazyllm, "deploy", "mcp_server", "--help"]),
        "python -c pass (interpreter floor)": time_command([sys.executable, "-c", "pass"]),
    }
    docker = shutil.which("docker")
    if docker:
        rows["docker --help (peer CLI)"] = time_command([docker, "--help"])
    ours = rows["lazyllm --help"]["median_s"]
    payload = {"target_s": TARGET_S, "meets_target": ours < TARGET_S, "results": rows,
               "ratios": {k: round(ours / v["median_s"], 2) for k, v in rows.items() if k != "lazyllm --help"}}
    path = record("startup", payload, peer={"name": "docker CLI (docker --help)",
                                            "version": docker_version()["client"]})
    for k, v in rows.items():
        print(f"{k:<40} median {v['median_s'] * 1000:7.1f} ms   p90 {v['p90_s'] * 1000:7.1f} ms")
    print(f"lazyllm --help: {ours * 1000:.1f} ms (target < {TARGET_S * 1000:.0f} ms): "
          f"{'ok' if ours < TARGET_S else 'MISSED'}  -> {path}")
    return 0 if ours < TARGET_S else 1


if __name__ == "__main__":
    raise SystemExit(main())
