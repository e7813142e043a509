"""``Formatter`` and ``JoinFormatter`` nodes, value for value as upstream's formatter classes.

A formatter node is called like upstream's ``FormatterBase.__call__(*msg)``: one input is formatted as is, several
(or none) as a ``Package``. ``format`` collapses a chat message to its content, then ``_load``s a string (JSON
extraction for ``json``, ``yaml.safe_load`` for ``yaml``, ``<lazyllm-query>`` decoding for JoinFormatter, nothing
for ``jsonlike``/``python``), then applies the slice or join rule.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from . import slicer
from .values import Package

QUERY_PREFIX = "<lazyllm-query>"
FTYPES = ("jsonlike", "python", "json", "yaml", "file")
FILE_RULES = ("decode", "encode", "merge")
JOIN_TYPES = ("sum", "stack", "to_dict", "join", "file")
BROKEN_FTYPES = {"pipeline": "upstream's PipelineFormatter fails on every call",
                 "empty": "upstream's EmptyFormatter takes no rule (TypeError at start)",
                 "functioncall": "upstream's FunctionCallFormatter takes no rule (TypeError at start)",
                 "default": "upstream resolves it to PipelineFormatter, which fails on every call"}


def canonical_ftype(ftype: Any) -> str | None:
    """upstream's ``getattr(lazyllm.formatter, ftype)``: case-insensitive, with or without the Formatter suffix."""
    if not isinstance(ftype, str):
        return None
    key = ftype.lower()
    if key.endswith("formatter") and key[:-9] in FTYPES:
        return key[:-9]
    return key if key in FTYPES else None


# ------------------------------------------------------------------------------------------- <lazyllm-query>
def decode_query(text: str) -> Any:
    """upstream ``decode_query_with_filepaths``: note that a plain string comes back stripped."""
    if not isinstance(text, str):
        raise AssertionError("query_files must be a str.")
    text = text.strip()
    if text.startswith(QUERY_PREFIX):
        try:
            return json.loads(text[len(QUERY_PREFIX):])
        except json.JSONDecodeError as e:
            raise ValueError(f"JSON parsing failed: {e}") from None
    return text


def encode_query(query: str | None = None, files: Any = None) -> str:
    query = query if query else ""
    if files:
        if isinstance(files, str):
            files = [files]
        if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
            raise AssertionError("files must be a list of strings")
        return QUERY_PREFIX + json.dumps({"query": query, "files": files})
    return query


def merge_queries(*items: Any) -> str:
    if len(items) == 1:
        return items[0]
    query, files = "", []
    for item in items:
        if not isinstance(item, str):
            raise AssertionError("Merge object must be str!")
        decoded = decode_query(item)
        if isinstance(decoded, dict):
            query += decoded["query"]
            files.extend(decoded["files"])
        else:
            query += decoded
    return encode_query(query, files)


def file_rule(mode: str) -> Callable[[Any], Any]:
    def one(data: Any) -> Any:
        if mode == "decode":
            return decode_query(data) if isinstance(data, str) else data
        if isinstance(data, dict) and "query" in data and "files" in data:
            return encode_query(**data)
        return data

    def apply(data: Any) -> Any:
        if mode == "merge":
            if isinstance(data, str):
                return data
            if not isinstance(data, Package):
                raise AssertionError("the file merge formatter needs several inputs")
            return merge_queries(*data)
        if isinstance(data, Package):
            return Package([apply(d) for d in data])
        return one(data) if isinstance(data, (str, dict)) else data
    return apply


# ----------------------------------------------------------------------------------------------- json, yaml
def extract_json(text: str) -> list:
    """upstream ``JsonFormatter._extract_json_from_string``, char for char. A candidate that is not JSON raises
    (upstream then tries ``json_repair``, which its base install lacks, and the whole load gives '')."""
    found, level, current, in_string = [], 0, "", False
    for ch in text:
        if ch == '"' and (len(current) == 0 or current[-1] != "\\"):
            in_string = not in_string
        if not in_string:
            if ch in "{[":
                if level == 0:
                    current = ""
                level += 1
            elif ch in "}]":
                level -= 1
        if level > 0 or (level == 0 and ch in "}]"):
            current += ch
        if level == 0 and current:
            found.append(json.loads(current))
            current = ""
    return found


def load_json(text: str) -> Any:
    if text.count("{") != text.count("}"):
        raise AssertionError(f"{text} is not a valid json string.")
    try:
        objs = extract_json(text)
    except ValueError:
        return ""
    if not objs:
        return ""
    return objs if len(objs) > 1 else objs[0]


def load_yaml(text: str) -> Any:
    import yaml  # PyYAML: a base dependency of lazyllm-images
    try:
        return yaml.load(text, Loader=yaml.SafeLoader)
    except Exception:
        return ""


# ---------------------------------------------------------------------------------------------------- nodes
class FormatterNode:
    """A ``Formatter`` node: ``ftype`` canonical (see ``canonical_ftype``), ``rule`` already validated."""

    def __init__(self, ftype: str, rule: Any) -> None:
        self.ftype = ftype
        if ftype == "file":
            self._apply: Callable[[Any], Any] = file_rule(rule.strip().lower())
            self._load: Callable[[str], Any] | None = None
        else:
            self._apply = slicer.parse(rule).slice
            self._load = {"json": load_json, "yaml": load_yaml}.get(ftype)

    def __call__(self, *values: Any) -> Any:
        msg = values[0] if len(values) == 1 else Package(values)
        msg = slicer.collapse_chat_message(msg)
        if isinstance(msg, str) and self._load is not None:
            msg = self._load(msg)
        return self._apply(msg)


class JoinFormatter:
    """upstream's engine ``JoinFormatter``: sum, stack, to_dict, join (``file`` is built as a merge Formatter)."""

    def __init__(self, type: str = "sum", names: list | None = None, symbol: str | None = None) -> None:
        self.type, self.names, self.symbol = type, names, symbol

    def __call__(self, *values: Any) -> Any:
        data = values[0] if len(values) == 1 else Package(values)
        data = slicer.collapse_chat_message(data)
        if isinstance(data, str):
            data = decode_query(data)
        return self.join(data)

    def join(self, data: Any) -> Any:
        if self.type == "sum":
            if not len(data) > 0:
                raise AssertionError("Cannot sum empty inputs")
            if isinstance(data[0], str):
                return "".join(data)
            return sum(data, type(data[0])())
        if self.type == "stack":
            return list(data) if isinstance(data, Package) else [data]
        if self.type == "to_dict":
            if not (self.names and len(self.names) == len(data)):
                raise AssertionError(f"to_dict has {len(self.names or [])} names for {len(data)} inputs")
            return dict(zip(self.names, data))
        if self.type == "join":
            return (self.symbol or "").join(str(d) for d in data)
        raise TypeError("type should be one of sum/stack/to_dict/join")


def make_join(type: str = "sum", names: list | None = None, symbol: str | None = None) -> Callable[..., Any]:
    if type == "file":
        return FormatterNode("file", "merge")
    return JoinFormatter(type, names, symbol)


def postprocess_result(result: Any) -> Any:
    """upstream ``LightEngine.run``: a ``<lazyllm-query>`` string result is decoded to its query (or first file)
    unless it carries both a query and files."""
    if isinstance(result, str) and result.startswith(QUERY_PREFIX):
        decoded = file_rule("decode")(result)
        if decoded["query"] and decoded["files"]:
            return result
        return decoded["query"] or decoded["files"][0]
    return result
