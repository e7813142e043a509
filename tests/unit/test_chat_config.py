"""Chat page: command line, generation defaults, upstream URL, API key file."""

from __future__ import annotations

import pytest

from lazyllm_images.runtime.chat.config import (
    ChatConfig, ConfigError, build_parser, chat_completions_url, config_from_args, parse_default_params,
    read_secret_file,
)


@pytest.mark.parametrize("given, url", [
    ("http://127.0.0.1:8000", "http://127.0.0.1:8000/v1/chat/completions"),
    ("http://127.0.0.1:8000/", "http://127.0.0.1:8000/v1/chat/completions"),
    ("http://vllm:8000/v1", "http://vllm:8000/v1/chat/completions"),
    ("https://api.openai.com/v1/", "https://api.openai.com/v1/chat/completions"),
    ("https://open.bigmodel.cn/api/paas/v4", "https://open.bigmodel.cn/api/paas/v4/chat/completions"),
    ("http://rag:8080/v1/chat/completions", "http://rag:8080/v1/chat/completions"),
    ("http://h:1/v1?api-version=2", "http://h:1/v1/chat/completions?api-version=2"),
])
def test_upstream_url_forms(given, url):
    assert chat_completions_url(given) == url


@pytest.mark.parametrize("bad", ["vllm:8000", "ftp://h/v1", "http://", ""])
def test_upstream_must_be_http(bad):
    with pytest.raises(ConfigError, match="http"):
        chat_completions_url(bad)


def test_default_params_are_typed():
    params = parse_default_params(["top_p=0.9", "max_tokens=512", "ignore_eos=true", "stop=[\"\\n\"]",
                                   "user=alice", "seed=null", "note=a=b", "extra_body.x={\"k\": 1}"])
    assert params == {"top_p": 0.9, "max_tokens": 512, "ignore_eos": True, "stop": ["\n"], "user": "alice",
                      "seed": None, "note": "a=b", "extra_body.x": {"k": 1}}


@pytest.mark.parametrize("bad, fragment", [
    ("top_p", "key=value"), ("=1", "key=value"), ("stream=false", "set by the chat server"),
    ("messages=[]", "set by the chat server"), ("model=x", "set by the chat server"), ("a b=1", "not a parameter"),
])
def test_default_params_rejected(bad, fragment):
    with pytest.raises(ConfigError, match=fragment):
        parse_default_params([bad])


def test_api_key_file(tmp_path):
    f = tmp_path / "key"
    f.write_text("sk-test-123\n")
    assert read_secret_file(str(f), "--api-key-file") == "sk-test-123"
    assert read_secret_file(None, "--api-key-file") is None
    f.write_text("  \n")
    with pytest.raises(ConfigError, match="empty"):
        read_secret_file(str(f), "--api-key-file")
    f.write_text("OPENAI_API_KEY sk-1\n")
    with pytest.raises(ConfigError, match="only the key"):
        read_secret_file(str(f), "--api-key-file")
    with pytest.raises(ConfigError, match="cannot read"):
        read_secret_file(str(tmp_path / "missing"), "--api-key-file")


def test_command_line_to_config_keeps_the_key_private(tmp_path):
    key = tmp_path / "key"
    key.write_text("sk-secret")
    args = build_parser().parse_args([
        "--upstream", "http://m:8000", "--model", "qwen", "--api-key-file", str(key), "--system-prompt", "Be brief.",
        "--default-param", "top_p=0.9", "temperature=0.2", "--default-param", "max_tokens=64",
    ])
    cfg = config_from_args(args)
    assert cfg.upstream == "http://m:8000/v1/chat/completions" and cfg.api_key == "sk-secret"
    assert cfg.defaults == {"top_p": 0.9, "temperature": 0.2, "max_tokens": 64}
    assert "sk-secret" not in repr(cfg) and "sk-secret" not in str(cfg.public())
    assert cfg.public() == {"title": "LazyLLM chat", "model": "qwen", "system_prompt": True,
                            "params": {"top_p": 0.9, "temperature": 0.2, "max_tokens": 64}}
    assert args.host == "0.0.0.0" and args.port == 8000


def test_config_defaults():
    cfg = ChatConfig(upstream="http://x/v1/chat/completions", model="m")
    assert cfg.defaults == {} and cfg.api_key is None and cfg.system_prompt is None
