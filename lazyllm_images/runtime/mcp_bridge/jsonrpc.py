"""Small builders for the JSON-RPC messages the bridge itself writes, and the routing rules it applies.

Messages are the SDK's ``JSONRPCMessage`` models (the transports take and give those); everything else the bridge
relays is passed on as parsed, with only ids and progress tokens rewritten.
"""

from __future__ import annotations

from typing import Any, TypeVar
from collections.abc import Callable, Sequence

from mcp.shared.version import SUPPORTED_PROTOCOL_VERSIONS
from mcp.types import (CONNECTION_CLOSED, INTERNAL_ERROR, ErrorData, JSONRPCError, JSONRPCMessage,
                       JSONRPCNotification, JSONRPCRequest, JSONRPCResponse, RequestId)

S = TypeVar("S")

LOG_LEVELS = ("debug", "info", "notice", "warning", "error", "critical", "alert", "emergency")
# Server-to-client requests and the client capability each one needs.
NEEDS_CAPABILITY = {"sampling/createMessage": "sampling", "elicitation/create": "elicitation", "roots/list": "roots"}
# Client requests during which a server does not ask the client anything back.
PASSIVE_METHODS = frozenset({"ping", "tools/list", "prompts/list", "resources/list", "resources/templates/list",
                             "logging/setLevel", "resources/subscribe", "resources/unsubscribe",
                             "completion/complete"})


def encode(message: JSONRPCMessage) -> bytes:
    """One line of the stdio transport (the SDK's own serialisation)."""
    return message.model_dump_json(by_alias=True, exclude_none=True).encode() + b"\n"


def response(request_id: RequestId, result: dict[str, Any]) -> JSONRPCMessage:
    return JSONRPCMessage(JSONRPCResponse(jsonrpc="2.0", id=request_id, result=result))


def error(request_id: RequestId, code: int, message: str) -> JSONRPCMessage:
    return JSONRPCMessage(JSONRPCError(jsonrpc="2.0", id=request_id, error=ErrorData(code=code, message=message)))


def request(request_id: RequestId, method: str, params: dict[str, Any] | None = None) -> JSONRPCMessage:
    return JSONRPCMessage(JSONRPCRequest(jsonrpc="2.0", id=request_id, method=method, params=params))


def notification(method: str, params: dict[str, Any] | None = None) -> JSONRPCMessage:
    return JSONRPCMessage(JSONRPCNotification(jsonrpc="2.0", method=method, params=params))


def failure(request_id: RequestId, method: str, text: str, code: int = CONNECTION_CLOSED) -> JSONRPCMessage:
    """What a client gets when its request cannot be answered by the MCP server: a tool error result for
    ``tools/call`` (so an agent loop sees it as a failed tool), a JSON-RPC error for everything else."""
    if method == "tools/call":
        return response(request_id, {"content": [{"type": "text", "text": text}], "isError": True})
    return error(request_id, code, text)


def internal_error(request_id: RequestId, text: str) -> JSONRPCMessage:
    return error(request_id, INTERNAL_ERROR, text)


def negotiate_version(requested: Any, server_version: str) -> str:
    """The protocol version to answer a client with: what it asked for when we (and the SDK) know it and it is not
    newer than the MCP server's, else the server's own."""
    if isinstance(requested, str) and requested in SUPPORTED_PROTOCOL_VERSIONS and requested <= server_version:
        return requested
    return server_version


def level_passes(level: Any, threshold: str | None) -> bool:
    """Does a log message at LEVEL reach a client that asked for THRESHOLD (None: everything)?"""
    if threshold is None or level not in LOG_LEVELS or threshold not in LOG_LEVELS:
        return True
    return LOG_LEVELS.index(level) >= LOG_LEVELS.index(threshold)


def most_verbose(levels: Sequence[str | None]) -> str | None:
    known = [lv for lv in levels if lv in LOG_LEVELS]
    return min(known, key=LOG_LEVELS.index) if known else None


def pick_session(method: str, sessions: Sequence[S], active: Callable[[S], int],
                 capabilities: Callable[[S], dict[str, Any]]) -> tuple[S, str] | tuple[None, str]:
    """Which client session must answer a server-to-client request (sampling, elicitation, roots/list) of a
    shared MCP server. stdio carries no link between such a request and the client call that caused it, so:

    - exactly one session has a call in flight that may ask back  -> that one (if it has the capability);
    - none has, and exactly one session is able to answer          -> that one;
    - otherwise it is ambiguous: refuse rather than send one client's data to another (``--isolate`` fixes it).
    """
    need = NEEDS_CAPABILITY.get(method)

    def able(s: S) -> bool:
        return need is None or capabilities(s).get(need) is not None

    busy = [s for s in sessions if active(s)]
    if len(busy) == 1:
        if able(busy[0]):
            return busy[0], ""
        return None, f"the client that is waiting on this server does not support {need}"
    if not busy:
        candidates = [s for s in sessions if able(s)]
        if len(candidates) == 1:
            return candidates[0], ""
        if not candidates:
            return None, f"no connected client supports {need or method}"
    return None, (f"cannot tell which of the connected clients this {method} request is for; "
                  "start the bridge with --isolate (one MCP server per client) to relay it")
