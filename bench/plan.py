"""Planning time: `lazyllm install full --dry-run --json` (CLI start included; target < 300 ms), beside
`lazyllm --help` (the CLI floor) and bare Python. Results: bench/results/plan.json.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import record, time_command  # noqa: E402

TARGET_S = 0.300


def main() -> int:
    lazyllm = str(Path(sys.executable).parent / "lazyllm")
    rows = {
        "lazyllm install full --dry-run --json --cuda 12.8": time_command(
            [lazyllm, "install", "full", "--dry-run", "--json", "--cuda", "12.8"], runs=20),
        "lazyllm install embedding chat --dry-run --json (offline)": time_command(
            [lazyllm, "install", "embedding", "chat", "--dry-run", "--json", "--base", "offline"], runs=20),
        "lazyllm --help (CLI floor)": time_command([lazyllm, "--help"], runs=20),
        "python -c pass (interpreter floor)": time_command([sys.executable, "-c", "pass"], runs=20),
    }
    key = "lazyllm install full --dry-run --json --cuda 12.8"
    ours = rows[key]["median_s"]
    payload = {"target_s": TARGET_S, "meets_target": ours < TARGET_S, "results": rows,
               "ratio_to_cli_floor": round(ours / rows["lazyllm --help (CLI floor)"]["median_s"], 2)}
    path = record("plan", payload)
    for k, v in rows.items():
        print(f"{k:<60} median {v['median_s'] * 1000:7.1f} ms   p90 {v['p90_s'] * 1000:7.1f} ms")
    print(f"planning 'full': {ours * 1000:.0f} ms (target < {TARGET_S * 1000:.0f} ms): "
          f"{'ok' if ours < TARGET_S else 'MISSED'} -> {path}")
    return 0 if ours < TARGET_S else 1


if __name__ == "__main__":
    raise SystemExit(main())
