"""Bind, start the child, serve with uvicorn, announce the URLs, stop cleanly on SIGTERM/SIGINT or a fatal exit.

Order: bind the socket first (a taken port fails before anything is started), then start and initialize the MCP
server, then serve; the ``listening`` line is printed once uvicorn accepts connections, so a line on stdout means
ready. Signals are handled here (not by uvicorn, which would re-raise them after shutdown): the first one ends all
sessions and stops uvicorn; the child's process group is gone before the process exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import uvicorn
from starlette.types import ASGIApp

from .bridge import Bridge
from .config import BridgeConfig
from ..netaddr import reachable_as
from .security import Policy, default_allowed_hosts, format_host

log = logging.getLogger("lazyllm.mcp_bridge")

GRACEFUL_SHUTDOWN = 1       # seconds uvicorn waits for open responses after a stop request


class BridgeServer(uvicorn.Server):
    """uvicorn, minus its own signal handling, plus a callback once it accepts connections."""

    def __init__(self, config: uvicorn.Config, on_started: Callable[[], None]) -> None:
        super().__init__(config)
        self.on_started = on_started

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if not self.should_exit:
            self.on_started()


class BindError(Exception):
    pass


def bind_socket(host: str, port: int) -> socket.socket:
    """Bind HOST:PORT exactly as asked (PORT 0: a free one)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise BindError(f"cannot resolve --host {host!r}: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise BindError(f"cannot listen on {format_host(host, port)}: {exc.strerror}") from None
    sock.setblocking(False)
    return sock


def urls(host: str, port: int) -> dict[str, str]:
    base = f"http://{format_host(host, port)}"
    return {"sse": f"{base}/sse", "mcp": f"{base}/mcp"}


def announce(host: str, port: int, url_file: str | None) -> None:
    """The one stdout line (and the URL file) that tells a launcher the bridge is ready."""
    found = urls(host, port)
    if url_file:
        tmp = f"{url_file}.tmp{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(found, fh)
        os.replace(tmp, url_file)
    sys.stdout.write(f"lazyllm-mcp-bridge listening sse={found['sse']} mcp={found['mcp']}\n")
    sys.stdout.flush()


def uvicorn_config(app: ASGIApp, log_level: str) -> uvicorn.Config:
    return uvicorn.Config(app, lifespan="off", log_config=None, log_level=log_level,
                          access_log=log_level == "debug", timeout_graceful_shutdown=GRACEFUL_SHUTDOWN,
                          server_header=False)


async def run_bridge(config: BridgeConfig, secret_env: dict[str, str], token: str | None) -> int:
    """Run until stopped; the exit status (0 after a signal, 1 when the MCP server died without --restart)."""
    from .app import build_app

    sock = bind_socket(config.host, config.port)
    port = sock.getsockname()[1]
    stopper = _Stopper()
    bridge = Bridge(config, secret_env, on_fatal=lambda why: stopper.stop())
    stopper.install(asyncio.get_running_loop(), bridge)
    try:
        await stopper.guard(bridge.start())
        own = [format_host(h, port) for h in reachable_as(config.host)]     # empty for a loopback bind
        hosts = default_allowed_hosts(config.host, port, [*config.allowed_hosts, *own])
        log.debug("Host headers accepted: %s", ", ".join(hosts))
        policy = Policy.build(hosts, config.allow_origins, token, config.max_body_bytes)
        app, http = build_app(bridge, policy)
        server = BridgeServer(uvicorn_config(app, config.log_level),
                              on_started=lambda: announce(config.host, port, config.url_file))
        stopper.server = server
        async with http.run():
            if not stopper.stopping:
                await server.serve(sockets=[sock])
    except asyncio.CancelledError:
        return 0
    finally:
        await asyncio.shield(stopper.closing or bridge.stop())
        sock.close()
    return bridge.exit_code


class _Stopper:
    """First SIGTERM/SIGINT (or a fatal child exit): end sessions, stop uvicorn; later signals change nothing."""

    def __init__(self) -> None:
        self.server: BridgeServer | None = None
        self.bridge: Bridge | None = None
        self.stopping = False
        self.closing: asyncio.Future[None] | None = None
        self._guarded: asyncio.Task[None] | None = None

    def install(self, loop: asyncio.AbstractEventLoop, bridge: Bridge) -> None:
        self.bridge = bridge
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop, sig)

    async def guard(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run a start-up step that a signal may cancel."""
        self._guarded = asyncio.ensure_future(coro)
        try:
            await self._guarded
        finally:
            self._guarded = None

    def stop(self, sig: int | None = None) -> None:
        if self.stopping:
            return
        self.stopping = True
        if sig is not None:
            log.info("received %s; stopping", signal.Signals(sig).name)
        if self._guarded is not None:
            self._guarded.cancel()
        if self.bridge is not None:
            self.bridge.drain("the MCP bridge is shutting down")
            # children stop while uvicorn winds down (both well inside 3 s)
            self.closing = asyncio.ensure_future(self.bridge.stop())
        if self.server is not None:
            self.server.handle_exit(sig or signal.SIGTERM, None)
