"""The project's runtime layer: its Python dependencies (the ``runtime`` extra) and its code files."""

from __future__ import annotations

import functools
import hashlib

from packaging.requirements import Requirement

from ..paths import package_dir
from ..plan import ContextFile

SUFFIXES = {".py", ".html", ".js", ".css", ".json", ".svg", ".txt"}


@functools.lru_cache(maxsize=1)
def runtime_requirements() -> list[str]:
    """The ``runtime`` extra of this distribution (one source of truth: pyproject.toml)."""
    from importlib.metadata import PackageNotFoundError, requires
    try:
        reqs = requires("lazyllm-images") or []
    except PackageNotFoundError:
        reqs = []
    out = []
    for text in reqs:
        req = Requirement(text)
        if req.marker and req.marker.evaluate({"extra": "runtime"}) and not req.marker.evaluate({"extra": ""}):
            req.marker = None
            out.append(str(req))
    return sorted(out)


@functools.lru_cache(maxsize=1)
def runtime_files() -> list[ContextFile]:
    """``lazyllm_images/__init__.py`` and everything under ``lazyllm_images/runtime`` (the image's app/)."""
    pkg = package_dir()
    paths = [pkg / "__init__.py"] + sorted(p for p in (pkg / "runtime").rglob("*")
                                           if p.is_file() and p.suffix in SUFFIXES and "__pycache__" not in p.parts)
    out = []
    for p in paths:
        rel = p.relative_to(pkg.parent).as_posix()
        data = p.read_bytes()
        out.append(ContextFile(path=f"app/{rel}", digest=hashlib.sha256(data).hexdigest(), source=str(p)))
    return out
