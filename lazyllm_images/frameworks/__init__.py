"""Framework adapters, one module each, and the registry ``get(name)``.

``auto`` is not an adapter: ``frameworks.auto.choose`` picks one of these for a model kind and a host.
"""

from __future__ import annotations

import difflib

from ..errors import UsageError
from .base import Framework, Needs, Option, ServerCommand

NAMES = ("vllm", "vllm-cpu", "lightllm", "lmdeploy", "infinity", "embedding", "mindie")


def _registry() -> dict[str, type[Framework]]:
    from .embedding import Embedding
    from .infinity import Infinity
    from .lightllm import Lightllm
    from .lmdeploy import Lmdeploy
    from .mindie import Mindie
    from .vllm import Vllm
    from .vllm_cpu import VllmCpu
    return {c.name: c for c in (Vllm, VllmCpu, Lightllm, Lmdeploy, Infinity, Embedding, Mindie)}


def get(name: str) -> Framework:
    """The adapter for ``name`` (case-insensitive; ``vllm_cpu`` = ``vllm-cpu``)."""
    key = name.strip().lower().replace("_", "-")
    registry = _registry()
    if key not in registry:
        close = difflib.get_close_matches(key, list(registry), n=2, cutoff=0.5)
        hint = (f"did you mean {', '.join(close)}? " if close else "") + f"frameworks: {', '.join(NAMES)}, auto"
        raise UsageError(f"unknown framework {name!r}", hint)
    return registry[key]()


def names() -> tuple[str, ...]:
    return NAMES


__all__ = ["Framework", "Needs", "Option", "ServerCommand", "get", "names", "NAMES"]
