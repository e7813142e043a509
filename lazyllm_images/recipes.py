"""Recipes: declarative bases, layers and groups (``recipes/*.yaml``), validated by pydantic models.

``recipes/schema.json`` is generated from these models (``python -m lazyllm_images.recipes --schema``) so
editors can check recipe files; a unit test keeps it in sync.
"""

from __future__ import annotations

import functools
import json
import os
import re
from pathlib import Path
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .errors import PlanError
from .paths import recipes_dir

Accelerator = Literal["cpu", "nvidia", "ascend"]


def _check_requirement(text: str) -> str:
    from packaging.requirements import InvalidRequirement, Requirement
    try:
        Requirement(text)
    except InvalidRequirement as exc:
        raise ValueError(f"invalid requirement {text!r}: {exc}") from exc
    return text


def _no_newlines(text: str) -> str:
    if "\n" in text or "\r" in text:
        raise ValueError("one command per entry: no newlines (use several entries)")
    return text


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)   # built on first validation


class PortNeed(Strict):
    name: str
    port: int = Field(ge=1, le=65535)
    protocol: Literal["http", "tcp"] = "http"


class MountNeed(Strict):
    target: str
    purpose: str
    read_only: bool = True
    kind: Literal["bind", "volume", "tmpfs"] = "bind"


class LaunchNeeds(Strict):
    """What a layer needs at launch; stored in the image's labels and read back by deploy/run."""

    ports: list[PortNeed] = []
    health: Optional[str] = None             # HTTP path answering 200 when ready
    shm_size: Optional[str] = None           # e.g. "8g"
    ipc_host: bool = False
    gpu: Literal["none", "optional", "required"] = "none"
    gpu_capabilities: list[str] = []         # NVIDIA_DRIVER_CAPABILITIES beyond compute,utility (e.g. video)
    mounts: list[MountNeed] = []
    env: dict[str, str] = {}
    user: Optional[str] = None               # non-root user the process can run as


class Smoke(Strict):
    """Checks run in the freshly built image, no network, no privileges."""

    imports: list[str] = []                  # python modules that must import
    commands: list[list[str]] = []           # argv lists that must exit 0
    gpu: list[str] = []                      # python snippets run only when a GPU is present


class Requires(Strict):
    accelerator: Optional[list[Accelerator]] = None
    cuda_min: Optional[str] = None
    python: Optional[str] = None             # a specifier, e.g. ">=3.9,<3.13"
    arch: Optional[list[str]] = None
    base_provides: list[str] = []            # e.g. [mindie]


class BaseRecipe(Strict):
    kind: Literal["base"] = "base"
    name: str
    description: str = ""
    image: str
    os: str                                  # debian-12, ubuntu-22.04
    arch: list[str] = ["x86_64"]
    accelerator: Accelerator
    cuda: Optional[str] = None
    flavor: Optional[Literal["runtime", "devel"]] = None
    python: str                              # the distribution's (or image's) own Python
    python_provider: Literal["apt", "preinstalled"] = "apt"
    provides: list[str] = []
    bootstrap: Optional[dict[str, str]] = None   # offline bases: how `images bootstrap` makes them


class Installs(Strict):
    """Checks shared by recipes that install things: valid requirements, one command per entry."""

    @field_validator("packages", "pins", "cuda_packages", check_fields=False)
    @classmethod
    def _requirements(cls, v: list[str]) -> list[str]:
        return [_check_requirement(x) for x in v]

    @field_validator("excludes", check_fields=False)
    @classmethod
    def _names(cls, v: list[str]) -> list[str]:
        for name in v:
            if not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?", name):
                raise ValueError(f"{name!r} is not a package name (excludes takes names, no versions)")
        return v

    @field_validator("commands", check_fields=False)
    @classmethod
    def _commands(cls, v: list[str]) -> list[str]:
        return [_no_newlines(x) for x in v]


