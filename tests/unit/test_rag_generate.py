"""The prompt sent to the LLM (numbered passages mapping to source paths) and the parsing of streamed deltas."""

from __future__ import annotations

from lazyllm_images.runtime.rag.generate import _delta, build_messages, format_passages, retrieval_only_text
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
    assert _delta('data: {"choices":[{"delta":{"content":"Hi"}}]}') == "Hi"
    assert _delta("data: [DONE]") is None and _delta(": keep-alive") is None
    assert _delta('data: {"choices":[{"delta":{"role":"assistant"}}]}') is None
