"""Answer generation: the prompt (numbered passages, citations asked for) and an OpenAI-compatible chat client."""

from __future__ import annotations

import json
from typing import AsyncIterator

import httpx

from ..sse import DONE, SSEDecoder, event_error
from .embeddings import endpoint
from .retrieve import Passage

SYSTEM_PROMPT = (
    "You answer the user's question using only the numbered passages below, taken from the user's documents. "
    "Cite the passages you rely on with their numbers in square brackets, for example [1] or [2][3]; each "
    "number refers to the source file named next to it. If the passages do not contain the answer, say that "
    "the documents do not say, rather than guessing."
)


class GenerationError(RuntimeError):
    """The language model server could not be reached or refused the request."""


def format_passages(passages: list[Passage], max_chars: int) -> str:
    """``[n] (source: path)`` + text for each passage, in order, cut to ``max_chars`` characters in all."""
    blocks: list[str] = []
    used = 0
    for n, p in enumerate(passages, start=1):
        block = f"[{n}] (source: {p.path})\n{p.text}"
        if blocks and used + len(block) > max_chars:
            break
        blocks.append(block[:max_chars])
        used += len(block)
    return "\n\n".join(blocks)


def build_messages(query: str, passages: list[Passage], history: list[dict] | None = None,
                   max_context_chars: int = 8000) -> list[dict]:
    """The chat messages sent to the LLM: a system message with the instructions and the numbered passages
    ([n] is the n-th entry of the response's ``sources``), then earlier turns, then the question."""
    context = format_passages(passages, max_context_chars) if passages else "(no passages were found)"
    messages = [{"role": "system", "content": f"{SYSTEM_PROMPT}\n\nPassages:\n\n{context}"}]
    messages += [m for m in history or [] if m.get("role") in ("user", "assistant")]
    messages.append({"role": "user", "content": query})
    return messages


def retrieval_only_text(passages: list[Passage]) -> str:
    """What the chat endpoint says when no LLM is configured: the passages themselves, numbered like citations."""
    if not passages:
        return "No language model is configured (retrieval only), and no passage matches the question."
    lines = ["No language model is configured (retrieval only). The most relevant passages:"]
    for n, p in enumerate(passages, start=1):
        lines.append(f"\n[{n}] {p.path} (score {p.score:.4f})\n{p.text}")
    return "\n".join(lines)


class LLMClient:
    """``/v1/chat/completions`` of an OpenAI-compatible server (vllm, lightllm, lmdeploy, or an online API)."""

    def __init__(self, base_url: str, model: str, api_key: str | None = None, timeout: float = 300.0,
                 max_tokens: int | None = None, temperature: float = 0.2,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.url = endpoint(base_url, "/v1/chat/completions")
        self.model = model
        self.max_tokens = max_tokens
        self.temperature = temperature
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.AsyncClient(timeout=timeout, headers=headers, transport=transport)

    def _body(self, messages: list[dict], stream: bool) -> dict:
        body: dict = {"model": self.model, "messages": messages, "stream": stream, "temperature": self.temperature}
        if self.max_tokens:
            body["max_tokens"] = self.max_tokens
        return body

    async def complete(self, messages: list[dict]) -> str:
        try:
            response = await self._http.post(self.url, json=self._body(messages, False))
        except httpx.HTTPError as exc:
            raise GenerationError(f"language model unreachable at {self.url}: {exc}") from exc
        if response.status_code != 200:
            raise GenerationError(f"language model {self.url} answered HTTP {response.status_code}: "
                                  f"{response.text[:300]}")
        try:
            payload = response.json()
        except ValueError as exc:
            raise GenerationError(f"language model gave an answer that is not JSON: {exc}") from exc
        if (message := event_error("message", payload)) is not None:
            raise GenerationError(f"language model reported an error: {message[:1000]}")
        try:
            return payload["choices"][0]["message"]["content"] or ""
        except (KeyError, IndexError, TypeError) as exc:
            raise GenerationError(f"language model gave an unexpected answer: {exc!r}") from exc

    async def stream(self, messages: list[dict]) -> AsyncIterator[str]:
        """Content deltas as the server streams them; GenerationError when it fails or reports an error."""
        try:
            async with self._http.stream("POST", self.url, json=self._body(messages, True)) as response:
                if response.status_code != 200:
                    text = (await response.aread()).decode(errors="replace")
                    raise GenerationError(f"language model {self.url} answered HTTP {response.status_code}: "
                                          f"{text[:300]}")
                decoder = SSEDecoder()
                async for line in response.aiter_lines():
                    event = decoder.feed(line)
                    if event and (delta := stream_delta(*event)):
                        yield delta
                if (event := decoder.flush()) and (delta := stream_delta(*event)):
                    yield delta
        except httpx.HTTPError as exc:
            raise GenerationError(f"language model unreachable at {self.url}: {exc}") from exc

    async def aclose(self) -> None:
        await self._http.aclose()


def stream_delta(name: str, data: str) -> str | None:
    """The content of one streamed event (None for ``[DONE]`` and events without content); GenerationError for an
    error the server reports in the stream (``data: {"error": ...}`` or ``event: error``) or data that is not JSON."""
    if data.strip() == DONE:
        return None
    try:
        payload = json.loads(data)
    except ValueError:
        raise GenerationError(f"language model sent data that is not JSON: {data[:200]}") from None
    message = event_error(name, payload)
    if message is not None:
        raise GenerationError(f"language model reported an error: {message[:1000]}")
    try:
        choices = payload.get("choices") or [{}]
        return (choices[0].get("delta") or {}).get("content")
    except (AttributeError, IndexError):
        return None
