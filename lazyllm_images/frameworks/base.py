"""What every framework adapter shares: its option table (data), its needs, and the option mapping.

A user's ``--key=value`` / ``--flag`` options (upstream LazyLLM's names, ``-`` or ``_`` alike) become the
framework's own flags in an argv list. Generation defaults (``--temperature``, ``--top_p``, ``--max_tokens`` ...)
are pulled out first: a framework that can make them the server's defaults does (``apply_generation``); in every
case they come back in ``ServerCommand.generation`` so the chat page sends them with each request too.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from typing import Sequence

from ..errors import UsageError
from ..launch.spec import PYTHON, GpuRequest

TRUE_WORDS = ("true", "1", "on", "yes")
FALSE_WORDS = ("false", "0", "off", "no")
GENERATION_INT = ("max_tokens", "top_k")
GENERATION_FLOAT = ("temperature", "top_p", "min_p", "repetition_penalty", "presence_penalty", "frequency_penalty")
GENERATION_ALIASES = {"max_new_tokens": "max_tokens"}


@dataclass(frozen=True)
class Option:
    flag: str                  # the framework's own spelling, e.g. --tensor-parallel-size
    kind: str = "value"        # value | switch | list


def option_table(text: str) -> dict[str, Option]:
    """Parse a whitespace-separated flag list: ``--flag`` takes a value, ``--flag!`` is a switch, ``--flag*``
    takes several values. Keys are normalised (no dashes in front, ``_`` for ``-``, lower case)."""
    table: dict[str, Option] = {}
    for token in text.split():
        kind = {"!": "switch", "*": "list"}.get(token[-1], "value")
        flag = token.rstrip("!*")
        table[norm(flag)] = Option(flag, kind)
    return table


def norm(key: str) -> str:
    return key.strip().lstrip("-").replace("-", "_").lower()


@dataclass(frozen=True)
class Needs:
    """What a framework needs from its container."""

    gpu: str = "required"                    # required | optional | none
    vendors: tuple[str, ...] = ("nvidia",)
    shm_size: str | None = None              # a sized /dev/shm (preferred to ipc=host: no shared IPC namespace)
    ipc_host: bool = False
    capabilities: tuple[str, ...] = ("compute", "utility")
    non_root: bool = True
    read_only_rootfs: bool = False
    cap_add: tuple[str, ...] = ()
    min_compute_capability: str | None = None


@dataclass(frozen=True)
class ServerCommand:
    """What ``server_argv`` produces. ``secret_env`` goes to the container on stdin, never into the spec."""

    argv: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)
    secret_env: dict[str, str] = field(default_factory=dict)
    generation: dict[str, float | int] = field(default_factory=dict)   # OpenAI names; the chat page sends them
    generation_on_server: tuple[str, ...] = ()                         # of those, what the server applies itself
    files: tuple[tuple[str, str], ...] = ()                            # (container path, text) mounted read-only
    notes: tuple[str, ...] = ()


@dataclass
class _Parsed:
    options: dict[str, str | bool | list[str]] = field(default_factory=dict)   # known: key -> value
    unknown: list[tuple[str, str | None]] = field(default_factory=list)          # passed through as given
    generation: dict[str, float | int] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    secret_env: dict[str, str] = field(default_factory=dict)


class Framework:
    """One inference framework. Subclasses fill in the class attributes and ``base_argv``."""

    name = ""
    model_kinds: tuple[str, ...] = ("llm",)
    api_kind = "openai-chat"                 # openai-chat | openai-embeddings | generate
    api_base = "/v1"
    container_port = 8000
    health_path = "/health"
    needs = Needs()
    OPTIONS: dict[str, Option] = {}
    ALIASES: dict[str, str] = {}             # upstream LazyLLM names -> OPTIONS keys
    RESERVED: dict[str, str] = {}            # handled by lazyllm -> what to use instead
    SECRETS: dict[str, str] = {}             # option -> environment variable the server reads it from
    ENV_OPTIONS: dict[str, str] = {}         # option -> environment variable (not secret)
    generation_mode = "request"              # server | request | reject

    # ------------------------------------------------------------------ hooks
    def base_argv(self, model_path: str, served_name: str, port: int, gpus: GpuRequest) -> list[str]:
        raise NotImplementedError

    def default_options(self, gpus: GpuRequest, gpu_count: int | None) -> dict[str, str | bool]:
        return {}

    def default_env(self, gpus: GpuRequest) -> dict[str, str]:
        return {}

    def apply_generation(self, parsed: _Parsed, argv: list[str]) -> tuple[str, ...]:
        """Make generation defaults the server's own where the framework can; return the keys it applied."""
        return ()

    # ------------------------------------------------------------------ the mapping
    def server_argv(self, model_path: str, served_name: str, port: int | None = None,
                    options: Sequence[tuple[str, str]] = (), flags: Sequence[str] = (),
                    pass_unknown: bool = False, *, gpus: GpuRequest | None = None,
                    gpu_count: int | None = None) -> ServerCommand:
        """The server's argv (no shell) for the user's ``--key=value`` options and ``--flag`` switches."""
        gpus = gpus or GpuRequest.none()
        port = port or self.container_port
        parsed = self.parse_options(options, flags, pass_unknown)
        merged: dict[str, str | bool | list[str]] = dict(self.default_options(gpus, gpus.size if gpus.size is not None else gpu_count))
        merged.update(parsed.options)
        argv = self.base_argv(model_path, served_name, port, gpus)
        argv += self.render_options(merged)
        for key, value in parsed.unknown:
            argv += [f"--{key}"] if value is None else [f"--{key}", value]
        on_server = self.apply_generation(parsed, argv)
        env = {**self.default_env(gpus), **parsed.env}
        return ServerCommand(argv=tuple(argv), env=env, secret_env=parsed.secret_env,
                             generation=parsed.generation, generation_on_server=on_server)

    def parse_options(self, options: Sequence[tuple[str, str]], flags: Sequence[str],
                      pass_unknown: bool) -> _Parsed:
        parsed = _Parsed()
        seen: set[str] = set()
        for raw, value in [*options, *((f, None) for f in flags)]:
            key = norm(raw)
            key = self.ALIASES.get(key, GENERATION_ALIASES.get(key, key))
            if key in seen:
                raise UsageError(f"--{raw} is given twice", "give each option once")
            seen.add(key)
            self._take(parsed, raw, key, value, pass_unknown)
        return parsed

    def _take(self, parsed: _Parsed, raw: str, key: str, value: str | None, pass_unknown: bool) -> None:
        if key in self.RESERVED:
            raise UsageError(f"--{raw} is set by lazyllm for {self.name}", self.RESERVED[key])
        if key in GENERATION_INT + GENERATION_FLOAT:
            if self.generation_mode == "reject":
                raise UsageError(f"--{raw} is a text-generation setting; {self.name} serves embeddings",
                                 "drop it, or deploy a chat model with an LLM framework")
            parsed.generation[key] = _number(raw, key, value)
        elif key in self.SECRETS:
            parsed.secret_env[self.SECRETS[key]] = _needs_value(raw, value)
        elif key in self.ENV_OPTIONS:
            parsed.env[self.ENV_OPTIONS[key]] = _needs_value(raw, value)
        elif key in self.OPTIONS:
            parsed.options[key] = _convert(raw, self.OPTIONS[key], value)
        elif pass_unknown:
            parsed.unknown.append((raw.lstrip("-"), value))
        else:
            raise self.unknown_error(raw)

    def unknown_error(self, raw: str) -> UsageError:
        known = {**{k: o.flag for k, o in self.OPTIONS.items()}, **{k: f"--{k}" for k in self.ENV_OPTIONS},
                 **{k: f"--{k}" for k in self.ALIASES}}
        close = difflib.get_close_matches(norm(raw), list(known), n=3, cutoff=0.6)
        shown = ", ".join(dict.fromkeys(known[c] for c in close))
        hint = (f"did you mean {shown}? " if shown else "") + \
            f"pass --pass-unknown to hand it to {self.name} unchanged"
        return UsageError(f"{self.name} has no option --{raw.lstrip('-')}", hint)

    def render_options(self, options: dict[str, str | bool | list[str]]) -> list[str]:
        argv: list[str] = []
        for key, value in options.items():
            opt = self.OPTIONS[key]
            if opt.kind == "switch":
                argv += [opt.flag] if value else []
            elif opt.kind == "list":
                argv += [opt.flag, *value]
            else:
                argv += [opt.flag, str(value)]
        return argv

    def known_options(self) -> list[str]:
        """The flags this adapter maps, for checking against the framework's real parser."""
        return sorted(o.flag for o in self.OPTIONS.values())


