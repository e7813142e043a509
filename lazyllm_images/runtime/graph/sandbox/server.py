"""The sandbox worker: a unix-socket server that runs each Code call in a fresh, confined, forked child.

One thread per connection; each ``call`` forks a child (``child.child_main``) that confines itself, runs the code
and writes its reply to a pipe. The worker waits with a wall-clock deadline, kills the child's whole process
group when done (leftover forks included), and answers. A child that is killed, crashes or overruns becomes a
typed error; the worker itself keeps serving.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pwd
import select
import shutil
import signal
import site
import socket
import socketserver
import struct
import sys
import tempfile
import threading
import time
import warnings

from . import confine, protocol
from .child import Policy, child_main

log = logging.getLogger("lazyllm.graph.sandbox")
DEFAULT_UID = 65534              # "nobody": root workers run code as this uid/gid


def _count_tasks(uid: int) -> int:
    """Processes and threads owned by ``uid`` (what RLIMIT_NPROC counts)."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as f:
                fields = dict(line.split(":", 1) for line in f if ":" in line)
        except OSError:
            continue
        if int(fields.get("Uid", "-1").split()[0]) == uid:
            total += int(fields.get("Threads", "1").strip() or 1)
    return total


def make_policy(uid: int | None = None, landlock: bool = True) -> Policy:
    """Decide the confinement layers once, from what this host allows."""
    policy = Policy(worker_pid=os.getpid(), landlock_abi=confine.landlock_abi() if landlock else 0,
                    seccomp=confine.seccomp_supported())
    if os.geteuid() != 0:
        policy.nproc_base = _count_tasks(os.getuid())
        return policy
    policy.netns = confine.probe_netns()
    policy.mountns = not policy.landlock_abi and confine.probe_mountns()
    python_dirs = {sys.base_prefix, sys.prefix, *site.getsitepackages()}
    if uid is None and policy.landlock_abi and not all(confine.readable_by_others(d) for d in python_dirs
                                                         if os.path.isdir(d)):
        policy.capless_root = True        # e.g. pyenv under /root: uid 65534 could not import the stdlib
        log.warning("the Python installation is not readable by uid %d: sandboxed code runs as root without "
                    "capabilities, confined by Landlock and seccomp", DEFAULT_UID)
        return policy
    target = DEFAULT_UID if uid is None else uid
    try:
        gid = pwd.getpwuid(target).pw_gid
    except KeyError:
        gid = target
    if not confine.probe(lambda: confine.drop_privileges(target, gid)):
        policy.capless_root = True        # root without CAP_SETUID (e.g. a container with dropped capabilities)
        log.warning("cannot switch to uid %d here: sandboxed code runs as root without capabilities", target)
        return policy
    policy.uid, policy.gid = target, gid
    policy.nproc_base = _count_tasks(policy.uid)
    return policy


PRELOAD = ("array", "ast", "base64", "bisect", "calendar", "cmath", "collections", "copy", "csv", "dataclasses",
           "datetime", "decimal", "difflib", "enum", "fnmatch", "fractions", "functools", "glob", "gzip", "hashlib",
           "heapq", "hmac", "html", "inspect", "itertools", "json", "math", "operator", "pathlib", "pprint", "queue",
           "random", "re", "secrets", "shutil", "socket", "statistics", "string", "struct", "subprocess",
           "tempfile", "textwrap", "threading", "time", "traceback", "typing", "unicodedata", "urllib.parse", "uuid",
           "zlib", "zoneinfo")


def preload() -> None:
    """Import common standard modules once: every child inherits them (faster calls, and available even where the
    sandbox uid cannot read the Python installation)."""
    import importlib
    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except ImportError:
            pass


