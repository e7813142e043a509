"""The Plan: an ordered stack of layers, each tagged by a hash of its content. Pure data."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ContextFile:
    """A file the layer's build context holds: ``data`` inline, or a copy of the host file ``source``."""

    path: str
    digest: str
    data: bytes | None = None
    source: str | None = None


@dataclass(frozen=True)
class PlannedLayer:
    name: str                         # python, torch, flash-attn, framework-vllm, group-embedding, packages, runtime
    role: str                         # python|torch|flash-attn|framework|group|packages|runtime
    repository: str                   # lazyllm/<name>
    tag: str                          # content hash
    parent: str                       # parent image reference
    packages: tuple[str, ...] = ()
    apt: tuple[str, ...] = ()
    constraints: tuple[str, ...] = ()   # what pip must respect here: pins from below plus this layer's own
    protect: tuple[str, ...] = ()       # package names no layer above may change (cumulative)
    groups: tuple[str, ...] = ()
    launch: dict = field(default_factory=dict)
    smoke: dict = field(default_factory=dict)
    dockerfile: str = ""
    context: tuple[ContextFile, ...] = ()
    wheelhouse: bool = False
    installer: str = ""                 # uv | pip: what installs this layer's packages ("" for the python layer)

    @property
    def ref(self) -> str:
        return f"{self.repository}:{self.tag}"

    def to_dict(self, exists: bool | None = None) -> dict:
        out = {"name": self.name, "role": self.role, "image": self.ref, "tag": self.tag, "parent": self.parent,
               "packages": list(self.packages), "apt": list(self.apt), "constraints": list(self.constraints),
               "protect": list(self.protect), "groups": list(self.groups), "launch": self.launch,
               "smoke": self.smoke}
        if self.installer:
            out["installer"] = self.installer
        if exists is not None:
            out["exists"] = exists
        return out


@dataclass(frozen=True)
class Plan:
    items: tuple[str, ...]
    groups: tuple[str, ...]           # canonical order, includes expanded
    packages: tuple[str, ...]         # requirements named on the command line
    base: str                         # base recipe name
    base_image: str
    accelerator: str                  # cpu | nvidia | ascend
    cuda: str | None
    python: str
    torch: str | None                 # e.g. 2.13.0+cpu
    frameworks: dict[str, str]        # package -> version
    layers: tuple[PlannedLayer, ...]
    stack_tag: str                    # friendly tag of the top image
    notes: tuple[str, ...] = ()

    @property
    def top(self) -> PlannedLayer:
        return self.layers[-1]

    def to_dict(self, exists: dict[str, bool] | None = None) -> dict:
        exists = exists or {}
        return {"items": list(self.items), "groups": list(self.groups), "packages": list(self.packages),
                "base": {"name": self.base, "image": self.base_image}, "accelerator": self.accelerator,
                "cuda": self.cuda, "python": self.python, "torch": self.torch, "frameworks": self.frameworks,
                "stack": self.stack_tag, "image": self.top.ref, "notes": list(self.notes),
                "layers": [layer.to_dict(exists.get(layer.ref)) for layer in self.layers]}