def _needs_value(raw: str, value: str | None) -> str:
    if value is None:
        raise UsageError(f"--{raw} needs a value", f"write --{raw}=VALUE")
    return value


def _convert(raw: str, opt: Option, value: str | None) -> str | bool | list[str]:
    if opt.kind == "switch":
        if value is None or value.strip().lower() in TRUE_WORDS:
            return True
        if value.strip().lower() in FALSE_WORDS:
            return False
        raise UsageError(f"--{raw} is a switch; {value!r} is not true or false", f"write --{raw} or --{raw}=false")
    text = _needs_value(raw, value)
    if opt.kind == "list":
        items = [v for v in re.split(r"[,\s]+", text) if v]
        if not items:
            raise UsageError(f"--{raw} needs at least one value", f"write --{raw}=A,B")
        return items
    return text


def _number(raw: str, key: str, value: str | None) -> float | int:
    text = _needs_value(raw, value)
    try:
        number: float | int = int(text) if key in GENERATION_INT else float(text)
    except ValueError:
        kind = "an integer" if key in GENERATION_INT else "a number"
        raise UsageError(f"--{raw}={text} is not {kind}", f"e.g. --{raw}=" + ("2048" if key in GENERATION_INT
                                                                            else "0.7")) from None
    bad = {"temperature": number < 0, "top_p": not 0 < number <= 1, "min_p": not 0 <= number <= 1,
           "max_tokens": number < 1, "repetition_penalty": number <= 0}.get(key, False)
    if bad:
        raise UsageError(f"--{raw}={text} is out of range", "temperature >= 0, 0 < top_p <= 1, max_tokens >= 1")
    return number


def python_module(module: str, *args: str) -> list[str]:
    return [PYTHON, "-m", module, *args]
