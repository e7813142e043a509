"""The formatter slice language of upstream's ``JsonLikeFormatter``, on edges and in ``Formatter`` nodes.

``parse`` reproduces upstream's parser (``{`` rewritten to ``[{``, ``}`` to ``}]``, split on ``][``) and raises
``FormatterSyntaxError`` with a readable reason where upstream raises a bare ``AssertionError``/``ValueError`` at
start. ``Slicer.apply`` reproduces ``_parse_py_data_by_formatter`` value for value: map semantics after a slice or a
key list, ``*`` making the key-list container a ``Package``, string keys on dicts, chat-message collapse.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .values import Package

EDGE_SHAPE = 'must start with "[", "*[" or "{" and end with "]" or "}"'


class FormatterSyntaxError(ValueError):
    pass


class ListIdx(tuple):
    """``[a, b]``: several keys or indexes."""


class DictKeys(tuple):
    """``{a, b}``: a sub-dict (``{:}``: the whole dict)."""


def _number(part: str) -> int | None:
    try:
        return int(part)
    except ValueError:
        if part == "None" or len(part) == 0:
            return None
        raise FormatterSyntaxError(f'"{part}" in a slice is not a number (use an integer, None or nothing)')


@dataclass(frozen=True)
class Slicer:
    text: str
    star: bool
    dims: tuple | None          # None: the identity (an empty rule)

    def apply(self, data: Any) -> Any:
        """Upstream ``LazyLLMFormatterBase.format`` for a JsonLike formatter: chat-message collapse, then slice."""
        return self.slice(collapse_chat_message(data))

    def slice(self, data: Any, dims: tuple | None = None) -> Any:
        dims = self.dims if dims is None else dims
        if not dims:
            return data
        cur, rest = dims[0], dims[1:]
        if isinstance(cur, slice):
            if isinstance(data, dict):
                if not (cur.start is None and cur.stop is None and cur.step is None):
                    raise AssertionError("Only {:} and [:] is supported in dict slice")
                cur = ListIdx(data.keys())
            elif isinstance(data, (tuple, list)):
                return type(data)(self.slice(d, rest) for d in data[cur])
        if isinstance(cur, DictKeys):
            return {k: self.slice(v, rest) for k, v in _pick(data, cur).items()}
        if isinstance(cur, ListIdx):
            kind = Package if self.star else list if isinstance(data, dict) else type(data)
            return kind(self.slice(r, rest) for r in _pick(data, cur))
        return self.slice(_pick(data, cur), rest)


def _pick(data: Any, key: Any) -> Any:
    """upstream ``_impl``: one dim applied to one value."""
    if isinstance(data, (tuple, list)) and isinstance(key, str):
        return data[int(key)]
    if isinstance(key, ListIdx):
        if isinstance(data, dict):
            return [data[k] for k in key]
        if isinstance(data, (tuple, list)):
            return type(data)(data[int(k)] for k in key)
        raise RuntimeError("Only tuple/list/dict is supported for [a,b,c]")
    if isinstance(key, DictKeys):
        if not isinstance(data, dict):
            raise AssertionError(f"{{{', '.join(key)}}} needs a dict, got {type(data).__name__}")
        if len(key) == 1 and key[0] == ":":
            return data
        return {k: data[k] for k in key}
    return data[key]


def collapse_chat_message(msg: Any) -> Any:
    """A chat message ``{"role", "content"}`` becomes its content (reasoning wrapped in ``<think>`` in front)."""
    if isinstance(msg, dict) and "role" in msg and "content" in msg:
        reasoning = msg.get("reasoning_content")
        return f"<think>{reasoning}</think>" + msg["content"] if reasoning else msg["content"]
    return msg


def parse(text: str | None) -> Slicer:
    """Parse a rule as ``JsonLikeFormatter(formatter=text)`` does. ``None`` or ``""`` is the identity."""
    if text and text.startswith("*["):
        star, body = True, text.strip("*")
    else:
        star, body = False, text
    if not body:
        return Slicer(text or "", star, None)
    if "*" in body:
        raise FormatterSyntaxError('"*" may only come first, right before "["')
    body = body.strip().replace("{", "[{").replace("}", "}]")
    if not (body.startswith("[") and body.endswith("]")):
        raise FormatterSyntaxError(EDGE_SHAPE)
    dims = []
    for dim in body[1:-1].split("]["):
        if "{" in dim:
            dims.append(DictKeys(d.strip() for d in dim[1:-1].split(",") if d.strip()))
        elif ":" in dim:
            if "," in dim:
                raise FormatterSyntaxError(f'"[{dim}]" mixes a slice with a list of keys, which is not supported')
            parts = dim.split(":")
            start = _number(parts[0])
            stop = _number(parts[1]) if len(parts) > 1 else None
            step = _number(parts[2]) if len(parts) > 2 else None
            dims.append(slice(start, stop, step))
        elif "," in dim:
            dims.append(ListIdx(d.strip() for d in dim.split(",") if d.strip()))
        else:
            dims.append(dim.strip())
    return Slicer(text, star, tuple(dims))


def parse_edge(text: Any) -> Slicer:
    """An edge ``formatter``: upstream first checks its shape (on the raw text), then parses it."""
    if not isinstance(text, str):
        raise FormatterSyntaxError(f"must be a string, not {type(text).__name__}")
    if not (text.startswith(("*[", "[", "{")) and text.endswith(("]", "}"))):
        raise FormatterSyntaxError(EDGE_SHAPE)
    return parse(text)
