"""The worker's wire protocol: each message is a 4-byte big-endian length, then that many bytes of UTF-8 JSON.

Requests (``op``):
- ``call``: ``{"op": "call", "code": str, "vars": obj|null, "args": [wire], "kwargs": {name: wire},
  "node": {"id", "name"}, "limits": {"timeout", "memory_mb", "nproc", "fsize_mb", "nofile"}, "session": str,
  "mode": "call"|"tool"}``; ``mode: tool`` takes one argument, a tool call's ``arguments`` object, checked against
  the function's parameters. Reply: ``{"ok": true, "value": wire, "stdout": str, "elapsed": s}`` or ``{"ok": false,
  "error": {"type", "message", "reason", "traceback"}}`` where ``reason`` is ``exception``, ``timeout``, ``cpu``,
  ``memory``, ``killed``, ``unencodable``, ``invalid_arguments``, ``too_large`` or ``internal``.
- ``info``: the worker's pid, uid, limits and which isolation layers this host gives.
- ``release``: ``{"op": "release", "session": str}`` removes that session's scratch folder.
Values use the wire form of ``graph.values`` (tuples, packages, sets, bytes tagged).
"""

from __future__ import annotations

import json
import socket
import struct

MAX_MESSAGE = 64 * 1024 * 1024


class ProtocolError(ConnectionError):
    pass


def send(sock: socket.socket, message: dict) -> None:
    data = json.dumps(message, allow_nan=True).encode("utf-8")
    if len(data) > MAX_MESSAGE:
        raise ProtocolError(f"message of {len(data)} bytes is over the {MAX_MESSAGE} byte limit")
    sock.sendall(struct.pack(">I", len(data)) + data)


def _read_exact(sock: socket.socket, n: int) -> bytes:
    chunks, got = [], 0
    while got < n:
        chunk = sock.recv(min(n - got, 1 << 20))
        if not chunk:
            raise ProtocolError("connection closed")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def recv(sock: socket.socket) -> dict:
    (size,) = struct.unpack(">I", _read_exact(sock, 4))
    if size > MAX_MESSAGE:
        raise ProtocolError(f"message of {size} bytes is over the {MAX_MESSAGE} byte limit")
    message = json.loads(_read_exact(sock, size).decode("utf-8"))
    if not isinstance(message, dict):
        raise ProtocolError("a message must be a JSON object")
    return message
