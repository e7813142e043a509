"""Embedding throughput on the CPU: the project's embedding server in fp32 and with `--dtype auto` (the mode it picks
at start-up) next to infinity (infinity_emb, torch engine), the same model (the packaged all-MiniLM-L6-v2) and
the same texts, in one run.

Servers, each deployed by this script with `lazyllm deploy` on the offline base and stopped after:
  ours fp32   lazyllm deploy all-MiniLM-L6-v2 --framework embedding --pass-unknown --dtype=fp32
  ours auto   lazyllm deploy all-MiniLM-L6-v2 --framework embedding            (the default, --dtype auto)
  infinity    lazyllm deploy all-MiniLM-L6-v2 --framework infinity             (its defaults: torch engine)
Corpus: the Python documentation topics shipped with the interpreter (pydoc_data), cut into windows of WORDS words
(up to PER_TOPIC per topic); questions: one per topic ("How does <topic> work in Python?").
Measures, per server, ROUNDS rounds interleaved (servers in rotating order, so load from elsewhere falls on all):
  batched   the corpus in requests of BATCH texts, one request at a time: texts/s;
  single    SINGLE texts, one text per request, CONCURRENCY requests in flight: texts/s.
The median round is reported. Quality gate (auto against fp32, infinity shown too): cosine of each corpus text's
vector to ours-fp32's (min and mean; gate: min >= 0.99), and each question's top-1 corpus text (gate: the same as
fp32's for every question; each question that differs is listed with fp32's own lead of its top-1 over its
top-2, to tell a near-tie from a real change). Target: auto at least 2x infinity's texts/s, batched and single.

Before measuring, waits until no test run is active (`pgrep -f pytest` empty for 30 s in a row); the load averages
at start and end are recorded (bench/common.py), and at each phase.

Run: .venv/bin/python bench/embed.py   (needs the engine: eval "$(scripts/engine-env.sh default)").
Results: bench/results/embed.json.
"""

from __future__ import annotations

import argparse
import base64
import concurrent.futures
import os
import statistics
import subprocess
import sys
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Iterator

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
from common import record  # noqa: E402

MODEL = "all-MiniLM-L6-v2"
WORDS, PER_TOPIC = 100, 4
BATCH, CONCURRENCY, SINGLE = 32, 8, 192
ROUNDS = 3
TARGET = 2.0
MIN_COSINE = 0.99
SERVERS = {  # name -> lazyllm deploy arguments after the model
    "ours_fp32": ["--framework", "embedding", "--pass-unknown", "--dtype=fp32"],
    "ours_auto": ["--framework", "embedding"],
    "infinity": ["--framework", "infinity"],
}
ENV = {**os.environ, "LAZYLLM_BASE": os.environ.get("LAZYLLM_BASE", "offline")}


def corpus(words: int = WORDS, per_topic: int = PER_TOPIC) -> tuple[list[str], list[str], list[str], list[str]]:
    """(texts, the topic of each text, questions, the topic of each question)."""
    from pydoc_data.topics import topics

    texts, owners, questions, asked = [], [], [], []
    for key in sorted(topics):
        split = topics[key].split()
        windows = [" ".join(split[i:i + words]) for i in range(0, len(split) - words + 1, words)][:per_topic]
        if not windows:
            continue
        texts += windows
        owners += [key] * len(windows)
        questions.append(f"How does {key.replace('-', ' ')} work in Python?")
        asked.append(key)
    return texts, owners, questions, asked


def test_run_active() -> bool:
    """`pgrep -f pytest` finds something (other than another session's pgrep polling the same way)."""
    out = subprocess.run(["pgrep", "-af", "pytest"], capture_output=True, text=True).stdout
    return any(line.split()[1:2] != ["pgrep"] for line in out.splitlines() if line.strip())


