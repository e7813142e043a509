"""The prompt sent to the LLM (numbered passages mapping to source paths) and the parsing of streamed deltas."""

from __future__ import annotations

import anyio
import httpx
import pytest

from lazyllm_images.runtime.rag.generate import (GenerationError, LLMClient, build_messages, format_passages,
                                                 retrieval_only_text, stream_delta)
from lazyllm_images.runtime.rag.retrieve import Passage

PASSAGES = [Passage("docs/a.txt", "Alpha text.", 0.03, "1"), Passage("b.pdf", "Beta text.", 0.02, "2")]


def test_messages_number_passages_with_their_paths_and_ask_for_citations() -> None:
    messages = build_messages("What is alpha?", PASSAGES)
    assert [m["role"] for m in messages] == ["system", "user"]
    system = messages[0]["content"]
    assert "[1] (source: docs/a.txt)\nAlpha text." in system and "[2] (source: b.pdf)\nBeta text." in system
    assert "square brackets" in system and messages[-1]["content"] == "What is alpha?"


def test_history_is_kept_between_system_and_question() -> None:
    history = [{"role": "system", "content": "client system"}, {"role": "user", "content": "hi"},
               {"role": "assistant", "content": "hello"}]
    messages = build_messages("q", PASSAGES, history)
    assert [m["content"] for m in messages[1:]] == ["hi", "hello", "q"]


def test_no_passages_and_context_cap() -> None:
    assert "(no passages were found)" in build_messages("q", [])[0]["content"]
    text = format_passages(PASSAGES, max_chars=40)
    assert "[1]" in text and "[2]" not in text


def test_retrieval_only_text() -> None:
    text = retrieval_only_text(PASSAGES)
    assert "retrieval only" in text and "[1] docs/a.txt" in text and "[2] b.pdf" in text
    assert "no passage" in retrieval_only_text([])


def test_stream_delta_parsing() -> None:
    assert stream_delta("message", '{"choices":[{"delta":{"content":"Hi"}}]}') == "Hi"
    assert stream_delta("message", "[DONE]") is None
    assert stream_delta("message", '{"choices":[{"delta":{"role":"assistant"}}]}') is None


@pytest.mark.parametrize("name, data, message", [
    ("message", '{"error": {"message": "CUDA out of memory", "type": "server_error"}}', "CUDA out of memory"),
    ("message", '{"object": "error", "message": "context too long"}', "context too long"),
    ("error", '{"detail": "overloaded"}', "overloaded"),
    ("message", "not json at all", "not JSON"),
])
def test_an_upstream_error_event_is_an_error_not_silence(name: str, data: str, message: str) -> None:
    """The RAG parser dropped ``data: {"error": ...}`` silently: the answer just stopped."""
    with pytest.raises(GenerationError, match=message):
        stream_delta(name, data)


def scripted(body: bytes) -> LLMClient:
    """An LLM client whose server answers BODY (with status 200) to every request."""
    answer = httpx.MockTransport(lambda request: httpx.Response(200, content=body))
    return LLMClient("http://llm", "m", transport=answer)


def test_the_client_raises_the_upstreams_message_mid_stream_and_in_a_whole_reply() -> None:
    stream = (b'data: {"choices":[{"delta":{"content":"Par"}}]}\n\n'
              b'data: {"error": {"message": "upstream died"}}\n\n')

    async def check() -> None:
        got: list[str] = []
        with pytest.raises(GenerationError, match="upstream died"):
            async for delta in scripted(stream).stream([]):
                got.append(delta)
        assert got == ["Par"]
        with pytest.raises(GenerationError, match="quota exceeded"):
            await scripted(b'{"error": {"message": "quota exceeded"}}').complete([])
    anyio.run(check)
