"""Where the recipes, templates and per-user state live."""

from __future__ import annotations

import os
from pathlib import Path

_PKG = Path(__file__).resolve().parent


def _data_dir(name: str) -> Path:
    installed = _PKG / "_data" / name          # wheel: force-included by pyproject
    if installed.is_dir():
        return installed
    return _PKG.parent / name                  # source checkout / editable install


def recipes_dir() -> Path:
    return Path(os.environ.get("LAZYLLM_RECIPES", _data_dir("recipes")))


def dockerfiles_dir() -> Path:
    return _data_dir("dockerfiles")


def package_dir() -> Path:
    return _PKG


def state_path() -> Path:
    """Per-user state: build logs, contexts, generated service files. ``LAZYLLM_HOME`` overrides. (No I/O.)"""
    return Path(os.environ.get("LAZYLLM_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "lazyllm"))


def state_dir() -> Path:
    """``state_path()``, created when missing."""
    path = state_path()
    path.mkdir(parents=True, exist_ok=True)
    return path


def service_files_dir(service: str) -> Path:
    """Where a service's generated files (configs a framework needs, e.g. MindIE's) are written and bind-mounted
    from; made at launch, removed with the service. (No I/O.)"""
    return state_path() / "services" / service
