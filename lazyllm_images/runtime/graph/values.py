"""Values that flow between nodes, as upstream LazyLLM has them, and their JSON forms.

``Package`` is upstream's ``package``: a tuple subclass meaning "several arguments". A producer that returns one
(a sub-graph with several outputs, Warp, Diverter, a ``*[..]`` formatter, ``return package(a, b)`` in Code) has it
spread into the next node's positional arguments, or spliced into a fan-in. A plain ``tuple`` or ``list`` is one
argument. ``Arguments`` is upstream's ``arguments`` (positional package + keywords), used for fan-in.

Two JSON forms:
- the *wire* form (``encode``/``decode``), lossless for what Code nodes exchange with the sandbox: tuples, packages,
  sets, bytes and dicts with non-string keys are tagged objects;
- the *output* form (``to_output``), what the CLI prints: upstream's tuple becomes a JSON list.
"""

from __future__ import annotations

import base64
import json
import math
import types
from typing import Any


class Package(tuple):
    """upstream ``lazyllm.package``: ``Package(1, 2)``, ``Package([1, 2])`` and ``Package(gen)`` are all (1, 2)."""

    def __new__(cls, *args):
        if len(args) == 1 and isinstance(args[0], (tuple, list, types.GeneratorType)):
            return super().__new__(cls, args[0])
        return super().__new__(cls, args)

    def __getitem__(self, key):
        if isinstance(key, slice):
            return Package(super().__getitem__(key))
        return super().__getitem__(key)

    def __add__(self, other):
        return Package(super().__add__(other))

    def __repr__(self) -> str:
        return tuple.__repr__(self)


class Arguments:
    """upstream ``arguments``: what a node with several in-edges receives. ``append`` splices a ``Package``,
    merges another ``Arguments``, and keeps anything else (list, tuple, dict) as one positional argument."""

    def __init__(self, args: Any = None, kw: dict | None = None, *, empty: bool = False) -> None:
        if empty:
            self.args: Package = Package()
        else:
            self.args = args if isinstance(args, Package) else Package((args,))
        self.kw: dict = dict(kw or {})

    @classmethod
    def new(cls) -> Arguments:
        return cls(empty=True)

    def append(self, x: Any) -> Arguments:
        if isinstance(x, Package):
            args, kw = x, {}
        elif isinstance(x, Arguments):
            args, kw = x.args, x.kw
        else:
            args, kw = Package((x,)), {}
        if args:
            self.args = self.args + args
        if kw:
            dup = set(self.kw) & set(kw)
            if dup:
                raise AssertionError(f"Duplicated keys: {dup}")
            self.kw.update(kw)
        return self


def start_value(args: tuple, kw: dict | None = None) -> Any:
    """What ``__start__`` holds when a graph is called with ``args``/``kw`` (upstream ``Graph._run``)."""
    value = args[0] if len(args) == 1 else Package(tuple(args))
    kw = kw or {}
    if _truthy(value) and kw:
        return Arguments(value, kw)
    return kw or value


def _truthy(value: Any) -> bool:
    try:
        return bool(value)
    except Exception:          # e.g. an object whose __bool__ raises: upstream would raise too
        return True


# ---------------------------------------------------------------------------------------------------- wire form
_TAGS = ("__package__", "__tuple__", "__set__", "__frozenset__", "__bytes__", "__dict__", "__float__")


class UnencodableValue(TypeError):
    """A value that cannot cross the sandbox boundary (a module, a function, an open file, ...)."""


def encode(value: Any, _depth: int = 0) -> Any:
    """Python value -> JSON-compatible value, lossless for the types Code nodes exchange."""
    if _depth > 200:
        raise UnencodableValue("value is nested more than 200 levels deep")
    d = _depth + 1
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"__float__": repr(value)}
    if isinstance(value, Package):
        return {"__package__": [encode(v, d) for v in value]}
    if isinstance(value, tuple):
        return {"__tuple__": [encode(v, d) for v in value]}
    if isinstance(value, list):
        return [encode(v, d) for v in value]
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value) and not (len(value) == 1 and next(iter(value)) in _TAGS):
            return {k: encode(v, d) for k, v in value.items()}
        return {"__dict__": [[encode(k, d), encode(v, d)] for k, v in value.items()]}
    if isinstance(value, (set, frozenset)):
        tag = "__frozenset__" if isinstance(value, frozenset) else "__set__"
        return {tag: [encode(v, d) for v in value]}
    if isinstance(value, (bytes, bytearray)):
        return {"__bytes__": base64.b64encode(bytes(value)).decode("ascii")}
    raise UnencodableValue(f"a {type(value).__name__} value cannot be passed between nodes "
                           "(only JSON-like data: None, bool, int, float, str, list, tuple, dict, set, bytes)")


def decode(value: Any) -> Any:
    """Inverse of ``encode``."""
    if isinstance(value, list):
        return [decode(v) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        tag, inner = next(iter(value.items()))
        if tag == "__package__":
            return Package(tuple(decode(v) for v in inner))
        if tag == "__tuple__":
            return tuple(decode(v) for v in inner)
        if tag == "__set__":
            return {decode(v) for v in inner}
        if tag == "__frozenset__":
            return frozenset(decode(v) for v in inner)
        if tag == "__bytes__":
            return base64.b64decode(inner)
        if tag == "__dict__":
            return {_hashable(decode(k)): decode(v) for k, v in inner}
        if tag == "__float__":
            return float(inner)
    return {k: decode(v) for k, v in value.items()}


def _hashable(key: Any) -> Any:
    return tuple(_hashable(k) for k in key) if isinstance(key, list) else key


# -------------------------------------------------------------------------------------------------- output form
def to_output(value: Any) -> Any:
    """What the CLI prints: tuples and packages become lists, sets sorted lists when they sort, bytes text when
    they are UTF-8 (else base64), non-string dict keys strings (as ``json.dumps`` does)."""
    if isinstance(value, (list, tuple)):
        return [to_output(v) for v in value]
    if isinstance(value, dict):
        return {_output_key(k): to_output(v) for k, v in value.items()}
    if isinstance(value, (set, frozenset)):
        items = [to_output(v) for v in value]
        try:
            return sorted(items)
        except TypeError:
            return items
    if isinstance(value, (bytes, bytearray)):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    return value


def _output_key(key: Any) -> str:
    if isinstance(key, str):
        return key
    if key is None or isinstance(key, (bool, int, float)):
        return next(iter(json.loads(json.dumps({key: 0}))))   # json's own spelling: "1", "true", "null"
    return json.dumps(to_output(key), ensure_ascii=False)


def output_json(value: Any) -> str:
    """One line of JSON for a result."""
    return json.dumps(to_output(value), ensure_ascii=False)


def parse_cli_input(text: str) -> Any:
    """``--input VALUE``: JSON when it parses, else the string itself."""
    try:
        return json.loads(text)
    except (json.JSONDecodeError, ValueError):
        return text


def upstream_str(value: Any) -> str:
    """``str()`` as upstream's REPL prints it (``answer: {res}``); a package prints as a tuple."""
    return str(value)
