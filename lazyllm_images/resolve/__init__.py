"""Request + recipes + host facts -> Plan. Pure: no engine, no network.

Steps: ``selection`` (items -> groups, packages, frameworks), ``choose`` (base, Python, torch, framework
releases, flash-attn; conflicts found here), ``conflicts`` (per-package version conflicts), ``stack``
(layers, constraints, Dockerfiles, content tags).
"""

from __future__ import annotations

import hashlib
import os
import re

from ..errors import PlanError
from ..host import HostFacts
from ..plan import Plan
from ..recipes import BaseRecipe, RecipeSet, load_recipes
from ..requests import BuildOptions
from .choose import Choice, NeedsDevelBase, base_candidates, choose
from .conflicts import check_package_conflicts
from .selection import Selection, select
from .stack import image_prefix, stack_layers


def _choose_on(bases: list[BaseRecipe], explicit: bool, sel: Selection, recipes: RecipeSet,
               build: BuildOptions, host: HostFacts) -> Choice:
    first: PlanError | None = None
    for base in bases:
        try:
            return choose(sel, recipes, base, build, host)
        except NeedsDevelBase as exc:
            devel = recipes.bases.get(base.name.replace("-runtime-", "-devel-"))
            if explicit or devel is None:
                raise
            choice = choose(sel, recipes, devel, build, host)
            choice.notes.append(f"devel base {devel.name} instead of {base.name}: {exc.message}")
            return choice
        except PlanError as exc:
            if explicit:
                raise
            first = first or exc
    raise first or PlanError("no base fits this request", "pass --base")


def friendly_tag(sel: Selection, choice: Choice, frameworks: tuple[str, ...] = ()) -> str:
    names = [f"serve-{f}" for f in frameworks] + [g.name for g in sel.groups] + sorted(re.sub(r"[^a-z0-9.]+", "-", str(n.requirement).lower()).strip("-")
                                                  for n in sel.packages)
    variant = {"cpu": "cpu", "ascend": "ascend"}.get(choice.base.accelerator) or f"cu{choice.base.cuda.replace('.', '')}"
    if choice.base.name == "offline":
        variant = "offline"
    slug = "-".join(names + [variant]) or variant
    if len(slug) > 100:
        slug = slug[:80].rstrip("-") + "-" + hashlib.sha256(slug.encode()).hexdigest()[:12]
    return f"{image_prefix()}/stack:{slug}"


def resolve(items: tuple[str, ...] | list[str], build: BuildOptions | None = None, recipes: RecipeSet | None = None,
            host: HostFacts | None = None, env: dict[str, str] | None = None,
            locks: dict[str, list[str]] | None = None, frameworks: tuple[str, ...] = ()) -> Plan:
    """``locks``: exact pins per layer name (from lazyllm.lock, for ``install --locked``); ``frameworks``:
    framework layers to add (what ``deploy`` asks for, besides the items)."""
    items = tuple(items)
    if not items and not frameworks:
        raise PlanError("nothing to install", "name groups or packages")
    build = build or BuildOptions()
    recipes = recipes or load_recipes()
    host = host or HostFacts()
    env = os.environ if env is None else env
    sel = select(items, recipes)
    for name in frameworks:
        if f"framework-{name}" not in recipes.layers:
            raise PlanError(f"unknown framework {name!r}", "frameworks: " + ", ".join(
                sorted(n[len("framework-"):] for n in recipes.layers if n.startswith("framework-"))))
        sel.frameworks.setdefault(name, [])
    bases, explicit = base_candidates(build, recipes, host, sel, env.get("LAZYLLM_BASE"))
    choice = _choose_on(bases, explicit, sel, recipes, build, host)
    check_package_conflicts(sel, choice, recipes)
    layers = stack_layers(recipes, choice, sel, locks)
    return Plan(items=items, groups=tuple(g.name for g in sel.groups),
                packages=tuple(str(n.requirement) for n in sel.packages), base=choice.base.name,
                base_image=choice.base.image, accelerator=choice.base.accelerator, cuda=choice.base.cuda,
                python=choice.python, torch=choice.torch_version,
                frameworks={(rel.package if rel else name): (rel.version if rel else "") for name, rel
                            in choice.frameworks.items()},
                layers=tuple(layers), stack_tag=friendly_tag(sel, choice, tuple(frameworks)), notes=tuple(choice.notes))
