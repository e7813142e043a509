"""Chat page: what goes upstream and how upstream replies (streamed or not) become browser events."""

from __future__ import annotations

import json

import pytest

from lazyllm_images.runtime import sse
from lazyllm_images.runtime.chat import relay
from lazyllm_images.runtime.chat.config import ChatConfig

CFG = ChatConfig(upstream="http://m/v1/chat/completions", model="tiny", defaults={"top_p": 0.9, "max_tokens": 8})


def decode_all(lines):
    dec, out = sse.SSEDecoder(), []
    for line in lines:
        item = dec.feed(line)
        if item:
            out.append(item)
    tail = dec.flush()
    return out + ([tail] if tail else [])


def test_sse_decoder_events_comments_multiline_and_crlf():
    lines = [": keep-alive", "data: {\"a\": 1}", "", "event: error", "data: {\"b\":", "data: 2}\r", "",
             "data:[DONE]", ""]
    assert decode_all(lines) == [("message", '{"a": 1}'), ("error", '{"b":\n2}'), ("message", "[DONE]")]


def test_sse_decoder_flushes_an_unterminated_last_event():
    assert decode_all(["data: {\"x\": 1}"]) == [("message", '{"x": 1}')]
    assert decode_all(["", "", ": c"]) == []


def test_stream_chunks_become_deltas_and_finish():
    chunk = {"choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hel"}, "finish_reason": None}]}
    events, finish, done = relay.data_events("message", json.dumps(chunk))
    assert events == [{"type": "delta", "content": "Hel"}] and finish is None and not done
    last = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": {"completion_tokens": 3}}
    events, finish, _ = relay.data_events("message", json.dumps(last))
    assert events == [{"type": "usage", "usage": {"completion_tokens": 3}}] and finish == "stop"
    assert relay.data_events("message", "[DONE]") == ([], None, True)
    empty = {"choices": [{"index": 0, "delta": {"content": ""}}]}
    assert relay.data_events("message", json.dumps(empty))[0] == []


def test_reasoning_deltas():
    chunk = {"choices": [{"delta": {"reasoning_content": "think", "content": None}}]}
    assert relay.chunk_events(chunk)[0] == [{"type": "reasoning", "content": "think"}]


def test_sources_in_the_final_chunk_or_a_whole_reply():
    final = {"choices": [{"delta": {}, "finish_reason": "stop"}],
             "sources": [{"path": "a.md", "text": "alpha", "score": 0.9}, {"path": "b.md", "text": 3, "score": "x"},
                         "junk"]}
    events, finish = relay.chunk_events(final)
    assert finish == "stop"
    assert events == [{"type": "sources", "sources": [{"path": "a.md", "text": "alpha", "score": 0.9},
                                                      {"path": "b.md", "text": "3", "score": None}]}]
    whole = {"choices": [{"message": {"role": "assistant", "content": "Answer."}, "finish_reason": "stop"}],
             "sources": [{"path": "c.txt", "text": "gamma", "score": 1}]}
    events, finish = relay.chunk_events(whole)
    assert events[0] == {"type": "delta", "content": "Answer."}
    assert events[1]["sources"][0]["path"] == "c.txt" and finish == "stop"


@pytest.mark.parametrize("payload, message", [
    ({"error": {"message": "context too long", "type": "BadRequestError"}}, "context too long"),
    ({"object": "error", "message": "bad model", "code": 404}, "bad model"),
    ({"error": "plain string"}, "plain string"),
    ({"detail": "Not Found"}, "Not Found"),
    ({"detail": [{"loc": ["body"], "msg": "field required"}]}, "field required"),
])
def test_error_shapes(payload, message):
    assert message in sse.error_message(payload)
    events, _ = relay.chunk_events(payload)
    assert events[0]["type"] == "error" and message in events[0]["message"]


def test_error_event_and_bad_data_in_the_stream():
    events, _, _ = relay.data_events("error", json.dumps({"oops": 1}))
    assert events[0]["type"] == "error" and "oops" in events[0]["message"]
    events, _, _ = relay.data_events("message", "not json")
    assert events[0]["type"] == "error" and "not JSON" in events[0]["message"]


def test_upstream_failure_text():
    body = json.dumps({"error": {"message": "Incorrect API key provided"}}).encode()
    assert relay.upstream_failure(401, body) == "the model server answered HTTP 401: Incorrect API key provided"
    assert relay.upstream_failure(502, b"<html>Bad Gateway</html>").endswith("<html>Bad Gateway</html>")
    assert relay.upstream_failure(500, b"").endswith("(no body)")


def test_validate_messages():
    msgs = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"},
            {"role": "user", "content": "again", "extra": 1}]
    assert relay.validate_messages({"messages": msgs})[-1] == {"role": "user", "content": "again"}
    for bad, fragment in [([], "JSON object"), ({"messages": []}, "non-empty"),
                          ({"messages": [{"role": "tool", "content": "x"}]}, r"messages\[0\]"),
                          ({"messages": [{"role": "user", "content": ["x"]}]}, r"messages\[0\]"),
                          ({"messages": [{"role": "assistant", "content": "x"}]}, "last message"),
                          ({"messages": [{"role": "user", "content": "x" * (relay.MAX_CHARS + 1)}]}, "characters")]:
        with pytest.raises(relay.BadRequest, match=fragment):
            relay.validate_messages(bad)


def test_upstream_body_adds_defaults_system_prompt_and_stream():
    msgs = [{"role": "user", "content": "hi"}]
    body = relay.upstream_body(CFG, msgs)
    assert body == {"top_p": 0.9, "max_tokens": 8, "model": "tiny", "messages": msgs, "stream": True}
    cfg = ChatConfig(upstream=CFG.upstream, model="tiny", system_prompt="Be brief.")
    assert relay.upstream_body(cfg, msgs)["messages"][0] == {"role": "system", "content": "Be brief."}
    own = [{"role": "system", "content": "Mine."}, *msgs]
    assert relay.upstream_body(cfg, own)["messages"] == own


def test_sse_encoding_keeps_unicode():
    assert sse.encode({"type": "delta", "content": "你好"}) == 'data: {"type": "delta", "content": "你好"}\n\n'.encode()
