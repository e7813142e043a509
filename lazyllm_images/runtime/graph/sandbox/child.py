"""What runs in the forked child: confine the process, compile the code as upstream does, call it, write the
result (one length-prefixed JSON message) to the result pipe, and ``_exit``. Grandchildren (a Code node that
forks) never write: only the process that started the call does."""

from __future__ import annotations

import ast
import builtins
import inspect
import io
import json
import linecache
import os
import re
import signal
import struct
import sys
import tempfile
import traceback
from dataclasses import dataclass
from typing import Any

from .. import values
from . import confine

DEF_RE = re.compile(r"def\s+(\w+)\s*\(")
CODE_FILE = "<code>"
MAX_OUTPUT = 64 * 1024
_traceback_warmup = traceback.format_exception          # imported before confinement (Landlock)


@dataclass
class Policy:
    """How the worker confines its children (decided once at start, see ``server.Worker``)."""
    uid: int | None = None         # drop to this uid/gid (when the worker is root)
    gid: int | None = None
    capless_root: bool = False     # root worker whose sandbox uid cannot read Python: stay uid 0, no capabilities
    netns: bool = False            # unshare(CLONE_NEWNET) before dropping privileges
    mountns: bool = False          # no Landlock: a private mount namespace with everything read-only but scratch
    landlock_abi: int = 0
    seccomp: bool = False
    nproc_base: int = 0            # processes the uid already has (non-root: RLIMIT_NPROC counts them too)
    worker_pid: int = 0


class ToolArgumentsError(Exception):
    pass


