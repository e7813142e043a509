"""Requirements on one package from two places that no release can satisfy: found before any build."""

from __future__ import annotations

import itertools

from packaging.requirements import Requirement

from ..errors import PlanError
from ..recipes import RecipeSet
from ..versions import compatible
from .choose import Choice, framework_layer
from .selection import Need, Selection


def _all_needs(sel: Selection, choice: Choice, recipes: RecipeSet) -> list[Need]:
    needs: list[Need] = []
    for g in sel.groups:
        needs += sel.group_packages.get(g.name, [])
        if choice.base.accelerator == "nvidia":
            needs += sel.cuda_packages.get(g.name, [])
    needs += sel.packages
    for name, rel in choice.frameworks.items():
        layer = framework_layer(recipes, name)
        source = f"framework {name}" + (f" {rel.version}" if rel else "")
        needs += [Need(Requirement(p), source) for p in layer.pins]
        if rel:
            needs.append(Need(Requirement(f"{rel.package}=={rel.version}"), source))
        needs += sel.frameworks.get(name, [])
    if choice.torch:
        needs.append(Need(Requirement(f"torch=={choice.torch.torch}"), "the torch layer"))
    return needs


def check_package_conflicts(sel: Selection, choice: Choice, recipes: RecipeSet) -> None:
    by_name: dict[str, list[Need]] = {}
    for need in _all_needs(sel, choice, recipes):
        if need.requirement.url is None:
            by_name.setdefault(need.name, []).append(need)
    for name, needs in by_name.items():
        for a, b in itertools.combinations(needs, 2):
            if not compatible(a.requirement.specifier, b.requirement.specifier):
                raise PlanError(f"{a.requirement} ({a.source}) conflicts with {b.requirement} ({b.source})",
                                f"no {name} release satisfies both: drop one of them or relax its version")