class LayerRecipe(Installs):
    kind: Literal["layer"] = "layer"
    name: str
    role: Literal["python", "torch", "flash-attn", "framework", "runtime", "packages"]
    description: str = ""
    order: int = 50                          # place in the stack (low = low)
    template: str = "pip"
    apt: list[str] = []
    packages: list[str] = []                 # pip requirements installed by this layer
    pins: list[str] = []                     # constraints this layer imposes on every layer above it
    protect: list[str] = []                  # installed versions that no layer above may change
    torch: Optional[str] = None              # torch specifier this layer needs (framework pins)
    needs_torch: bool = False
    wheelhouse: bool = True                  # mount the host's local wheelhouse into the pip step
    installer: Literal["uv", "pip"] = "uv"   # what installs the packages (pip: a fallback the recipe chooses)
    excludes: list[str] = []                 # dependencies never installed here (uv leaves them out; pip removes)
    commands: list[str] = []                 # extra RUN lines (one command each)
    env: dict[str, str] = {}
    requires: Requires = Requires()
    launch: LaunchNeeds = LaunchNeeds()
    smoke: Smoke = Smoke()


class GroupRecipe(Installs):
    kind: Literal["group"] = "group"
    name: str
    description: str = ""
    order: int = 50                          # heavy, stable groups low (smaller numbers)
    includes: list[str] = []                 # groups this one contains (their layers sit below it)
    packages: list[str] = []
    cuda_packages: list[str] = []            # only on CUDA plans (flash-attn, bitsandbytes, ...)
    frameworks: list[str] = []               # framework layers this group brings (vllm, lmdeploy, ...)
    needs_torch: bool = False
    torch: Optional[str] = None
    apt: list[str] = []
    commands: list[str] = []                 # extra RUN lines after the pip install (one command each)
    installer: Literal["uv", "pip"] = "uv"   # what installs the packages (pip: a fallback the recipe chooses)
    excludes: list[str] = []                 # dependencies never installed here (uv leaves them out; pip removes)
    requires: Requires = Requires()
    launch: LaunchNeeds = LaunchNeeds()
    smoke: Smoke = Smoke()
    upstream: bool = False                   # a group of upstream LazyLLM's pyproject


class RecipeSet(BaseModel):
    """Everything under ``recipes/``: bases, layers, groups and the compatibility tables."""

    model_config = ConfigDict(frozen=True, defer_build=True)
    bases: dict[str, BaseRecipe]
    layers: dict[str, LayerRecipe]
    groups: dict[str, GroupRecipe]
    compat: dict[str, object]
    digests: dict[str, str]                  # recipe name -> sha256 of its canonical content

    def group(self, name: str) -> GroupRecipe | None:
        return self.groups.get(normalize_name(name))

    def layer(self, name: str) -> LayerRecipe:
        return self.layers[name]


def normalize_name(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def _canonical_digest(data: object) -> str:
    import hashlib
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _read_yaml(path: Path):
    import yaml
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)     # libyaml: 8x faster than the pure loader
    try:
        return yaml.load(path.read_text(), Loader=loader)
    except yaml.YAMLError as exc:
        raise PlanError(f"recipe {path} is not valid YAML: {exc}", "fix the file") from exc


def _validate(model, data, path: Path):
    from pydantic import ValidationError
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise PlanError(f"recipe {path.name}: {where}: {first['msg']}",
                        f"see recipes/schema.json for the fields ({len(exc.errors())} problem(s))") from exc


