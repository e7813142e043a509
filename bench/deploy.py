"""Time from `lazyllm deploy` to the first successful request, minus the same for a bare `docker run` of the same
image with the same arguments plus polling (target overhead under 0.5 s). Model: the packaged all-MiniLM-L6-v2 on
the embedding server, offline base. Results: bench/results/deploy.json
"""

from __future__ import annotations

import os
import shlex
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import docker_version, record  # noqa: E402

TARGET_S = 0.5
RUNS = 5
ARGS = ["all-MiniLM-L6-v2", "--framework", "embedding", "--name", "lazyllm-bench-deploy"]
ENV = {**os.environ, "LAZYLLM_BASE": "offline"}
BODY = b'{"model": "all-MiniLM-L6-v2", "input": ["hello"]}'


def lazyllm(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lazyllm_images", *args], capture_output=True, text=True, env=ENV)


def first_request(url: str, timeout: float = 300) -> None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            req = urllib.request.Request(url, data=BODY, headers={"Content-Type": "application/json"})
            with opener.open(req, timeout=5) as resp:
                if resp.status == 200:
                    return
        except Exception:
            time.sleep(0.05)
    raise SystemExit(f"{url} never answered")


def ours() -> float:
    start = time.perf_counter()
    out = lazyllm("deploy", *ARGS)
    if out.returncode:
        raise SystemExit(out.stderr[-2000:])
    endpoint = next(line.split()[1] for line in out.stdout.splitlines() if line.startswith("endpoint:"))
    first_request(f"{endpoint}/embeddings")
    elapsed = time.perf_counter() - start
    lazyllm("stop", "lazyllm-bench-deploy")
    return elapsed


def peer(argv: list[str]) -> float:
    """The same `docker run` (from --dry-run) with a fixed port, then polling until the first request succeeds."""
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    argv = [a.replace("127.0.0.1::8000", f"127.0.0.1:{port}:8000") for a in argv]
    argv = [a for a in argv if not a.startswith("--network=")]
    if "--network" in argv:                      # the service's network: the peer runs on the default bridge
        i = argv.index("--network")
        del argv[i:i + 2]
    start = time.perf_counter()
    cid = subprocess.run(argv, capture_output=True, text=True, check=True).stdout.strip()
    first_request(f"http://127.0.0.1:{port}/v1/embeddings")
    elapsed = time.perf_counter() - start
    subprocess.run(["docker", "rm", "-f", cid], capture_output=True)
    return elapsed


def main() -> int:
    ours()                                       # build or reuse the stack; warm the page cache
    dry = lazyllm("deploy", *ARGS, "--dry-run").stdout.splitlines()
    run_line = next(line for line in dry if line.startswith("docker run "))
    argv = shlex.split(run_line)
    argv[argv.index("--name") + 1] = "lazyllm-bench-peer"
    ours_s, peer_s = [], []
    for _ in range(RUNS):
        ours_s.append(ours())
        peer_s.append(peer(argv))
    overhead = statistics.median(ours_s) - statistics.median(peer_s)
    payload = {"runs": RUNS,
               "ours_s": ours_s, "peer_s": peer_s, "ours_median_s": statistics.median(ours_s),
               "peer_median_s": statistics.median(peer_s), "overhead_s": overhead,
               "ratio": statistics.median(ours_s) / statistics.median(peer_s),
               "target_overhead_s": TARGET_S, "meets_target": overhead < TARGET_S}
    path = record("deploy", payload, peer={"name": "docker run (same image, same argv) + polling",
                                           "version": docker_version()["client"]})
    print(f"deploy to first request: ours {payload['ours_median_s']:.2f} s, docker run + polling "
          f"{payload['peer_median_s']:.2f} s, overhead {overhead:.2f} s (target < {TARGET_S}) -> {path}")
    return 0 if overhead < TARGET_S else 1


if __name__ == "__main__":
    raise SystemExit(main())
