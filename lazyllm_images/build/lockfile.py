"""``lazyllm.lock``: the exact versions each layer of a stack installed; ``install --locked`` rebuilds them."""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import UsageError
from ..plan import Plan

VERSION = 1


def lock_path() -> Path:
    return Path(os.environ.get("LAZYLLM_LOCK_FILE", "lazyllm.lock"))


def write(plan: Plan, deltas: dict[str, list[str]], path: Path | None = None) -> Path:
    path = path or lock_path()
    data = {"version": VERSION, "items": list(plan.items), "stack": plan.stack_tag, "image": plan.top.ref,
            "base": plan.base_image, "python": plan.python, "torch": plan.torch,
            "layers": [{"name": layer.name, "image": layer.ref, "packages": deltas.get(layer.name, [])}
                       for layer in plan.layers]}
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)
    return path


def read_pins(items: tuple[str, ...], path: Path | None = None) -> dict[str, list[str]]:
    """Layer name -> exact pins, for a lock written for the same items (in any order)."""
    path = path or lock_path()
    if not path.is_file():
        raise UsageError(f"--locked needs {path}, which does not exist",
                         "run 'lazyllm install ...' once without --locked to write it")
    try:
        data = json.loads(path.read_text())
    except ValueError as exc:
        raise UsageError(f"{path} is not a valid lock file ({exc})", "delete it and install again") from exc
    if sorted(data.get("items", [])) != sorted(items):
        raise UsageError(f"{path} was written for '{' '.join(data.get('items', []))}', not '{' '.join(items)}'",
                         "install the same items, or point LAZYLLM_LOCK_FILE at their lock")
    return {layer["name"]: [p for p in layer["packages"] if "==" in p] for layer in data.get("layers", [])}
