"""The chat page's settings: command line, generation defaults, upstream URL, API key file (pure)."""

from __future__ import annotations

import argparse
import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ..auth import TokenFileError, read_token_file

# Keys the server sets itself; a --default-param cannot replace them.
RESERVED = frozenset({"messages", "stream", "model"})
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class ChatConfig:
    upstream: str  # the full chat completions URL
    model: str
    title: str = "LazyLLM chat"
    api_key: str | None = field(default=None, repr=False)
    auth_token: str | None = field(default=None, repr=False)    # what the browser or a client must present
    system_prompt: str | None = None
    defaults: dict[str, Any] = field(default_factory=dict)

    def public(self) -> dict[str, Any]:
        """What the browser may see (``/api/info``): never the key."""
        return {"title": self.title, "model": self.model, "params": self.defaults,
                "system_prompt": self.system_prompt is not None}


def chat_completions_url(upstream: str) -> str:
    """``http://h:p`` -> ``http://h:p/v1/chat/completions``; ``.../v1`` or ``.../v4`` -> ``.../chat/completions``."""
    parts = urlsplit(upstream.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"--upstream must be an http(s) URL, not {upstream!r}")
    path = parts.path.rstrip("/")
    if not path:
        path = "/v1/chat/completions"
    elif not path.endswith("/chat/completions"):
        path += "/chat/completions"
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


def parse_value(text: str) -> Any:
    """JSON when it parses (numbers, true/false/null, lists, objects, quoted strings), else the text itself."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_default_params(items: list[str]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--default-param wants key=value, not {item!r}")
        if not _KEY.match(key):
            raise ConfigError(f"--default-param: {key!r} is not a parameter name")
        if key in RESERVED:
            raise ConfigError(f"--default-param: {key!r} is set by the chat server itself")
        params[key] = parse_value(value)
    return params


def read_secret_file(path: str | None, option: str) -> str | None:
    if not path:
        return None
    try:
        return read_token_file(path, option)
    except TokenFileError as exc:
        raise ConfigError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m lazyllm_images.runtime.chat",
                                description="A web chat page over an OpenAI-compatible chat completions server.")
    p.add_argument("--upstream", required=True,
                   help="the model server: http://host:port, a base URL such as https://api.openai.com/v1, "
                        "or the full .../chat/completions URL")
    p.add_argument("--model", required=True, help="the model name sent upstream and shown on the page")
    p.add_argument("--title", default="LazyLLM chat")
    p.add_argument("--api-key-file", default=None, help="file holding the upstream's API key (sent as Bearer)")
    p.add_argument("--auth-token-file", default=None, metavar="FILE",
                   help="require this file's token on every route but /healthz: 'Authorization: Bearer TOKEN', or "
                        "in a browser the login form at /login (then an HttpOnly, SameSite=Strict session cookie); "
                        "without it, a bind beyond loopback prints a loud warning")
    p.add_argument("--host", default="0.0.0.0")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--system-prompt", default=None, help="system message put before each conversation")
    p.add_argument("--default-param", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                   help="generation parameters sent with each request, e.g. top_p=0.9 max_tokens=512 "
                        "(repeatable; values are JSON when they parse, else strings)")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    return p


def config_from_args(args: argparse.Namespace) -> ChatConfig:
    return ChatConfig(
        upstream=chat_completions_url(args.upstream), model=args.model, title=args.title,
        api_key=read_secret_file(args.api_key_file, "--api-key-file"),
        auth_token=read_secret_file(args.auth_token_file, "--auth-token-file"),
        system_prompt=args.system_prompt or None,
        defaults=parse_default_params(args.default_param),
    )
