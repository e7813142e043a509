"""The bridge's state: which child(ren) serve which sessions, and its health.

Shared mode (default): one supervisor, started before the port is announced; every session attaches to it.
``--isolate``: a probe child is started and initialized once at start-up (so a broken command fails fast), then
each session gets its own supervisor, started with the client's own initialize parameters and stopped with it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from collections.abc import Callable

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream

from mcp.types import LATEST_PROTOCOL_VERSION

from .child import ChildStartError, child_environment
from .config import BridgeConfig
from .mailbox import Mailbox
from .session import Outlet, Session
from .supervisor import Supervisor

log = logging.getLogger("lazyllm.mcp_bridge")

BRIDGE_NAME = "lazyllm-mcp-bridge"


def bridge_init_params() -> dict[str, Any]:
    """How the bridge introduces itself to a shared child: able to relay sampling, elicitation and roots."""
    return {"protocolVersion": LATEST_PROTOCOL_VERSION,
            "capabilities": {"sampling": {}, "elicitation": {"form": {}, "url": {}}, "roots": {"listChanged": True}},
            "clientInfo": {"name": BRIDGE_NAME, "version": "1"}}


class Bridge:
    def __init__(self, config: BridgeConfig, secret_env: dict[str, str], on_fatal: Callable[[str], None]) -> None:
        self.config = config
        self.argv = [config.command, *config.args]
        self.env = child_environment(secret_env, config.pass_environment)
        self.on_fatal = on_fatal
        self.shared: Supervisor | None = None
        self.isolated: dict[Session, Supervisor] = {}
        self.sessions: dict[Session, None] = {}
        self.probe: dict[str, Any] = {}
        self.exit_code = 0
        self.stopping = False

    def _supervisor(self, init_params: dict[str, Any], on_fatal: Callable[[str], None]) -> Supervisor:
        return Supervisor(self.argv, self.env, init_params, self.config.restart == "on-failure", on_fatal)

    async def start(self) -> None:
        """Start the shared child (or probe the command once in isolate mode); raises ChildStartError."""
        if not self.config.isolate:
            self.shared = self._supervisor(bridge_init_params(), self._fatal)
            await self.shared.start()
            return
        probe = self._supervisor(bridge_init_params(), lambda why: None)
        try:
            self.probe = await probe.start()
        finally:
            await probe.close()

    def _fatal(self, why: str) -> None:
        log.error("%s; stopping (use --restart on-failure to restart it instead)", why)
        self.exit_code = 1
        self.on_fatal(why)

    def drain(self, why: str) -> None:
        """The bridge is stopping: calls in flight get an error result now; sessions end once that is sent
        (streamable-HTTP ones on their open responses; their GET streams end)."""
        for sup in [self.shared, *self.isolated.values()]:
            if sup is not None and sup.hub is not None:
                sup.hub.fail_pending(why)
        for session in list(self.sessions):
            session.finish()

    async def stop(self) -> None:
        """Stop every child (their process groups included); no new one starts after this."""
        self.stopping = True
        sups = [s for s in [self.shared, *self.isolated.values()] if s is not None]
        await asyncio.gather(*(s.close() for s in sups))

    # ------------------------------------------------------------------ sessions

    def session(self, kind: str, read: MemoryObjectReceiveStream[Any] | Mailbox[Any], write: Outlet) -> Session:
        """A new client session (run it with ``await session.run()``). The streamable-HTTP transport times out
        its own idle sessions (no request in flight); SSE sessions are timed out by the session itself."""
        idle = self.config.idle_timeout or None
        session = Session(self, kind, read, write, idle if kind == "sse" else None)
        self.sessions[session] = None
        return session

    async def open(self, session: Session, init_params: dict[str, Any]) -> Supervisor:
        """SESSION initialized: attach it to the shared child, or start its own (isolate)."""
        if self.shared is not None:
            self.shared.attach(session)
            return self.shared
        if self.stopping:
            raise ChildStartError("the MCP bridge is shutting down")
        # A dead isolated child leaves its session open: further calls get "the MCP server has exited".
        sup = self._supervisor(init_params, lambda why: log.warning("%s (isolated session)", why))
        self.isolated[session] = sup
        try:
            await sup.start()
        except BaseException:
            self.isolated.pop(session, None)
            with anyio.CancelScope(shield=True):
                await sup.close()
            raise
        sup.attach(session)
        return sup

    async def release(self, session: Session) -> None:
        """SESSION ended (client gone, idle, or its isolated child died): nothing of it may remain."""
        self.sessions.pop(session, None)
        if session.supervisor is not None:
            session.supervisor.detach(session)
        sup = self.isolated.pop(session, None)
        if sup is not None:
            await sup.close()

    # ------------------------------------------------------------------ health

    def health(self) -> tuple[bool, dict[str, Any]]:
        counts = {"sse": 0, "mcp": 0}
        for s in self.sessions:
            counts[s.kind] = counts.get(s.kind, 0) + 1
        body: dict[str, Any] = {"mode": "isolate" if self.config.isolate else "shared", "sessions": counts}
        if self.shared is not None:
            body.update(self.shared.health())
            ok = self.shared.ready
        else:
            ok = bool(self.probe)
            info = self.probe.get("serverInfo") or {}
            body.update(state="ready" if ok else "starting", server=info.get("name"),
                        children=[s.hub.child.pid for s in self.isolated.values() if s.ready and s.hub])
        body["status"] = "ok" if ok else "unavailable"
        return ok, body
