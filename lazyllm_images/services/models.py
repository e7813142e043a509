"""Where a model comes from: a local directory (mounted read-only), a package in the image (models that need no
hub, ``recipes/models.yaml``), or a hub id (downloaded at run time into a named cache volume, ``services.hub``)."""

from __future__ import annotations

import functools
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import UsageError
from ..paths import recipes_dir

MARKER_FILES = ("config.json", "modules.json", "sentence_bert_config.json", "config_sentence_transformers.json")


@dataclass(frozen=True)
class ModelSource:
    kind: str                          # dir | package | hub
    spec: str                          # what the user wrote
    served_name: str
    host_path: str | None = None
    package: str | None = None
    module: str | None = None
    subdir: str = ""
    files: tuple[tuple[str, str], ...] = ()   # marker files of a local directory (for the model-kind guess)
    model_kind: str | None = None             # known kind (catalog entries): llm | embed | rerank

    @property
    def install_items(self) -> tuple[str, ...]:
        return (self.package,) if self.package else ()

    def path_in_image(self, python: str) -> str:
        base = f"/opt/venv/lib/python{python}/site-packages/{self.module}"
        return f"{base}/{self.subdir}" if self.subdir else base


@functools.lru_cache(maxsize=1)
def catalog() -> tuple[dict, ...]:
    import yaml
    path = recipes_dir() / "models.yaml"
    return tuple(yaml.safe_load(path.read_text()) or []) if path.is_file() else ()


def _slug(text: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_.-]+", "-", text).strip("-.") or "model"


def _read_markers(folder: Path) -> tuple[tuple[str, str], ...]:
    out = []
    for name in MARKER_FILES:
        path = folder / name
        if path.is_file() and path.stat().st_size < 1_000_000:
            out.append((name, path.read_text(errors="replace")))
    return tuple(out)


def resolve_model(spec: str) -> ModelSource:
    text = spec.strip()
    if not text:
        raise UsageError("the model is empty", "name a model directory, a hub id or a packaged model")
    looks_like_path = text.startswith(("/", "./", "../", "~")) or os.path.isdir(os.path.expanduser(text))
    if looks_like_path:
        folder = Path(os.path.expanduser(text)).resolve()
        if not folder.is_dir():
            raise UsageError(f"model directory {folder} does not exist",
                             "give an existing directory, a hub id (org/name) or a packaged model name")
        if not any(folder.iterdir()):
            raise UsageError(f"model directory {folder} is empty", "it should hold config.json and the weights")
        return ModelSource("dir", text, _slug(folder.name), host_path=str(folder), files=_read_markers(folder))
    lowered = text.lower()
    for entry in catalog():
        names = [entry["name"].lower()] + [a.lower() for a in entry.get("aliases", [])]
        if lowered in names:
            return ModelSource("package", text, entry["name"], package=entry["package"], module=entry["module"],
                               subdir=entry.get("subdir", ""), model_kind=entry.get("kind"))
    from .hub import check_repo_id
    return ModelSource("hub", text, _slug(check_repo_id(text).split("/")[-1]))


def files_dict(source: ModelSource) -> dict:
    out = {}
    for name, text in source.files:
        try:
            out[name] = json.loads(text)
        except ValueError:
            out[name] = text
    return out
