"""A layer's build context on disk: a stable folder per layer tag (so BuildKit transfers only what changed)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from ..paths import state_dir
from ..plan import PlannedLayer
from .hostconfig import wheel_files


def _link_or_copy(src: Path, dst: Path) -> None:
    if dst.exists():
        if dst.stat().st_size == src.stat().st_size and dst.stat().st_mtime >= src.stat().st_mtime:
            return
        dst.unlink()
    try:
        os.link(src, dst)                 # a hard link: BuildKit does not follow symlinks out of the context
    except OSError:
        shutil.copy2(src, dst)


def materialize(layer: PlannedLayer, wheelhouses: tuple[str, ...]) -> Path:
    root = state_dir() / "contexts" / f"{layer.name}-{layer.tag}"
    root.mkdir(parents=True, exist_ok=True)
    wanted = set()
    for f in layer.context:
        dst = root / f.path
        dst.parent.mkdir(parents=True, exist_ok=True)
        wanted.add(dst)
        if f.data is not None:
            if not dst.exists() or dst.read_bytes() != f.data:
                dst.write_bytes(f.data)
        else:
            _link_or_copy(Path(f.source), dst)
    (root / "Dockerfile").write_text(layer.dockerfile)
    wheels = root / "wheels"
    if layer.wheelhouse:
        wheels.mkdir(exist_ok=True)
        for w in wheel_files(wheelhouses):
            _link_or_copy(w, wheels / w.name)
    elif wheels.exists():
        shutil.rmtree(wheels)
    return root
