"""What goes upstream and what comes back to the browser (pure: no I/O).

The browser gets Server-Sent Events, one JSON object per ``data:`` line, each with a ``type``:
``delta`` (``content``: text to append), ``reasoning`` (``content``), ``sources`` (``sources``: list of
``{path, text, score}``), ``usage`` (``usage``), ``error`` (``message``, ``status``) and, last, ``done``
(``finish_reason``). Upstream chunks are OpenAI chat completion chunks; a top-level ``sources`` list (added by
the project's RAG service) in any chunk or in a non-streamed reply becomes a ``sources`` event.
"""

from __future__ import annotations

import json
from typing import Any

from ..sse import DONE, error_message, event_error
from .config import ChatConfig

ROLES = ("system", "user", "assistant")
MAX_MESSAGES = 500
MAX_CHARS = 1_000_000
MAX_SOURCES = 50


class BadRequest(ValueError):
    pass


def validate_messages(body: Any) -> list[dict[str, str]]:
    """The browser's ``{"messages": [...]}``: roles and string contents, ending with the user's turn."""
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("'messages' must be a non-empty list")
    if len(messages) > MAX_MESSAGES:
        raise BadRequest(f"the conversation has {len(messages)} messages; at most {MAX_MESSAGES}")
    out, total = [], 0
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
            raise BadRequest(f"messages[{i}] must be {{\"role\": one of {', '.join(ROLES)}, \"content\": text}}")
        total += len(m["content"])
        out.append({"role": m["role"], "content": m["content"]})
    if total > MAX_CHARS:
        raise BadRequest(f"the conversation has {total} characters; at most {MAX_CHARS}")
    if out[-1]["role"] != "user":
        raise BadRequest("the last message must be the user's")
    return out


def upstream_body(cfg: ChatConfig, messages: list[dict[str, str]]) -> dict[str, Any]:
    if cfg.system_prompt and messages[0]["role"] != "system":
        messages = [{"role": "system", "content": cfg.system_prompt}, *messages]
    return {**cfg.defaults, "model": cfg.model, "messages": messages, "stream": True}


def clean_sources(raw: Any) -> list[dict[str, Any]]:
    if not isinstance(raw, list):
        return []
    out = []
    for s in raw[:MAX_SOURCES]:
        if not isinstance(s, dict):
            continue
        score = s.get("score")
        out.append({"path": str(s.get("path") or s.get("source") or ""), "text": str(s.get("text") or ""),
                    "score": score if isinstance(score, (int, float)) and not isinstance(score, bool) else None})
    return out


def upstream_failure(status: int, raw: bytes) -> str:
    text = raw.decode("utf-8", "replace").strip()
    try:
        msg = error_message(json.loads(text)) or text
    except ValueError:
        msg = text
    msg = msg[:1000] or "(no body)"
    return f"the model server answered HTTP {status}: {msg}"


def _message_events(part: dict[str, Any]) -> list[dict[str, Any]]:
    events = []
    reasoning = part.get("reasoning_content") or part.get("reasoning")
    if isinstance(reasoning, str) and reasoning:
        events.append({"type": "reasoning", "content": reasoning})
    content = part.get("content")
    if isinstance(content, str) and content:
        events.append({"type": "delta", "content": content})
    return events


def chunk_events(chunk: Any, name: str = "message") -> tuple[list[dict[str, Any]], str | None]:
    """Events for one upstream object (a stream chunk or a whole reply) and its finish reason, if any."""
    msg = event_error(name, chunk)
    if msg is not None:
        return [{"type": "error", "message": f"the model server reported: {msg}", "status": None}], None
    if not isinstance(chunk, dict):
        return [{"type": "error", "message": f"unexpected data from the model server: {str(chunk)[:200]}",
                 "status": None}], None
    events: list[dict[str, Any]] = []
    finish = None
    choices = chunk.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        choice = choices[0]
        part = choice.get("delta") if isinstance(choice.get("delta"), dict) else choice.get("message")
        if isinstance(part, dict):
            events += _message_events(part)
        finish = choice.get("finish_reason") or None
    if "sources" in chunk:
        events.append({"type": "sources", "sources": clean_sources(chunk["sources"])})
    if isinstance(chunk.get("usage"), dict):
        events.append({"type": "usage", "usage": chunk["usage"]})
    return events, finish


def data_events(name: str, data: str) -> tuple[list[dict[str, Any]], str | None, bool]:
    """Events for one upstream SSE event; the last value is True at ``[DONE]``."""
    if data.strip() == DONE:
        return [], None, True
    try:
        obj = json.loads(data)
    except ValueError:
        return [{"type": "error", "message": f"the model server sent data that is not JSON: {data[:200]}",
                 "status": None}], None, False
    events, finish = chunk_events(obj, name)
    return events, finish, False