def confine_child(policy: Policy, limits: confine.Limits, scratch: str, keep_fd: int) -> None:
    os.setsid()
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.closerange(3, keep_fd)
    os.closerange(keep_fd + 1, 65536)
    os.chdir(scratch)
    os.environ.clear()
    os.environ.update(PATH="/usr/local/bin:/usr/bin:/bin", HOME=scratch, TMPDIR=scratch, LANG="C.UTF-8",
                      OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1")
    tempfile.tempdir = scratch             # the worker's cached temp folder is not writable from here
    if policy.netns:
        confine.unshare_net()
    if policy.mountns:
        confine.readonly_mounts(scratch)
        os.chdir(scratch)                  # the old working folder still points into the read-only mount
    confine.set_limits(limits, policy.nproc_base)
    if policy.capless_root:
        confine.drop_capabilities()
    elif policy.uid is not None:
        confine.drop_privileges(policy.uid, policy.gid if policy.gid is not None else policy.uid)
    confine.no_new_privs()
    if policy.landlock_abi:
        confine.landlock(scratch, policy.landlock_abi)
    if policy.seccomp:
        confine.seccomp((policy.worker_pid, -policy.worker_pid) if policy.worker_pid else (),
                        strict_kill=policy.capless_root and policy.landlock_abi < 6)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    sys.stdout = io.StringIO()
    sys.stderr = io.StringIO()


def compile_entry(code: str, variables: dict | None) -> Any:
    """upstream ``compile_func``: the first ``def NAME(`` in the text is the entry point; with ``vars_for_code``
    the module's globals are that dict and its top-level names land in a separate locals dict (upstream's bug)."""
    match = DEF_RE.search(code)
    if match is None:
        raise AttributeError("'NoneType' object has no attribute 'group'")
    module = ast.parse(code, CODE_FILE)
    linecache.cache[CODE_FILE] = (len(code), None, code.splitlines(True), CODE_FILE)
    local: dict = {}
    exec(compile(module, CODE_FILE, "exec", dont_inherit=True), variables if variables is not None else local, local)
    return local.pop(match.group(1))


_TRUE = ("1", "on", "t", "true", "y", "yes")
_FALSE = ("0", "off", "f", "false", "n", "no")


def _coerce(value: Any, annotation: Any) -> Any:
    """pydantic's lax conversions for the simple annotations (what upstream validates tool arguments with)."""
    if annotation is int:
        if isinstance(value, (bool, int)):
            return int(value)
        if isinstance(value, float):
            if value.is_integer():
                return int(value)
            raise ValueError("Input should be a valid integer, got a number with a fractional part")
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                raise ValueError("Input should be a valid integer, unable to parse string as an integer") from None
        raise ValueError("Input should be a valid integer")
    if annotation is float:
        if isinstance(value, (bool, int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value.strip())
            except ValueError:
                raise ValueError("Input should be a valid number, unable to parse string as a number") from None
        raise ValueError("Input should be a valid number")
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, (int, float)) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
            return value.strip().lower() in _TRUE
        raise ValueError("Input should be a valid boolean" + (", unable to interpret input"
                                                              if isinstance(value, str) else ""))
    if annotation is str and not isinstance(value, str):
        raise ValueError("Input should be a valid string")
    return value


def bind_tool_arguments(func: Any, arguments: Any, name: str) -> dict:
    """A tool call's ``arguments`` (object or JSON text) checked against the function's parameters as upstream's
    ToolManager does with its pydantic schema: required fields, lax conversions, no extra fields."""
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except ValueError:
            arguments = {}
    if arguments is None:
        arguments = {}
    if not isinstance(arguments, dict):
        raise ToolArgumentsError(f"Invalid arguments: Tool [{name}] arguments must be a JSON object, got "
                                 f"{type(arguments).__name__}.")
    params = inspect.signature(func).parameters
    out, problems = {}, []
    for pname, p in params.items():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if pname in arguments:
            try:
                out[pname] = _coerce(arguments[pname], p.annotation)
            except ValueError as e:
                problems.append(f"{pname}: {e}")
        elif p.default is p.empty:
            problems.append(f"{pname}: Field required")
    if not any(p.kind == p.VAR_KEYWORD for p in params.values()):
        problems += [f"{k}: Extra inputs are not permitted" for k in arguments if k not in params]
    if problems:
        raise ToolArgumentsError("Invalid arguments: " + "; ".join(problems))
    return out


def run_call(request: dict) -> dict:
    builtins.package = values.Package          # upstream injects `package` as a builtin
    func = compile_entry(request["code"], request.get("vars"))
    args = [values.decode(a) for a in request.get("args", [])]
    kwargs = {k: values.decode(v) for k, v in (request.get("kwargs") or {}).items()}
    if request.get("mode") == "tool":
        kwargs = bind_tool_arguments(func, args[0] if args else {}, (request.get("node") or {}).get("name", ""))
        args = []
    result = func(*args, **kwargs)
    return {"ok": True, "value": values.encode(result)}


def error_reply(exc: BaseException, reason: str = "exception") -> dict:
    tb = exc.__traceback__
    frames = [f for f in traceback.extract_tb(tb) if f.filename == CODE_FILE] if tb else []
    exc.__traceback__ = None
    text = "".join(traceback.format_list(frames)) if frames else ""
    message = str(exc)
    if isinstance(exc, MemoryError) and not message:
        message = "the code ran out of memory (the sandbox memory limit)"
    if isinstance(exc, ToolArgumentsError):
        reason = "invalid_arguments"
    return {"ok": False, "error": {"type": type(exc).__name__, "message": message, "reason": reason,
                                   "traceback": text}}


def child_main(request: dict, policy: Policy, limits: confine.Limits, scratch: str, wfd: int) -> None:
    """Never returns. ``wfd``: the result pipe."""
    me = os.getpid()
    try:
        confine_child(policy, limits, scratch, wfd)
    except BaseException as e:                       # the sandbox could not be set up: refuse to run
        _write(wfd, {"ok": False, "error": {"type": type(e).__name__, "message": f"sandbox setup failed: {e}",
                                            "reason": "internal", "traceback": ""}})
        os._exit(0)
    try:
        reply = run_call(request)
    except values.UnencodableValue as e:
        reply = error_reply(e, "unencodable")
    except BaseException as e:
        reply = error_reply(e)
    if os.getpid() != me:                            # a fork of the user's code got here: say nothing
        os._exit(0)
    reply["stdout"] = sys.stdout.getvalue()[-MAX_OUTPUT:] if isinstance(sys.stdout, io.StringIO) else ""
    try:
        _write(wfd, reply)
    except BaseException:
        os._exit(3)
    os._exit(0)


def _write(fd: int, reply: dict) -> None:
    try:
        data = json.dumps(reply, allow_nan=True).encode()
    except (TypeError, ValueError) as e:
        data = json.dumps(error_reply(e, "unencodable")).encode()
    view = memoryview(struct.pack(">I", len(data)) + data)
    while view:
        n = os.write(fd, view)
        view = view[n:]
