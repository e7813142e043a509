"""Talking to a sandbox worker: ``SandboxClient(socket_path)``, and ``LocalWorker`` to start one as a subprocess.

``SandboxClient.call`` sends one Code call and returns the decoded value, or raises ``SandboxCallError`` (the code
raised, overran a limit, or returned something that cannot cross the boundary) or ``SandboxUnavailable`` (no worker
at that socket). The client is thread-safe: each call uses its own connection.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .. import values
from . import protocol


class SandboxUnavailable(ConnectionError):
    pass


class SandboxCallError(Exception):
    """The sandboxed code failed. ``type``/``message`` are the exception's; ``reason`` says how it failed:
    ``exception`` (the code raised), ``timeout``, ``cpu``, ``memory``, ``killed``, ``unencodable``,
    ``invalid_arguments``, ``too_large`` or ``internal``."""

    def __init__(self, error: dict) -> None:
        self.type = str(error.get("type") or "RuntimeError")
        self.message = str(error.get("message") or "")
        self.reason = str(error.get("reason") or "exception")
        self.traceback = str(error.get("traceback") or "")
        self.stdout = ""
        super().__init__(f"{self.type}: {self.message}" if self.message else self.type)

    @property
    def stopped(self) -> bool:
        """The sandbox stopped the code (a limit), rather than the code raising on its own."""
        return self.reason in ("timeout", "cpu", "memory", "killed", "too_large")


@dataclass
class CallResult:
    value: Any
    stdout: str = ""
    elapsed: float = 0.0


class SandboxClient:
    def __init__(self, socket_path: str, *, connect_timeout: float = 5.0) -> None:
        self.socket_path = socket_path
        self.connect_timeout = connect_timeout

    def request(self, message: dict, timeout: float | None = None) -> dict:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.connect_timeout)
            try:
                sock.connect(self.socket_path)
            except OSError as e:
                raise SandboxUnavailable(f"no sandbox worker at {self.socket_path}: {e.strerror or e}") from None
            sock.settimeout(timeout)
            try:
                protocol.send(sock, message)
                return protocol.recv(sock)
            except (protocol.ProtocolError, OSError) as e:
                raise SandboxUnavailable(f"the sandbox worker at {self.socket_path} went away: {e}") from None
        finally:
            sock.close()

    def run(self, code: str, args: tuple | list = (), kwargs: dict | None = None, *, variables: dict | None = None,
            node: dict | None = None, limits: dict | None = None, session: str = "default",
            mode: str = "call") -> CallResult:
        """One call; raises ``SandboxCallError`` (with ``stdout``) when the code fails or is stopped."""
        message = {"op": "call", "code": code, "vars": variables, "node": node or {}, "limits": limits or {},
                   "session": session, "mode": mode, "args": [values.encode(a) for a in args],
                   "kwargs": {k: values.encode(v) for k, v in (kwargs or {}).items()}}
        reply = self.request(message)
        if not reply.get("ok"):
            error = SandboxCallError(reply.get("error") or {})
            error.stdout = str(reply.get("stdout") or "")
            raise error
        return CallResult(values.decode(reply.get("value")), str(reply.get("stdout") or ""),
                          float(reply.get("elapsed") or 0.0))

    def call(self, code: str, args: tuple | list = (), kwargs: dict | None = None, **options: Any) -> Any:
        """One call, returning the function's value (see ``run``)."""
        return self.run(code, args, kwargs, **options).value

    def info(self) -> dict:
        return self.request({"op": "info"}, timeout=10).get("info", {})

    def release(self, session: str) -> None:
        try:
            self.request({"op": "release", "session": session}, timeout=30)
        except SandboxUnavailable:
            pass

    def ping(self) -> bool:
        try:
            self.info()
            return True
        except SandboxUnavailable:
            return False


# what a local worker inherits from this process's environment: nothing secret (API keys stay out of its reach)
WORKER_ENV = ("PATH", "PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "HOME")


class LocalWorker:
    """Start ``python -m lazyllm_images.runtime.graph.sandbox`` as a subprocess (host runs and tests)::

        with LocalWorker() as worker:
            SandboxClient(worker.socket_path).call("def f(x): return x + 1", [1])
    """

    def __init__(self, socket_path: str | None = None, *, timeout: float | None = None,
                 memory_mb: int | None = None, extra_args: list[str] | None = None, user: int | None = None,
                 env: dict[str, str] | None = None, preexec: Callable[[], None] | None = None,
                 python: str | None = None) -> None:
        self._dir = None if socket_path else tempfile.mkdtemp(prefix="lazyllm-sbx-")
        self.socket_path = socket_path or os.path.join(self._dir, "sandbox.sock")
        self.args = list(extra_args or [])
        if timeout is not None:
            self.args += ["--timeout", str(timeout)]
        if memory_mb is not None:
            self.args += ["--memory-mb", str(memory_mb)]
        self.user, self.env, self.preexec = user, env, preexec
        self.python = python or sys.executable
        self.proc: subprocess.Popen | None = None

    def _preexec(self) -> Callable[[], None] | None:
        if self.user is None:
            return self.preexec
        uid, extra = self.user, self.preexec

        def run() -> None:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            if extra is not None:
                extra()
        return run

    def start(self, wait: float = 20.0) -> LocalWorker:
        cmd = [self.python, "-m", "lazyllm_images.runtime.graph.sandbox", "--socket", self.socket_path, *self.args]
        if self.user is not None and self._dir:
            os.chown(self._dir, self.user, -1)
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, preexec_fn=self._preexec(),
                                     env=self.env)
        client = SandboxClient(self.socket_path, connect_timeout=1.0)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SandboxUnavailable(f"the sandbox worker exited with status {self.proc.returncode}")
            if os.path.exists(self.socket_path) and client.ping():
                return self
            time.sleep(0.05)
        self.stop()
        raise SandboxUnavailable(f"the sandbox worker did not start within {wait:g} s")

    def client(self) -> SandboxClient:
        return SandboxClient(self.socket_path)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._dir:
            shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> LocalWorker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
