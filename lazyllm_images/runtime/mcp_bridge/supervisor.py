"""Keeps one MCP server child running for the sessions attached to it: start, health, restart with backoff.

Shared mode has one supervisor for the whole bridge; ``--isolate`` has one per client session. When the child
exits, every call in flight gets an error result at once; then either the child is restarted after an exponential
backoff (``--restart on-failure``; sessions carry on, subscriptions and log level restored) or ``on_fatal`` runs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any
from collections.abc import Callable, Mapping, Sequence

from .child import Child, ChildStartError
from .hub import Downstream, Hub

log = logging.getLogger("lazyllm.mcp_bridge.supervisor")

BACKOFF_START = 0.5      # seconds before the first restart
BACKOFF_CAP = 30.0       # longest wait between restarts
STABLE_AFTER = 30.0      # a child that ran this long resets the backoff


def backoff_delay(failures: int) -> float:
    """Seconds to wait before restart number FAILURES (1-based) of a row: 0.5, 1, 2, 4, ... capped at 30."""
    return min(BACKOFF_CAP, BACKOFF_START * 2 ** max(0, failures - 1))


class Supervisor:
    def __init__(self, argv: Sequence[str], env: Mapping[str, str], init_params: dict[str, Any], restart: bool,
                 on_fatal: Callable[[str], None]) -> None:
        self.argv = list(argv)
        self.env = dict(env)
        self.init_params = init_params
        self.restart = restart
        self.on_fatal = on_fatal
        self.hub: Hub | None = None
        self.state = "starting"
        self.restarts = 0
        self.sessions: dict[Downstream, None] = {}
        self._failures = 0
        self._started_at = 0.0
        self._restarter: asyncio.Task[None] | None = None
        self._closed = False

    async def start(self) -> dict[str, Any]:
        """Start the child and initialize it; raises ChildStartError."""
        hub = Hub(Child(self.argv, self.env), self._on_exit)
        result = await hub.start(self.init_params)
        self.hub = hub
        self.state = "ready"
        self._started_at = time.monotonic()
        for session in self.sessions:
            hub.attach(session)
        return result

    @property
    def ready(self) -> bool:
        return self.hub is not None and self.hub.alive

    @property
    def init_result(self) -> dict[str, Any]:
        return self.hub.init_result if self.hub else {}

    def attach(self, session: Downstream) -> None:
        self.sessions[session] = None
        if self.ready:
            assert self.hub
            self.hub.attach(session)

    def detach(self, session: Downstream) -> None:
        self.sessions.pop(session, None)
        if self.ready:
            assert self.hub
            self.hub.detach(session)

    def _on_exit(self, hub: Hub, code: int | None) -> None:
        if self._closed or hub is not self.hub:
            return
        log.error("the MCP server (pid %s) exited with code %s", hub.child.pid, code)
        if time.monotonic() - self._started_at >= STABLE_AFTER:
            self._failures = 0
        if not self.restart:
            self.state = "failed"
            self.on_fatal(f"the MCP server exited with code {code}")
            return
        self.state = "restarting"
        self._restarter = asyncio.create_task(self._restart_loop(), name="mcp-restart")

    async def _restart_loop(self) -> None:
        while not self._closed:
            self._failures += 1
            delay = backoff_delay(self._failures)
            log.warning("restarting the MCP server in %.1f s (attempt %d)", delay, self._failures)
            await asyncio.sleep(delay)
            if self._closed:
                return
            try:
                await self.start()
            except ChildStartError as exc:
                log.error("restart failed: %s", exc)
                continue
            self.restarts += 1
            log.warning("the MCP server is back (pid %s)", self.hub.child.pid if self.hub else None)
            return

    async def close(self) -> None:
        self._closed = True
        self.state = "stopped"
        if self._restarter and not self._restarter.done():
            self._restarter.cancel()
        if self.hub is not None:
            await self.hub.close()

    def health(self) -> dict[str, Any]:
        hub = self.hub
        info = self.init_result.get("serverInfo") or {}
        return {"state": self.state, "child_pid": hub.child.pid if hub and hub.alive else None,
                "restarts": self.restarts, "server": info.get("name"), "server_version": info.get("version")}