class Worker:
    def __init__(self, socket_path: str, *, limits: confine.Limits | None = None, scratch: str | None = None,
                 uid: int | None = None, max_parallel: int | None = None, socket_mode: int = 0o600,
                 landlock: bool = True) -> None:
        self.socket_path, self.socket_mode = socket_path, socket_mode
        self.limits = limits or confine.Limits()
        self.policy = make_policy(uid, landlock)
        confine.not_dumpable()            # /proc/<worker>/environ, mem, ... out of reach of same-uid code
        preload()
        self._own_scratch = scratch is None
        self.scratch_root = scratch or tempfile.mkdtemp(prefix="lazyllm-sandbox-")
        os.makedirs(self.scratch_root, exist_ok=True)
        os.chmod(self.scratch_root, 0o711)
        self._slots = threading.BoundedSemaphore(max_parallel or max(2, os.cpu_count() or 2))
        self._lock = threading.Lock()
        self.server: socketserver.ThreadingUnixStreamServer | None = None

    # ------------------------------------------------------------------------------------------------ serve
    def info(self) -> dict:
        p = self.policy
        return {"pid": os.getpid(), "uid": os.getuid(), "code_uid": p.uid if p.uid is not None else os.getuid(),
                "limits": vars(self.limits), "scratch": self.scratch_root,
                "isolation": {"network": "namespace" if p.netns else "landlock" if p.landlock_abi >= 4
                              else "seccomp" if p.seccomp else "container",
                              "socket_syscall": "denied" if p.seccomp else "allowed",
                              "filesystem": f"landlock (ABI {p.landlock_abi})" if p.landlock_abi
                              else "read-only mount namespace" if p.mountns
                              else "uid" if p.uid is not None else "container",
                              "privileges": "uid dropped" if p.uid is not None else "root without capabilities"
                              if p.capless_root else "unprivileged worker",
                              "processes": "threads only" if p.seccomp else f"RLIMIT_NPROC {self.limits.nproc}"}}

    def serve_forever(self) -> None:
        worker = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                worker.handle_connection(self.request)

        if os.path.exists(self.socket_path):
            os.unlink(self.socket_path)
        socketserver.ThreadingUnixStreamServer.daemon_threads = True
        umask = os.umask(0o777 & ~self.socket_mode)          # no window in which others could connect
        try:
            self.server = socketserver.ThreadingUnixStreamServer(self.socket_path, Handler)
        finally:
            os.umask(umask)
        os.chmod(self.socket_path, self.socket_mode)
        log.info("sandbox worker on %s: %s", self.socket_path, self.info()["isolation"])
        try:
            self.server.serve_forever(poll_interval=0.2)
        finally:
            self.close()

    def shutdown(self) -> None:
        if self.server is not None:
            threading.Thread(target=self.server.shutdown, daemon=True).start()

    def close(self) -> None:
        if self.server is not None:
            self.server.server_close()
        for path in (self.socket_path,):
            try:
                os.unlink(path)
            except OSError:
                pass
        if self._own_scratch:
            shutil.rmtree(self.scratch_root, ignore_errors=True)

    def handle_connection(self, sock: socket.socket) -> None:
        while True:
            try:
                request = protocol.recv(sock)
            except (protocol.ProtocolError, OSError, ValueError):
                return
            try:
                reply = self.dispatch(request)
            except Exception as e:
                log.exception("sandbox request failed")
                reply = {"ok": False, "error": {"type": type(e).__name__, "message": str(e), "reason": "internal"}}
            try:
                protocol.send(sock, reply)
            except (protocol.ProtocolError, OSError):
                return

    def dispatch(self, request: dict) -> dict:
        op = request.get("op")
        if op == "call":
            with self._slots:
                return self.call(request)
        if op == "info":
            return {"ok": True, "info": self.info()}
        if op == "release":
            shutil.rmtree(self._scratch_path(str(request.get("session", ""))), ignore_errors=True)
            return {"ok": True}
        return {"ok": False, "error": {"type": "ValueError", "message": f"unknown op {op!r}", "reason": "internal"}}

    # ------------------------------------------------------------------------------------------------- calls
    def _scratch_path(self, session: str) -> str:
        return os.path.join(self.scratch_root, hashlib.sha256(session.encode()).hexdigest()[:24])

    def scratch_for(self, session: str) -> str:
        path = self._scratch_path(session)
        with self._lock:
            if not os.path.isdir(path):
                os.makedirs(path, mode=0o700)
                if self.policy.uid is not None:
                    os.chown(path, self.policy.uid, self.policy.gid if self.policy.gid is not None else -1)
        return path

    def call(self, request: dict) -> dict:
        if not isinstance(request.get("code"), str):
            raise ValueError("a call needs code")
        limits = self.limits.clamp(request.get("limits"))
        scratch = self.scratch_for(str(request.get("session") or "default"))
        rfd, wfd = os.pipe()
        started = time.monotonic()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)      # fork with threads: the child execs no lock
            pid = os.fork()
        if pid == 0:
            os.close(rfd)
            child_main(request, self.policy, limits, scratch, wfd)
        os.close(wfd)
        try:
            reply = self._wait(pid, rfd, started + limits.timeout, limits)
        finally:
            os.close(rfd)
        reply["elapsed"] = round(time.monotonic() - started, 6)
        return reply

    def _wait(self, pid: int, rfd: int, deadline: float, limits: confine.Limits) -> dict:
        buf, need, status = bytearray(), None, None
        poller = select.poll()
        poller.register(rfd, select.POLLIN | select.POLLHUP)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                _kill(pid, reaped=status is not None)
                return _fail("TimeoutError", f"the code ran longer than the {limits.timeout:g} s time limit",
                             "timeout")
            ready = poller.poll(int(min(remaining, 0.05) * 1000) + 1)
            if ready:
                chunk = os.read(rfd, 1 << 20)
                buf += chunk
                if need is None and len(buf) >= 4:
                    (need,) = struct.unpack(">I", buf[:4])
                    if need > protocol.MAX_MESSAGE:
                        _kill(pid, reaped=status is not None)
                        return _fail("ValueError", "the result is too large to return", "too_large")
                if need is not None and len(buf) >= 4 + need:
                    _kill(pid, reaped=status is not None)
                    return _decode(bytes(buf[4:4 + need]))
                if not chunk:
                    break
            if status is None:
                done, status_now = os.waitpid(pid, os.WNOHANG)
                if done:
                    status = status_now
                    if not ready:
                        break
        late = _kill(pid, reaped=status is not None)
        return _death(status if status is not None else late, limits)


