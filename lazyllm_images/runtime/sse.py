"""Server-Sent Events from OpenAI-compatible servers, parsed once for the chat page and the RAG service (standard
library only): ``SSEDecoder`` turns lines into events, ``error_message`` finds the error in the shapes servers send
(``data: {"error": ...}`` in a stream, an error body), ``encode`` writes one ``data:`` event."""

from __future__ import annotations

import json
from typing import Any

DONE = "[DONE]"


class SSEDecoder:
    """Incremental parser: feed it lines, get each event's (event name, data) once its blank line arrives."""

    def __init__(self) -> None:
        self._data: list[str] = []
        self._event = ""

    def feed(self, line: str) -> tuple[str, str] | None:
        line = line.rstrip("\r\n")
        if not line:
            return self.flush()
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        return None

    def flush(self) -> tuple[str, str] | None:
        """The event being read, if any (at a blank line, and at the end of a stream without one)."""
        if not self._data:
            self._event = ""
            return None
        out = (self._event or "message", "\n".join(self._data))
        self._data, self._event = [], ""
        return out


def error_message(payload: Any) -> str | None:
    """The message of an error body in the shapes servers use (OpenAI, vLLM, FastAPI), or None."""
    if not isinstance(payload, dict):
        return None
    err = payload.get("error")
    if isinstance(err, dict) and err.get("message"):
        return str(err["message"])
    if isinstance(err, str) and err:
        return err
    if payload.get("object") == "error" and payload.get("message"):
        return str(payload["message"])
    detail = payload.get("detail")
    if detail:
        return detail if isinstance(detail, str) else json.dumps(detail, ensure_ascii=False)
    return None


def event_error(name: str, payload: Any) -> str | None:
    """The error an upstream event reports: an ``event: error``, or an error object without ``choices``."""
    message = error_message(payload)
    if name == "error":
        return message or json.dumps(payload, ensure_ascii=False)[:1000]
    if message is not None and not (isinstance(payload, dict) and payload.get("choices")):
        return message
    return None


def encode(event: Any) -> bytes:
    """One ``data:`` event (UTF-8 JSON, non-ASCII kept)."""
    return b"data: " + json.dumps(event, ensure_ascii=False).encode("utf-8") + b"\n\n"