def other_benchmarks() -> list[str]:
    """Other benchmarks of this project running now (their load would land in our figures)."""
    out = subprocess.run(["pgrep", "-af", r"bench/[a-z_]+\.py"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines()
            if line.split()[:1] != [str(os.getpid())] and "bench/embed.py" not in line and " pgrep " not in line]


def wait_for_quiet(seconds: float = 30, limit: float = 3 * 3600, others_limit: float = 600) -> float:
    """Block until `pgrep -f pytest` has found nothing for ``seconds`` in a row, nor another bench/*.py (that one
    for at most ``others_limit`` seconds after the tests went quiet); the seconds waited."""
    start = time.monotonic()
    quiet_since = start
    tests_quiet_since: float | None = None
    while time.monotonic() - quiet_since < seconds:
        now = time.monotonic()
        busy = test_run_active()
        if busy:
            tests_quiet_since = None
        else:
            tests_quiet_since = tests_quiet_since or now
            busy = bool(other_benchmarks()) and now - tests_quiet_since < others_limit
        if busy:
            if now - start > limit:
                raise SystemExit("a test run stayed active; not measuring")
            quiet_since = now
        time.sleep(2)
    return time.monotonic() - start


def lazyllm(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lazyllm_images", *args], capture_output=True, text=True, env=ENV,
                          cwd=Path(__file__).resolve().parents[1])


@contextmanager
def deployed(name: str, args: list[str]) -> Iterator[dict]:
    service = f"lazyllm-bench-embed-{name.replace('_', '-')}"
    lazyllm("stop", service)
    start = time.perf_counter()
    out = lazyllm("deploy", MODEL, *args, "--name", service)
    try:
        if out.returncode:
            raise SystemExit(f"lazyllm deploy {name} failed:\n{out.stdout[-2000:]}{out.stderr[-2000:]}")
        endpoint = next(line.split()[1] for line in out.stdout.splitlines() if line.startswith("endpoint:"))
        url = endpoint.rstrip("/").removesuffix("/v1") + "/v1/embeddings"
        with httpx.Client(timeout=30) as http:
            deadline = time.monotonic() + 300
            while http.post(url, json={"model": MODEL, "input": ["hello"]}).status_code != 200:
                if time.monotonic() > deadline:
                    raise SystemExit(f"{url} never answered")
                time.sleep(0.5)
            models = http.get(url.removesuffix("/embeddings") + "/models").json()
        yield {"name": name, "service": service, "url": url, "deploy_s": round(time.perf_counter() - start, 2),
               "models": models, "argv": ["lazyllm", "deploy", MODEL, *args]}
    finally:
        lazyllm("stop", service)


def embed(http: httpx.Client, url: str, texts: list[str]) -> np.ndarray:
    r = http.post(url, json={"model": MODEL, "input": texts, "encoding_format": "base64"})
    r.raise_for_status()
    rows = sorted(r.json()["data"], key=lambda d: d["index"])
    return np.stack([np.frombuffer(base64.b64decode(d["embedding"]), dtype="<f4") for d in rows])


def batched(http: httpx.Client, url: str, texts: list[str]) -> tuple[float, np.ndarray]:
    start = time.perf_counter()
    parts = [embed(http, url, texts[i:i + BATCH]) for i in range(0, len(texts), BATCH)]
    return len(texts) / (time.perf_counter() - start), np.concatenate(parts)


def single(http: httpx.Client, url: str, texts: list[str], pool: concurrent.futures.ThreadPoolExecutor) -> float:
    start = time.perf_counter()
    list(pool.map(lambda t: embed(http, url, [t]), texts))
    return len(texts) / (time.perf_counter() - start)


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def quality(vectors: np.ndarray, questions: np.ndarray, ref: np.ndarray, ref_q: np.ndarray) -> dict:
    cos = (unit(vectors) * unit(ref)).sum(axis=1)
    top = (unit(questions) @ unit(vectors).T).argmax(axis=1)
    ref_top = (unit(ref_q) @ unit(ref).T).argmax(axis=1)
    q_cos = (unit(questions) * unit(ref_q)).sum(axis=1)
    ref_scores = np.sort(unit(ref_q) @ unit(ref).T, axis=1)
    margins = ref_scores[:, -1] - ref_scores[:, -2]          # fp32's own lead of its top-1 over its top-2
    flips = [{"question": int(i), "fp32_top1_margin": round(float(margins[i]), 5)}
             for i in np.flatnonzero(top != ref_top)]
    return {"cosine_min": round(float(cos.min()), 5), "cosine_mean": round(float(cos.mean()), 6),
            "question_cosine_min": round(float(q_cos.min()), 5),
            "top1_same_as_fp32": int((top == ref_top).sum()), "questions": len(ref_top), "top1_flips": flips,
            "top1_same_where_fp32_margin_over_0.001": all(f["fp32_top1_margin"] < 0.001 for f in flips),
            "passes": bool(cos.min() >= MIN_COSINE and q_cos.min() >= MIN_COSINE and (top == ref_top).all()),
            "_top": top}


def peer_version(service: str) -> str | None:
    out = subprocess.run(["docker", "exec", f"{service}-model", "python3", "-c",
                          "from importlib.metadata import version as v; print(v('infinity-emb'), v('torch'))"],
                         capture_output=True, text=True)
    return out.stdout.strip() or None


def run(rounds: int, limit: int | None = None) -> dict:
    texts, owners, questions, asked = corpus()
    if limit:                                         # a quick functional check, not a measurement
        texts, owners, questions, asked = texts[:limit], owners[:limit], questions[:limit], asked[:limit]
    singles = texts[:SINGLE]
    load: dict[str, float] = {}
    with ExitStack() as stack:
        servers = {name: stack.enter_context(deployed(name, args)) for name, args in SERVERS.items()}
        version = peer_version(servers["infinity"]["service"])
        http = stack.enter_context(httpx.Client(timeout=300, limits=httpx.Limits(max_connections=2 * CONCURRENCY)))
        pool = stack.enter_context(concurrent.futures.ThreadPoolExecutor(CONCURRENCY))
        for s in servers.values():                          # warm-up, not counted: a batch and the concurrency
            batched(http, s["url"], texts[:2 * BATCH])
            single(http, s["url"], singles[:2 * CONCURRENCY], pool)
        load["before_measuring"] = round(os.getloadavg()[0], 2)
        rates: dict[str, dict[str, list[float]]] = {n: {"batched": [], "single": []} for n in servers}
        vectors: dict[str, np.ndarray] = {}
        names = list(servers)
        for r in range(rounds):
            order = names[r % len(names):] + names[:r % len(names)]
            for name in order:
                rate, vecs = batched(http, servers[name]["url"], texts)
                rates[name]["batched"].append(rate)
                vectors.setdefault(name, vecs)
            for name in order:
                rates[name]["single"].append(single(http, servers[name]["url"], singles, pool))
            load[f"after_round_{r + 1}"] = round(os.getloadavg()[0], 2)
        qvecs = {name: batched(http, s["url"], questions)[1] for name, s in servers.items()}
    ref, ref_q = vectors["ours_fp32"], qvecs["ours_fp32"]
    results = {}
    for name, s in servers.items():
        q = quality(vectors[name], qvecs[name], ref, ref_q)
        top = q.pop("_top")
        q["top1_topic_hit_rate"] = round(float(np.mean([owners[t] == a for t, a in zip(top, asked)])), 3)
        entry = s["models"]["data"][0]
        results[name] = {
            "deploy": " ".join(s["argv"]), "deploy_to_first_answer_s": s["deploy_s"],
            "batched_texts_per_s": round(statistics.median(rates[name]["batched"]), 1),
            "single_texts_per_s": round(statistics.median(rates[name]["single"]), 1),
            "batched_rounds": [round(x, 1) for x in rates[name]["batched"]],
            "single_rounds": [round(x, 1) for x in rates[name]["single"]],
            "quality_vs_ours_fp32": q,
            **({"dtype": entry["dtype"], "dtype_choice": entry.get("dtype_choice")} if "dtype" in entry else {}),
        }
    return {"results": results, "infinity_version": version, "load_average_1min": load,
            "corpus": {"source": "pydoc_data topics", "texts": len(texts), "words_per_text": WORDS,
                       "questions": len(questions), "single_texts": len(singles)}}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=ROUNDS)
    p.add_argument("--no-wait", action="store_true", help="measure even while a test run is active")
    p.add_argument("--limit", type=int, default=None, help="only the first N texts (a functional check)")
    p.add_argument("--output", default="embed", help="results name: bench/results/NAME.json (default embed)")
    args = p.parse_args()
    waited = 0.0 if args.no_wait else wait_for_quiet()
    common.LOAD_AT_START = [round(x, 2) for x in os.getloadavg()]
    out = run(args.rounds, args.limit)
    res = out["results"]
    inf, auto, fp32 = res["infinity"], res["ours_auto"], res["ours_fp32"]
    ratios = {f"{who}_over_infinity_{kind}": round(res[who][f"{kind}_texts_per_s"] / inf[f"{kind}_texts_per_s"], 2)
              for who in ("ours_auto", "ours_fp32") for kind in ("batched", "single")}
    ratios.update({f"auto_over_fp32_{k}": round(auto[f"{k}_texts_per_s"] / fp32[f"{k}_texts_per_s"], 2)
                   for k in ("batched", "single")})
    meets = {"throughput": ratios["ours_auto_over_infinity_batched"] >= TARGET
             and ratios["ours_auto_over_infinity_single"] >= TARGET,
             "quality": auto["quality_vs_ours_fp32"]["passes"]}
    version = out.pop("infinity_version")
    path = record(args.output, {
        "model": MODEL, **({"limit_texts": args.limit} if args.limit else {}), "batch": BATCH,
        "single_concurrency": CONCURRENCY, "rounds": args.rounds,
        "encoding_format": "base64 (what the OpenAI client sends by default)",
        "waited_for_quiet_s": round(waited, 1), "cpu_flags": sorted(cpu_flags() & {
            "avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8", "avx_vnni"}),
        **out, "ratios": ratios, "target": f"ours_auto >= {TARGET}x infinity, batched and single; quality: "
        f"cosine to fp32 >= {MIN_COSINE} and the same top-1 on every question", "meets_target": meets},
        peer={"name": "infinity (infinity_emb v2, torch engine, its defaults)", "version": version})
    for name, row in res.items():
        q = row["quality_vs_ours_fp32"]
        print(f"{name:<10} batched {row['batched_texts_per_s']:6.1f} texts/s  single(c={CONCURRENCY}) "
              f"{row['single_texts_per_s']:6.1f} texts/s  cosine min {q['cosine_min']}  top-1 same "
              f"{q['top1_same_as_fp32']}/{q['questions']}  {row.get('dtype', '')}")
    print(f"ratios {ratios}; meets {meets}; load {out['load_average_1min']} -> {path}")
    return 0 if all(meets.values()) else 1


def cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.partition(":")[2].split())
    except OSError:
        pass
    return set()


if __name__ == "__main__":
    raise SystemExit(main())
