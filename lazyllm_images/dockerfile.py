"""Plan layer -> Dockerfile text: jinja2 templates in ``dockerfiles/``, rendered by a pure function.

No ``# syntax=`` line: it makes BuildKit pull a frontend image from a registry; the engine's built-in
Dockerfile frontend already supports ``RUN --mount=type=cache|secret|bind``.
"""

from __future__ import annotations

import functools
import json
import os
import re
from pathlib import Path

from .paths import dockerfiles_dir, state_dir


def dq(value) -> str:
    """A Dockerfile double-quoted string: JSON escaping, and ``$`` kept from variable substitution."""
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, separators=(",", ":"))
    return json.dumps(text, ensure_ascii=False).replace("$", "\\$")


def _bytecode_cache():
    """Compiled templates kept between runs (keyed by each template's source checksum): compiling the templates
    was a quarter of a plan's time. None where the state folder cannot be written."""
    import jinja2
    try:
        folder = state_dir() / "jinja"
        folder.mkdir(exist_ok=True)
        if not os.access(folder, os.W_OK):
            return None
    except OSError:
        return None
    return jinja2.FileSystemBytecodeCache(str(folder))


@functools.lru_cache(maxsize=1)
def _environment():
    import jinja2
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(dockerfiles_dir())), undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True, autoescape=False,
                             bytecode_cache=_bytecode_cache())
    env.filters["dq"] = dq
    return env


def render(template: str, **context) -> str:
    text = _environment().get_template(f"{template}.j2").render(**context)
    text = re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"
    return text


def script(name: str) -> bytes:
    return (Path(dockerfiles_dir()) / "scripts" / name).read_bytes()
