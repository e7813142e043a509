"""Choice + selection -> the ordered layers, each with its constraints, Dockerfile and content tag."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from .. import LABEL_PREFIX, __version__
from ..compat import flash_attn_max_jobs, torch_index
from ..dockerfile import render, script
from ..plan import ContextFile, PlannedLayer
from ..recipes import LaunchNeeds, RecipeSet, Smoke
from .choose import Choice, framework_layer
from .runtime import runtime_files, runtime_requirements
from .selection import Need, Selection

SCHEME = 1                      # bump when the meaning of a tag changes
PIP_VERSION = "26.3"
UV_VERSION = "0.13.9"
PARENT_PLACEHOLDER = "<parent>"


def image_prefix() -> str:
    return os.environ.get("LAZYLLM_IMAGE_PREFIX", "lazyllm").rstrip("/")


def installer_override() -> str | None:
    """LAZYLLM_INSTALLER=pip|uv: one installer for every layer, over the recipes' choice (pip where uv fails
    on a host's index setup; the benchmark's pip side). Part of each Dockerfile, so of each tag."""
    value = os.environ.get("LAZYLLM_INSTALLER", "").strip().lower()
    if value and value not in ("uv", "pip"):
        from ..errors import PlanError
        raise PlanError(f"LAZYLLM_INSTALLER={value!r} is not an installer", "set it to uv or pip, or unset it")
    return value or None


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _inline(path: str, data: bytes) -> ContextFile:
    return ContextFile(path=path, digest=_digest(data), data=data)


@dataclass
class LayerSpec:
    """What one layer adds, before it is placed on the stack."""

    name: str
    role: str
    template: str
    recipe_keys: list[str]
    packages: list[str] = field(default_factory=list)
    system: list[str] = field(default_factory=list)
    pins_here: list[str] = field(default_factory=list)      # constraints for this layer and every layer above
    pins_above: list[str] = field(default_factory=list)     # constraints only for the layers above
    protect: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    launch: LaunchNeeds = field(default_factory=LaunchNeeds)
    smoke: Smoke = field(default_factory=Smoke)
    env: list[tuple[str, str]] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    description: str = ""
    wheelhouse: bool = True
    installer: str = "uv"                                     # uv | pip (the recipe's choice)
    excludes: list[str] = field(default_factory=list)        # dependencies never installed in this layer
    extra: dict = field(default_factory=dict)                # template variables
    files: list[ContextFile] = field(default_factory=list)


def _with_parent(text: str, parent: str) -> str:
    """The Dockerfile rendered with the placeholder parent, given its real one: the same text a second rendering
    would give (the parent appears only in the FROM line), at a fraction of the cost (rendering was a fifth of a
    plan's time)."""
    line = f"\nFROM {PARENT_PLACEHOLDER}\n"
    if line not in text:
        raise AssertionError(f"no 'FROM {PARENT_PLACEHOLDER}' line in a layer's Dockerfile")
    return text.replace(line, f"\nFROM {parent}\n", 1)


def _label_lines(labels: dict[str, str]) -> str:
    from ..dockerfile import dq
    return " \\\n      ".join(f"{k}={dq(v)}" for k, v in sorted(labels.items()))


def _merge(existing: list[str], new: list[str]) -> list[str]:
    out = list(existing)
    for item in new:
        if item not in out:
            out.append(item)
    return out


class Stacker:
    """Places layers bottom-up, carrying the cumulative constraints and protected packages."""

    def __init__(self, recipes: RecipeSet, choice: Choice, locks: dict[str, list[str]] | None = None):
        self.recipes, self.choice, self.locks = recipes, choice, locks or {}
        self.parent_ref, self.parent_id = choice.base.image, f"base:{choice.base.image}"
        self.constraints: list[str] = []
        self.protect: list[str] = []
        self.groups: list[str] = []
        self.layers: list[PlannedLayer] = []

    def add(self, spec: LayerSpec) -> PlannedLayer:
        here = _merge(self.constraints, spec.pins_here + self.locks.get(spec.name, []))
        protect = _merge(self.protect, [canonicalize_name(p) for p in spec.protect])
        self.groups = _merge(self.groups, spec.groups)
        files = [_inline("requirements.txt", "".join(f"{p}\n" for p in spec.packages).encode()),
                 _inline("constraints.txt", "".join(f"{c}\n" for c in here).encode()),
                 _inline("with-host-config.sh", script("with-host-config.sh")),
                 _inline("pkg-install.sh", script("pkg-install.sh")), *spec.files]
        if spec.excludes:
            files.append(_inline("excludes.txt", "".join(f"{p}\n" for p in spec.excludes).encode()))
        labels = self._labels(spec, here, protect)
        installer = installer_override() or spec.installer
        context = dict(name=spec.name, os=self.choice.base.os, system=spec.system, packages=spec.packages,
                       env=spec.env, commands=spec.commands, labels=_label_lines(labels), installer=installer,
                       excludes=spec.excludes,
                       **spec.extra)
        text = render(spec.template, parent=PARENT_PLACEHOLDER, **context)
        identity = {"scheme": SCHEME, "parent": self.parent_id, "name": spec.name,
                    "recipes": {k: self.recipes.digests.get(k, "") for k in spec.recipe_keys},
                    "constraints": here, "dockerfile": text, "files": {f.path: f.digest for f in files}}
        tag = _digest(json.dumps(identity, sort_keys=True).encode())[:16]
        layer = PlannedLayer(name=spec.name, role=spec.role, repository=f"{image_prefix()}/{spec.name}", tag=tag,
                             parent=self.parent_ref, packages=tuple(spec.packages), apt=tuple(spec.system),
                             constraints=tuple(here), protect=tuple(protect), groups=tuple(spec.groups),
                             launch=spec.launch.model_dump(exclude_defaults=True),
                             smoke=spec.smoke.model_dump(exclude_defaults=True),
                             dockerfile=_with_parent(text, self.parent_ref),
                             context=tuple(files), wheelhouse=spec.wheelhouse,
                             installer="" if spec.role == "python" else installer)
        self.layers.append(layer)
        self.parent_ref, self.parent_id = layer.ref, f"layer:{tag}"
        self.constraints, self.protect = _merge(here, spec.pins_above), protect
        return layer

    def _labels(self, spec: LayerSpec, constraints: list[str], protect: list[str]) -> dict[str, str]:
        c = self.choice
        p = LABEL_PREFIX
        labels = {f"{p}.managed": "true", f"{p}.kind": "layer", f"{p}.layer": spec.name, f"{p}.role": spec.role,
                  f"{p}.accelerator": c.base.accelerator, f"{p}.cuda": c.base.cuda or "",
                  f"{p}.python": c.python,
                  f"{p}.constraints": ";".join(constraints), f"{p}.protect": ",".join(protect),
                  f"{p}.groups": ",".join(self.groups),     # every group in this image (cumulative)
                  "org.opencontainers.image.title": f"lazyllm {spec.name}",
                  "org.opencontainers.image.description": spec.description[:200],
                  "org.opencontainers.image.vendor": "lazyllm-images",
                  "org.opencontainers.image.base.name": c.base.image}
        if spec.role == "torch":        # inherited by every layer above; absent below (they are shared)
            labels[f"{p}.torch"] = c.torch_version or ""
        launch = spec.launch.model_dump(exclude_defaults=True)
        if launch:
            labels[f"{p}.launch.{spec.name}"] = json.dumps(launch, sort_keys=True, separators=(",", ":"))
        smoke = spec.smoke.model_dump(exclude_defaults=True)
        if smoke:
            labels[f"{p}.smoke.{spec.name}"] = json.dumps(smoke, sort_keys=True, separators=(",", ":"))
        return labels


# ---------------------------------------------------------------- one spec per kind of layer

def python_spec(r: RecipeSet, c: Choice) -> LayerSpec:
    layer = r.layers["python"]
    system = [] if c.python_provider == "preinstalled" else ["python3", "python3-venv", "ca-certificates"]
    return LayerSpec("python", "python", "python", ["layer:python", f"base:{c.base.name}"], system=system,
                     smoke=layer.smoke, description=layer.description, wheelhouse=False,
                     extra=dict(provider=c.python_provider, python=c.python, pip=PIP_VERSION, uv=UV_VERSION,
                                system_site_packages=c.python_provider == "preinstalled"))


def torch_spec(r: RecipeSet, c: Choice, sel: Selection) -> LayerSpec:
    layer, t, v = r.layers["torch"], c.torch, c.torch_variant
    pins = [f"torch=={t.torch}+{v}"]
    if "torchvision" in sel.torch_extras:
        pins.append(f"torchvision=={t.torchvision}+{v}")
    if "torchaudio" in sel.torch_extras:
        pins.append(f"torchaudio=={t.torchaudio}+{v}")
    return LayerSpec("torch", "torch", "torch", ["layer:torch"], packages=pins, pins_here=pins,
                     protect=layer.protect, smoke=layer.smoke, description=layer.description,
                     installer=layer.installer, extra=dict(torch=t.torch, variant=v, index=torch_index(r, v)))


def flash_attn_spec(r: RecipeSet, c: Choice) -> LayerSpec:
    layer, fa = r.layers["flash-attn"], c.flash_attn
    return LayerSpec("flash-attn", "flash-attn", "flash_attn", ["layer:flash-attn"],
                     pins_above=[f"flash-attn=={fa.version}"], protect=layer.protect, smoke=layer.smoke,
                     description=layer.description, wheelhouse=False,
                     installer=layer.installer if fa.wheel_url else "pip",     # a source build: pip (template)
                     extra=dict(version=fa.version, wheel_url=fa.wheel_url, max_jobs=flash_attn_max_jobs(r)))


def _pin(text: str, version: str | None) -> str:
    if not version:
        return text
    req = Requirement(text)
    extras = f"[{','.join(sorted(req.extras))}]" if req.extras else ""
    return f"{req.name}{extras}=={version}"


def framework_spec(r: RecipeSet, c: Choice, name: str, sel: Selection) -> LayerSpec:
    layer = framework_layer(r, name)
    rel = c.frameworks.get(name)
    packages = [_pin(layer.packages[0], rel.version if rel else None)] + list(layer.packages[1:]) \
        if layer.packages else []
    version_pins = [f"{canonicalize_name(Requirement(packages[0]).name)}=={rel.version}"] if rel else []
    return LayerSpec(layer.name, "framework", layer.template, [f"layer:{layer.name}"], packages=packages,
                     system=list(layer.apt), pins_here=version_pins + list(layer.pins), protect=layer.protect,
                     launch=layer.launch, smoke=layer.smoke, env=sorted(layer.env.items()),
                     commands=list(layer.commands), description=layer.description, wheelhouse=layer.wheelhouse,
                     installer=layer.installer, excludes=list(layer.excludes), groups=[g.name for g in sel.groups if name in g.frameworks])


def group_spec(r: RecipeSet, c: Choice, name: str, sel: Selection) -> LayerSpec | None:
    g = r.groups[name]
    needs: list[Need] = list(sel.group_packages.get(name, []))
    if c.base.accelerator == "nvidia":
        needs += sel.cuda_packages.get(name, [])
    packages = [str(n.requirement) for n in needs]
    if not packages and not g.apt and not g.commands and not g.smoke.model_dump(exclude_defaults=True):
        return None
    return LayerSpec(f"group-{name}", "group", "pip", [f"group:{name}"], packages=packages, system=list(g.apt),
                     commands=list(g.commands), launch=g.launch, smoke=g.smoke, description=g.description,
                     groups=[name], installer=g.installer, excludes=list(g.excludes))


def packages_spec(r: RecipeSet, sel: Selection) -> LayerSpec | None:
    packages = [str(n.requirement) for n in sel.packages]
    if not packages:
        return None
    names = [Requirement(p).name for p in packages]
    return LayerSpec("packages", "packages", "pip", ["layer:packages"], packages=packages,
                     description=r.layers["packages"].description, installer=r.layers["packages"].installer,
                     smoke=Smoke(commands=[["pip", "show", "--quiet", *names]]))


def runtime_spec(r: RecipeSet) -> LayerSpec:
    layer = r.layers["runtime"]
    return LayerSpec("runtime", "runtime", "runtime", ["layer:runtime"], packages=runtime_requirements(),
                     smoke=layer.smoke, description=layer.description, files=runtime_files(), installer=layer.installer,
                     extra=dict(version=__version__))


def stack_layers(r: RecipeSet, c: Choice, sel: Selection,
                 locks: dict[str, list[str]] | None = None) -> list[PlannedLayer]:
    s = Stacker(r, c, locks)
    s.add(python_spec(r, c))
    if c.torch:
        s.add(torch_spec(r, c, sel))
    if c.flash_attn:
        s.add(flash_attn_spec(r, c))
    for name in sorted(c.frameworks, key=lambda n: (framework_layer(r, n).order, n)):
        s.add(framework_spec(r, c, name, sel))
    for g in sel.groups:
        spec = group_spec(r, c, g.name, sel)
        if spec:
            s.add(spec)
    spec = packages_spec(r, sel)
    if spec:
        s.add(spec)
    s.add(runtime_spec(r))
    return s.layers