def _kill(pid: int, reaped: bool = False) -> int | None:
    """Kill the child and its process group (the child leads its own session; forks it made stay in it).
    Returns the child's wait status when this call reaped it."""
    for kill in ((os.killpg,) if reaped else (os.kill, os.killpg)):
        try:
            kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    if reaped:
        return None
    try:
        return os.waitpid(pid, 0)[1]
    except ChildProcessError:
        return None


def _decode(data: bytes) -> dict:
    try:
        reply = json.loads(data.decode("utf-8"))
    except ValueError:
        return _fail("RuntimeError", "the sandboxed code sent an unreadable result", "internal")
    return reply


def _fail(type_: str, message: str, reason: str) -> dict:
    return {"ok": False, "error": {"type": type_, "message": message, "reason": reason, "traceback": ""}}


def _death(status: int | None, limits: confine.Limits) -> dict:
    if status is not None and os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        if sig == signal.SIGXCPU:
            return _fail("TimeoutError", f"the code used more than its CPU time limit ({int(limits.timeout) + 2} s)",
                         "cpu")
        if sig == signal.SIGKILL:
            return _fail("MemoryError", "the code was killed (out of memory or over a sandbox limit)", "killed")
        return _fail("RuntimeError", f"the code crashed ({signal.Signals(sig).name})", "killed")
    code = os.WEXITSTATUS(status) if status is not None else None
    return _fail("RuntimeError", f"the code exited without a result (exit status {code})", "killed")
