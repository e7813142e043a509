"""Request bodies of the HTTP API, validated by hand (no extra dependency): a bad body raises ``BadRequest``."""

from __future__ import annotations

from dataclasses import dataclass

MAX_TOP_K = 50


class BadRequest(ValueError):
    """Answered with HTTP 400 and ``{"error": {"message": str(exc), "type": "invalid_request_error"}}``."""


@dataclass(frozen=True)
class QueryRequest:
    query: str
    top_k: int


@dataclass(frozen=True)
class ChatRequest:
    query: str
    history: list[dict]
    top_k: int
    stream: bool
    model: str | None


def _top_k(body: dict, default: int) -> int:
    top_k = body.get("top_k", default)
    if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= MAX_TOP_K:
        raise BadRequest(f"'top_k' must be an integer from 1 to {MAX_TOP_K}")
    return top_k


def parse_query(body: object, default_top_k: int) -> QueryRequest:
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object like {\"query\": \"...\", \"top_k\": 5}")
    query = body.get("query")
    if not isinstance(query, str) or not query.strip():
        raise BadRequest("'query' must be a non-empty string")
    return QueryRequest(query.strip(), _top_k(body, default_top_k))


def message_text(content: object) -> str:
    """OpenAI message content: a string, or a list of parts of which the text ones count."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    if content is None:
        return ""
    raise BadRequest("message 'content' must be a string or a list of content parts")


def parse_chat(body: object, default_top_k: int) -> ChatRequest:
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object with 'messages'")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("'messages' must be a non-empty list")
    turns = []
    for m in messages:
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise BadRequest("each message must be an object with a 'role' and a 'content'")
        turns.append({"role": m["role"], "content": message_text(m.get("content"))})
    users = [i for i, m in enumerate(turns) if m["role"] == "user" and m["content"].strip()]
    if not users:
        raise BadRequest("no user message with text: the last user message is the query")
    last = users[-1]
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise BadRequest("'stream' must be a boolean")
    model = body.get("model")
    return ChatRequest(turns[last]["content"].strip(), turns[:last], _top_k(body, default_top_k), stream,
                       model if isinstance(model, str) else None)