def load_recipes(root: Path | None = None) -> RecipeSet:
    root = Path(root or recipes_dir())
    files = sorted(root.rglob("*.yaml")) if root.is_dir() else []
    signature = tuple((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in files)
    return _load(str(root), signature)


def _cache_path(root_str: str, signature: tuple) -> Path | None:
    """Where the validated set for these exact files (and this schema module) is kept between runs."""
    import hashlib
    from .paths import state_dir
    try:
        digest = hashlib.sha256(Path(__file__).read_bytes())     # the schema these objects were validated by
        for path, _mtime, _size in signature:                    # contents, not times: an edit is always seen
            digest.update(path.encode() + b"\0" + Path(path).read_bytes() + b"\0")
        return state_dir() / "recipes" / f"{digest.hexdigest()[:32]}.pickle"
    except OSError:
        return None


@functools.lru_cache(maxsize=8)
def _load(root_str: str, signature: tuple) -> RecipeSet:
    """Validated recipes: from the per-user cache when no file changed (YAML parsing and validation were a sixth
    of a plan's time), else read, validated and cached. Anything wrong with the cache means 'read again'."""
    import pickle
    if not Path(root_str).is_dir():
        raise PlanError(f"no recipes folder at {root_str}", "set LAZYLLM_RECIPES to the recipes folder")
    cache = _cache_path(root_str, signature)
    try:
        if cache is not None and cache.is_file():
            recipes = pickle.loads(cache.read_bytes())
            if isinstance(recipes, RecipeSet):
                return recipes
    except Exception:  # noqa: BLE001 - a stale or foreign cache file is only a cache miss
        pass
    recipes = _read_and_validate(Path(root_str))
    if cache is not None:
        try:
            cache.parent.mkdir(exist_ok=True)
            tmp = cache.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_bytes(pickle.dumps(recipes, protocol=pickle.HIGHEST_PROTOCOL))
            os.replace(tmp, cache)
            kept = sorted(cache.parent.glob("*.pickle"), key=lambda p: p.stat().st_mtime, reverse=True)
            for old in kept[8:]:                                  # a few recipe folders' worth, not every edit
                old.unlink(missing_ok=True)
        except OSError:
            pass
    return recipes


def _read_and_validate(root: Path) -> RecipeSet:
    bases, layers, groups, digests = {}, {}, {}, {}
    for path in sorted((root / "bases").glob("*.yaml")):
        for entry in _read_yaml(path) or []:
            base = _validate(BaseRecipe, entry, path)
            bases[base.name] = base
            digests[f"base:{base.name}"] = _canonical_digest(base.model_dump(mode="json"))
    for folder, model, into in (("layers", LayerRecipe, layers), ("groups", GroupRecipe, groups)):
        for path in sorted((root / folder).glob("*.yaml")):
            recipe = _validate(model, _read_yaml(path), path)
            if recipe.name != path.stem:
                raise PlanError(f"recipe {path.name} is named {recipe.name!r}", "name a recipe after its file")
            into[recipe.name] = recipe
            digests[f"{recipe.kind}:{recipe.name}"] = _canonical_digest(recipe.model_dump(mode="json"))
    compat = {p.stem: _read_yaml(p) for p in sorted((root / "compat").glob("*.yaml"))}
    recipes = RecipeSet(bases=bases, layers=layers, groups=groups, compat=compat, digests=digests)
    _check_references(recipes)
    return recipes


def _check_references(r: RecipeSet) -> None:
    for g in r.groups.values():
        for inc in g.includes:
            if inc not in r.groups:
                raise PlanError(f"group {g.name} includes unknown group {inc!r}", "fix recipes/groups")
        for fw in g.frameworks:
            if f"framework-{fw}" not in r.layers:
                raise PlanError(f"group {g.name} needs unknown framework {fw!r}", "fix recipes/groups")


def json_schema() -> dict:
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "lazyllm-images recipe",
        "description": "A recipe file under recipes/: bases/*.yaml hold a list of bases; layers/ and groups/ one each.",
        "oneOf": [{"$ref": "#/$defs/LayerRecipe"}, {"$ref": "#/$defs/GroupRecipe"},
                  {"type": "array", "items": {"$ref": "#/$defs/BaseRecipe"}}],
        "$defs": {m.__name__: m.model_json_schema(ref_template="#/$defs/{model}")
                  for m in (BaseRecipe, LayerRecipe, GroupRecipe)},
    }


def _flatten_defs(schema: dict) -> dict:
    defs = schema["$defs"]
    for name in list(defs):
        inner = defs[name].pop("$defs", {})
        defs.update(inner)
    return schema


if __name__ == "__main__":
    import sys
    if "--schema" in sys.argv:
        print(json.dumps(_flatten_defs(json_schema()), indent=2, sort_keys=True))
