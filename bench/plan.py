"""Planning time: `lazyllm install full --dry-run --json` (CLI start included; target < 300 ms), beside
`lazyllm --help` (the CLI floor) and bare Python. Results: bench/results/plan.json.

Two caches in the per-user state folder make the usual run: the validated recipes (reused while every recipe
file's content is unchanged) and jinja's compiled templates. The 'cold' row is a first run: an empty state folder
each time (after an upgrade or a recipe edit, once).
"""

from __future__ import annotations

import subprocess
import sys
import os
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import package_version, record, summary, time_command  # noqa: E402

TARGET_S = 0.300


def time_cold(argv: list[str], runs: int = 10) -> dict:
    samples = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as home:
            env = {**os.environ, "LAZYLLM_HOME": home}
            start = time.perf_counter()
            subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=False)
            samples.append(time.perf_counter() - start)
    return summary(samples)


def main() -> int:
    lazyllm = str(Path(sys.executable).parent / "lazyllm")
    rows = {
        "lazyllm install full --dry-run --json --cuda 12.8": time_command(
            [lazyllm, "install", "full", "--dry-run", "--json", "--cuda", "12.8"], runs=20),
        "lazyllm install full --dry-run --json --cuda 12.8 (cold: empty state folder)": time_cold(
            [lazyllm, "install", "full", "--dry-run", "--json", "--cuda", "12.8"]),
        "lazyllm install embedding chat --dry-run --json (offline)": time_command(
            [lazyllm, "install", "embedding", "chat", "--dry-run", "--json", "--base", "offline"], runs=20),
        "lazyllm --help (CLI floor)": time_command([lazyllm, "--help"], runs=20),
        "python -c pass (interpreter floor)": time_command([sys.executable, "-c", "pass"], runs=20),
    }
    key = "lazyllm install full --dry-run --json --cuda 12.8"
    ours = rows[key]["median_s"]
    payload = {"target_s": TARGET_S, "meets_target": ours < TARGET_S, "results": rows,
               "ratio_to_cli_floor": round(ours / rows["lazyllm --help (CLI floor)"]["median_s"], 2)}
    path = record("plan", payload, peer={"name": "CLI floor: lazyllm --help (and python -c pass)",
                                         "version": package_version("lazyllm-images")})
    for k, v in rows.items():
        print(f"{k:<60} median {v['median_s'] * 1000:7.1f} ms   p90 {v['p90_s'] * 1000:7.1f} ms")
    print(f"planning 'full': {ours * 1000:.0f} ms (target < {TARGET_S * 1000:.0f} ms): "
          f"{'ok' if ours < TARGET_S else 'MISSED'} -> {path}")
    return 0 if ours < TARGET_S else 1


if __name__ == "__main__":
    raise SystemExit(main())
