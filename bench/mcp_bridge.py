"""The MCP bridge against mcp-proxy 0.13.0: same machine, same MCP server (mcp-server-time), same run.

For each bridge and transport (SSE, then streamable HTTP), N concurrent SDK client sessions (N = 1, 8, 32) call
``get_current_time`` in a loop for a fixed time, on a freshly started bridge: calls/s, round-trip p50 and p99, and
the bridge process's own CPU time per call (user + system, from /proc: the efficiency figure that other load on
the machine moves least). Each point is run --reps times as back-to-back pairs (ours, mcp-proxy; alternating who
goes first); rows show each bridge's median run, and the ratio is the median of the per-pair ratios.
Then the resident memory (RSS) of each bridge process and of its child, and a reuse check (3 rounds of 8 sessions
on one process). Our bridge runs with its security checks on (bearer token, Host/Origin validation); mcp-proxy has
none. Both log at WARNING (no line per request). The client, the MCP server and the bridge share this machine's
cores, so the throughput ratio is smaller than the CPU ratio.
Over streamable HTTP (/mcp) both answer these calls with plain application/json: mcp-proxy always (it drops
progress sent during a call), ours because nothing comes for the call before its answer (a call that reports
progress, logs or asks the client something gets an event stream instead, so nothing is dropped).
Target: >= 1.2x mcp-proxy's calls/s at 8 and 32 sessions (SSE), p99 <= mcp-proxy's.

Run: .venv/bin/python bench/mcp_bridge.py [--duration 4] [--reps 5]. Results: bench/results/mcp_bridge.json.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import selectors
import signal
import socket
import statistics
import subprocess
import sys
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from collections.abc import AsyncIterator

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, package_version, record  # noqa: E402

import httpx  # noqa: E402

from mcp import ClientSession  # noqa: E402
from mcp.client.sse import sse_client  # noqa: E402
from mcp.client.streamable_http import streamable_http_client  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SERVER = [str(BIN / "mcp-server-time"), "--local-timezone", "UTC"]
LEVELS = (1, 8, 32)
TARGET_RATIO = 1.2
ZONES = ("UTC", "Europe/Paris", "Asia/Tokyo", "America/New_York")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    if int(fh.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(entry))
            except OSError:
                pass
    return out


class Peer:
    """One bridge under test, as a subprocess."""

    def __init__(self, name: str, argv: list[str], token: str | None, ready_line: str | None) -> None:
        self.name, self.argv, self.token, self.ready_line = name, argv, token, ready_line
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        # Only our bridge's stdout is read (its one listening line); mcp-proxy logs every request there, and an
        # unread pipe would fill up and block it after a few hundred calls.
        out = subprocess.PIPE if self.ready_line else subprocess.DEVNULL
        self.proc = subprocess.Popen(self.argv, cwd=ROOT, stdin=subprocess.PIPE, stdout=out, stderr=subprocess.DEVNULL)
        if self.token is not None:
            assert self.proc.stdin
            self.proc.stdin.write(json.dumps({"auth_token": self.token}).encode() + b"\n")
            self.proc.stdin.flush()
        self._wait_ready()

    def _wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        if self.ready_line:                       # ours: the listening line on stdout
            assert self.proc and self.proc.stdout
            sel = selectors.DefaultSelector()
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            if not sel.select(timeout):
                raise SystemExit(f"{self.name} did not start")
            line = self.proc.stdout.readline().decode()
            assert line.startswith(self.ready_line), line
            return
        while time.monotonic() < deadline:       # mcp-proxy: poll its /status until it answers
            try:
                if httpx.get(f"{self.base}/status", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise SystemExit(f"{self.name} did not start")

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def headers(self) -> dict[str, str] | None:
        return {"Authorization": f"Bearer {self.token}"} if self.token else None

    def cpu_seconds(self) -> float:
        """User + system CPU time of the bridge process itself (not its child)."""
        assert self.proc
        with open(f"/proc/{self.proc.pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def memory(self) -> dict[str, int]:
        assert self.proc
        kids = children(self.proc.pid)
        return {"bridge_rss_kb": rss_kb(self.proc.pid), "child_rss_kb": sum(rss_kb(k) for k in kids),
                "children": len(kids)}

    def restart(self) -> None:
        self.stop()
        self.start()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def ours(port: int, token: str) -> Peer:
    argv = [sys.executable, "-m", "lazyllm_images.runtime.mcp_bridge", "--port", str(port), "--secrets-stdin",
            "--log-level", "warning", "--", *SERVER]
    peer = Peer("lazyllm-mcp-bridge", argv, token, "lazyllm-mcp-bridge listening")
    peer.port = port
    return peer


def mcp_proxy(port: int) -> Peer:
    # --log-level WARNING: like ours, no log line per request (its default INFO writes an access line per call)
    argv = [str(BIN / "mcp-proxy"), "--port", str(port), "--host", "127.0.0.1", "--log-level", "WARNING", "--",
            *SERVER]
    peer = Peer("mcp-proxy 0.13.0", argv, None, None)
    peer.port = port
    return peer


@asynccontextmanager
async def session(peer: Peer, transport: str) -> AsyncIterator[ClientSession]:
    if transport == "sse":
        async with sse_client(f"{peer.base}/sse", headers=peer.headers()) as (r, w):
            async with ClientSession(r, w) as s:
                await s.initialize()
                yield s
    else:
        async with httpx.AsyncClient(headers=peer.headers(), timeout=60) as http:
            async with streamable_http_client(f"{peer.base}/mcp", http_client=http) as (r, w, _):
                async with ClientSession(r, w) as s:
                    await s.initialize()
                    yield s


STALL_S = 5.0        # no call finished for this long: the bridge is stuck
ATTEMPTS = 3         # tries per run before a stuck peer is reported as such


async def worker(s: ClientSession, index: int, window: dict[str, float], samples: list[float],
                 errors: list[str]) -> None:
    zone = ZONES[index % len(ZONES)]
    while (now := time.perf_counter()) < window["stop"]:
        result = await s.call_tool("get_current_time", {"timezone": zone})
        done = time.perf_counter()
        window["last"] = done
        block = result.content[0] if result.content else None
        if result.isError or zone not in getattr(block, "text", ""):
            errors.append(str(result)[:200])
        window["all_calls"] = window.get("all_calls", 0) + 1
        if now >= window["warm"]:
            samples.append(done - now)
    window["finished"] = window.get("finished", 0) + 1


async def load(peer: Peer, transport: str, n: int, duration: float, warmup: float) -> dict[str, Any]:
    """N sessions, each in its own task: open, wait until all are open, call for WARMUP + DURATION seconds."""
    samples: list[float] = []
    errors: list[str] = []
    opened: list[int] = []
    window: dict[str, float] = {}
    all_open = asyncio.Event()

    async def one(index: int) -> None:
        async with session(peer, transport) as s:
            opened.append(index)
            if len(opened) == n:
                window["warm"] = time.perf_counter() + warmup
                window["stop"] = window["warm"] + duration
                window["last"] = time.perf_counter()
                all_open.set()
            await all_open.wait()
            await worker(s, index, window, samples, errors)

    cpu_before = peer.cpu_seconds()
    task = asyncio.ensure_future(asyncio.gather(*(one(i) for i in range(n))))
    stalled = await watch(task, window, n, duration + warmup + 60)
    cpu = peer.cpu_seconds() - cpu_before
    if stalled:
        measured = max(1e-9, window.get("last", 0) - window.get("warm", 0))
    else:
        measured = duration                    # calls that started inside the measured window
    samples.sort()
    row: dict[str, Any] = {"sessions": n, "calls": len(samples), "calls_per_s": round(len(samples) / measured, 1),
                           "p50_ms": round(1000 * statistics.median(samples), 2) if samples else None,
                           "p99_ms": round(1000 * samples[int(0.99 * (len(samples) - 1))], 2) if samples else None,
                           "errors": len(errors),
                           "bridge_cpu_ms_per_call": round(1000 * cpu / max(1, window.get("all_calls", 0)), 3)}
    if stalled:
        row["stalled"] = True
    return row


async def watch(task: asyncio.Future[Any], window: dict[str, float], n: int, limit: float) -> bool:
    """Wait for TASK; True (and cancel it) if a call got no answer for STALL_S seconds. Sessions that are slow
    to close after their last call (mcp-proxy's are) are given up on, but that is not a stall."""
    deadline = time.perf_counter() + limit
    while not task.done():
        await asyncio.wait([task], timeout=0.5)
        now = time.perf_counter()
        calls_done = window.get("finished", 0) >= n
        stuck = "last" in window and not calls_done and now - window["last"] > STALL_S
        if stuck or now > deadline or (calls_done and now - window["last"] > STALL_S):
            task.cancel()
            try:
                await asyncio.wait_for(task, 5)
            except BaseException:      # the sessions of a stuck bridge may not close cleanly
                pass
            return not calls_done
    task.result()
    return False


def run_point(peer: Peer, transport: str, n: int, duration: float, warmup: float) -> dict[str, Any]:
    """One measured run on a freshly started peer; a run that stalls is retried on a new process (stalls are
    counted and reported)."""
    stalls = 0
    for _ in range(ATTEMPTS):
        peer.restart()
        row = asyncio.run(load(peer, transport, n, duration, warmup))
        if not row.get("stalled"):
            row["stalls_before"] = stalls
            return row
        stalls += 1
        print(f"    {peer.name} stalled on {transport} x{n}; retrying on a fresh process", flush=True)
    row["stalls_before"] = stalls
    return row


def reuse_check(peer: Peer, transport: str, batches: int = 3, n: int = 8, calls: int = 30) -> dict[str, Any]:
    """Robustness: BATCHES rounds of N sessions x CALLS calls on one process, sessions closed between rounds."""
    peer.restart()

    async def batch() -> bool:
        window = {"warm": 0.0, "stop": float("inf")}
        counts = [0] * n

        async def one(i: int) -> None:
            async with session(peer, transport) as s:
                for _ in range(calls):
                    await s.call_tool("get_current_time", {"timezone": ZONES[i % len(ZONES)]})
                    counts[i] += 1
                    window["last"] = time.perf_counter()
            window["finished"] = window.get("finished", 0) + 1

        task = asyncio.ensure_future(asyncio.gather(*(one(i) for i in range(n))))
        return not await watch(task, window, n, 120) and sum(counts) == n * calls

    done = 0
    for _ in range(batches):
        if not asyncio.run(batch()):
            break
        done += 1
    return {"transport": transport, "batches": batches, "sessions_per_batch": n, "calls_per_session": calls,
            "batches_completed": done}


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Of repeated runs, the one with the median throughput (a completed run beats one that stalled)."""
    done = [r for r in runs if not r.get("stalled")] or runs
    ordered = sorted(done, key=lambda r: r["calls_per_s"])
    row = dict(ordered[(len(ordered) - 1) // 2])
    row["runs_calls_per_s"] = [r["calls_per_s"] for r in runs]
    row["stalls"] = sum(r["stalls_before"] + bool(r.get("stalled")) for r in runs)
    return row


def measure(peers: list[Peer], transports: list[str], duration: float, warmup: float,
            reps: int) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Paired runs: each rep runs both bridges back to back (alternating who goes first), so both see the same
    background load; the ratio reported is the median of the per-pair ratios."""
    results: dict[str, dict[str, list[dict[str, Any]]]] = {p.name: {t: [] for t in transports} for p in peers}
    ours_name, peer_name = peers[0].name, peers[1].name
    for transport in transports:
        for n in LEVELS:
            runs: dict[str, list[dict[str, Any]]] = {p.name: [] for p in peers}
            for rep in range(reps):
                order = peers if rep % 2 == 0 else list(reversed(peers))
                for peer in order:
                    runs[peer.name].append(run_point(peer, transport, n, duration, warmup))
            ratios = sorted(a["calls_per_s"] / max(1e-9, b["calls_per_s"])
                            for a, b in zip(runs[ours_name], runs[peer_name], strict=True))
            for peer in peers:
                row = median_run(runs[peer.name])
                row["pair_ratios"] = [round(r, 3) for r in ratios]
                results[peer.name][transport].append(row)
                print(f"  {transport:4} {n:3} sessions  {peer.name:20} {row['calls_per_s']:8.1f} calls/s  "
                      f"p50 {row['p50_ms']} ms  p99 {row['p99_ms']} ms  bridge CPU "
                      f"{row['bridge_cpu_ms_per_call']} ms/call  runs {row['runs_calls_per_s']}  "
                      f"errors {row['errors']}  stalls {row['stalls']}", flush=True)
    return results


def verdict(results: dict[str, Any], ours_name: str, peer_name: str, transports: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for t in transports:
        rows = []
        for mine, theirs in zip(results[ours_name][t], results[peer_name][t], strict=True):
            ratio = statistics.median(mine["pair_ratios"])
            p99_ok = theirs["p99_ms"] is None or (mine["p99_ms"] is not None and mine["p99_ms"] <= theirs["p99_ms"])
            rows.append({"sessions": mine["sessions"], "throughput_ratio": round(ratio, 2),
                         "throughput_ratio_range": [min(mine["pair_ratios"]), max(mine["pair_ratios"])],
                         "bridge_cpu_ratio": round(mine["bridge_cpu_ms_per_call"]
                                                   / max(1e-9, theirs["bridge_cpu_ms_per_call"]), 2),
                         "p99_ratio": round(mine["p99_ms"] / theirs["p99_ms"], 2) if theirs["p99_ms"] else None,
                         "peer_stalled": bool(theirs.get("stalled")), "ours_stalled": bool(mine.get("stalled")),
                         "meets_target": not mine.get("stalled") and p99_ok
                         and (mine["sessions"] == 1 or ratio >= TARGET_RATIO)})
        out[t] = rows
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=4.0, help="measured seconds per run")
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--reps", type=int, default=5, help="paired runs per point (median kept)")
    ap.add_argument("--transports", default="sse,mcp")
    args = ap.parse_args()
    transports = args.transports.split(",")
    token = secrets.token_urlsafe(24)
    peers = [ours(free_port(), token), mcp_proxy(free_port())]
    try:
        results = measure(peers, transports, args.duration, args.warmup, args.reps)
        memory = {p.name: p.memory() for p in peers}
        reuse = {p.name: [reuse_check(p, t) for t in transports] for p in peers}
        for name, rows in reuse.items():
            for row in rows:
                print(f"  reuse {row['transport']:4} {name:20} {row['batches_completed']}/{row['batches']} batches of "
                      f"{row['sessions_per_batch']} sessions completed", flush=True)
    finally:
        for p in peers:
            p.stop()
    summary = verdict(results, peers[0].name, peers[1].name, transports)
    env = environment()
    run = {"environment": env, "duration_s": args.duration, "reps": args.reps, "results": results,
           "memory_after_load": memory, "reuse_check": reuse, "vs_peer": summary}
    payload = {"server": "mcp-server-time --local-timezone UTC", "tool": "get_current_time",
               "our_security": "bearer token + Host/Origin checks",
               "client": "mcp SDK ClientSession, one asyncio process",
               "target": f">= {TARGET_RATIO}x calls/s at 8 and 32 sessions (SSE), p99 <= peer",
               "runs": {**previous_runs(), env["label"]: run}}
    path = record("mcp_bridge", payload, peer={"name": "mcp-proxy (same venv, same run)",
                                               "version": package_version("mcp-proxy")})
    print_table(results, memory, summary, peers[0].name, peers[1].name)
    print(f"-> {path}")
    return 0 if all(r["meets_target"] for r in summary.get("sse", [])) else 1


def environment() -> dict[str, Any]:
    """Which optional speed-ups the bridges' Python has (uvicorn picks httptools itself; our bridge also runs on
    uvloop when present, mcp-proxy does not). Runs in different environments are kept side by side."""
    import importlib.util
    found = {m: importlib.util.find_spec(m) is not None for m in ("httptools", "uvloop")}
    label = "+".join(m for m, ok in found.items() if ok) or "plain"
    return {"label": label, **found}


def previous_runs() -> dict[str, Any]:
    """Runs of other environments already recorded (this run replaces its own environment's)."""
    path = RESULTS / "mcp_bridge.json"
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return dict(old.get("runs", {}))


def _ms(value: float | None) -> str:
    return f"{value:>7.2f}" if value is not None else f"{'-':>7}"


def print_table(results: dict[str, Any], memory: dict[str, Any], summary: dict[str, Any], a: str, b: str) -> None:
    print(f"\n{'transport':9} {'sessions':>8} | {'ours calls/s':>12} {'p50':>7} {'p99':>7} {'cpu':>5} | "
          f"{'mcp-proxy calls/s':>17} {'p50':>7} {'p99':>7} {'cpu':>5} | {'ratio':>5}   (ms; cpu: bridge ms/call)")
    for t, rows in summary.items():
        for mine, theirs, v in zip(results[a][t], results[b][t], rows, strict=True):
            stuck = " (mcp-proxy stalled)" if v["peer_stalled"] else ""
            print(f"{t:9} {v['sessions']:>8} | {mine['calls_per_s']:>12.1f} {_ms(mine['p50_ms'])} "
                  f"{_ms(mine['p99_ms'])} {mine['bridge_cpu_ms_per_call']:>5.2f} | {theirs['calls_per_s']:>17.1f} "
                  f"{_ms(theirs['p50_ms'])} {_ms(theirs['p99_ms'])} {theirs['bridge_cpu_ms_per_call']:>5.2f} | "
                  f"{v['throughput_ratio']:>5.2f}{'' if v['meets_target'] else ' (miss)'}{stuck}")
    for name, m in memory.items():
        print(f"RSS {name:20} bridge {m['bridge_rss_kb'] / 1024:6.1f} MiB   child {m['child_rss_kb'] / 1024:6.1f} MiB")


if __name__ == "__main__":
    raise SystemExit(main())
