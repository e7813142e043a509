"""The stdio MCP server process: started from an argv list (never a shell) in its own process group.

Same shutdown as the SDK's ``stdio_client`` (close stdin, wait, then SIGTERM/SIGKILL to the process group), but
the group is signalled even when the child has already exited (its own children are still in it), and the pid and
exit status are known (for ``/healthz``) and the child's stderr goes through the bridge's redacting stderr.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import time
from collections.abc import Mapping, Sequence

log = logging.getLogger("lazyllm.mcp_bridge.child")

MAX_LINE = 64 * 1024 * 1024        # one JSON-RPC message per line; larger lines are dropped with a log line
HIGH_WATER = 1024 * 1024           # drain the child's stdin once this much is buffered
STDIN_GRACE = 0.5                  # seconds the child gets to exit after its stdin closes
TERM_GRACE = 1.0                   # then SIGTERM to the group; SIGKILL after this


class ChildStartError(Exception):
    """The MCP server command could not be started."""


def child_environment(extra: Mapping[str, str], pass_environment: bool) -> dict[str, str]:
    """The child's env: the SDK's safe default set (or all of ours), with EXTRA (the ``-e`` values) on top."""
    if pass_environment:
        base = dict(os.environ)
    else:
        from mcp.client.stdio import get_default_environment
        base = get_default_environment()
    return {**base, **extra}


class Child:
    """One running MCP server process with line-oriented stdio."""

    def __init__(self, argv: Sequence[str], env: Mapping[str, str]) -> None:
        self.argv = list(argv)
        self.env = dict(env)
        self.proc: asyncio.subprocess.Process | None = None
        self._stderr_task: asyncio.Task[None] | None = None
        self._drain_lock = asyncio.Lock()

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode if self.proc else None

    async def start(self) -> None:
        try:
            self.proc = await asyncio.create_subprocess_exec(
                *self.argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, env=self.env, start_new_session=True, limit=MAX_LINE)
        except OSError as exc:
            raise ChildStartError(f"cannot start {self.argv[0]!r}: {exc.strerror or exc}") from None
        self._stderr_task = asyncio.create_task(self._relay_stderr(), name=f"child-{self.pid}-stderr")
        log.info("started MCP server pid %s: %s", self.pid, " ".join(self.argv))

    async def _relay_stderr(self) -> None:
        assert self.proc and self.proc.stderr
        prefix = f"[mcp-server {self.pid}] "
        while True:
            try:
                line = await self.proc.stderr.readline()
            except ValueError:          # an over-long line: skip it
                continue
            if not line:
                return
            sys.stderr.write(prefix + line.decode("utf-8", "replace").rstrip("\n") + "\n")
            sys.stderr.flush()

    async def read_line(self) -> bytes | None:
        """The next stdout line (None at EOF). Over-long lines are dropped."""
        assert self.proc and self.proc.stdout
        while True:
            try:
                line = await self.proc.stdout.readline()
            except ValueError:
                log.error("MCP server %s wrote a line over %d bytes; dropped", self.pid, MAX_LINE)
                continue
            except (ConnectionError, OSError):
                return None
            return line or None

    def write(self, data: bytes) -> bool:
        """Queue DATA for the child's stdin without waiting; False once stdin is gone."""
        stdin = self.proc.stdin if self.proc else None
        if stdin is None or stdin.is_closing():
            return False
        stdin.write(data)
        return True

    @property
    def congested(self) -> bool:
        """More than the high-water mark is waiting to be written to the child's stdin."""
        stdin = self.proc.stdin if self.proc else None
        return stdin is not None and stdin.transport.get_write_buffer_size() >= HIGH_WATER

    async def drain(self) -> None:
        """Wait while the child's stdin buffer is over the high-water mark (backpressure)."""
        stdin = self.proc.stdin if self.proc else None
        if stdin is None or stdin.transport.get_write_buffer_size() < HIGH_WATER:
            return
        async with self._drain_lock:
            try:
                await stdin.drain()
            except (ConnectionError, OSError):
                pass

    async def wait(self) -> int:
        assert self.proc
        return await self.proc.wait()

    async def stop(self) -> int | None:
        """Close stdin, give the child STDIN_GRACE, then SIGTERM/SIGKILL its whole process group."""
        if self.proc is None:
            return None
        if self.proc.stdin and not self.proc.stdin.is_closing():
            self.proc.stdin.close()
        try:
            await asyncio.wait_for(self.proc.wait(), STDIN_GRACE)
        except asyncio.TimeoutError:
            pass
        await self._kill_group()
        if self._stderr_task:
            try:
                await asyncio.wait_for(self._stderr_task, 0.5)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                self._stderr_task.cancel()
        return self.proc.returncode

    async def _kill_group(self) -> None:
        """SIGTERM, then SIGKILL, to the child's whole process group (its pgid is its pid: own session).

        Done by pgid even when the child itself has already exited: what it started (``npx`` -> ``node``, a
        ``sleep`` of its own) is still in the group. The SDK's ``terminate_posix_process_tree`` looks the group up
        from the child's pid, which fails once the child is gone, and so leaves such processes running.
        """
        assert self.proc
        pgid = self.proc.pid
        if _group_alive(pgid):
            _signal_group(pgid, signal.SIGTERM)
            deadline = time.monotonic() + TERM_GRACE
            while _group_alive(pgid) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            if _group_alive(pgid):
                log.warning("MCP server group %s ignored SIGTERM; sending SIGKILL", pgid)
                _signal_group(pgid, signal.SIGKILL)
        if self.proc.returncode is None:
            await self.proc.wait()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass
