"""Typed views of the compatibility tables in ``recipes/compat/`` (data, not code)."""

from __future__ import annotations

from dataclasses import dataclass

from packaging.version import Version

from .recipes import RecipeSet
from .versions import minor


@dataclass(frozen=True)
class TorchRelease:
    torch: str
    torchvision: str
    torchaudio: str
    cuda: tuple[str, ...]
    python: tuple[str, ...]

    def variant(self, accelerator: str, cuda: str | None) -> str | None:
        """The wheel variant for a plan: ``cpu``, or the CUDA variant matching the base: the highest one of the
        same major version not above the base's CUDA (a cu126 torch runs on a 12.8 base, not on 12.4)."""
        if accelerator != "nvidia":
            return "cpu"
        if cuda is None:
            return None
        fits = [c for c in self.cuda if c.split(".")[0] == cuda.split(".")[0] and Version(c) <= Version(cuda)]
        if not fits:
            return None
        return "cu" + max(fits, key=Version).replace(".", "")


def torch_releases(r: RecipeSet) -> list[TorchRelease]:
    table = r.compat.get("torch") or {}
    return [TorchRelease(str(x["torch"]), str(x["torchvision"]), str(x["torchaudio"]),
                         tuple(map(str, x["cuda"])), tuple(map(str, x["python"])))
            for x in table.get("releases", [])]


def torch_index(r: RecipeSet, variant: str) -> str:
    return f"{(r.compat.get('torch') or {}).get('index', 'https://download.pytorch.org/whl')}/{variant}"


@dataclass(frozen=True)
class FrameworkRelease:
    package: str
    version: str
    torch: str | None
    cuda_min: str | None
    python: str | None
    accelerator: str | None


def framework_releases(r: RecipeSet, package: str) -> list[FrameworkRelease]:
    rows = (r.compat.get("frameworks") or {}).get(package, [])
    out = [FrameworkRelease(package, str(x["version"]), x.get("torch"), x.get("cuda_min") and str(x["cuda_min"]),
                            x.get("python"), x.get("accelerator")) for x in rows]
    return sorted(out, key=lambda f: Version(f.version), reverse=True)


def has_framework_table(r: RecipeSet, package: str) -> bool:
    return package in (r.compat.get("frameworks") or {})


@dataclass(frozen=True)
class FlashAttn:
    version: str
    wheel_url: str | None          # None: compile from source (devel base)


def flash_attn_wheel(r: RecipeSet, torch: str, cuda: str, python: str) -> FlashAttn | None:
    table = r.compat.get("flash_attn") or {}
    tmm, major = minor(torch), cuda.split(".")[0]
    abi = "TRUE" if Version(torch) >= Version(str(table.get("cxx11abi_from_torch", "2.7"))) else "FALSE"
    for rel in table.get("releases", []):
        if tmm in rel["torch"] and major in rel["cuda_major"] and python in rel["python"]:
            url = table["wheel_url"].format(version=rel["version"], cuda_major=major, torch_mm=tmm, abi=abi,
                                            py=python.replace(".", ""))
            return FlashAttn(str(rel["version"]), url)
    return None


def flash_attn_source(r: RecipeSet, torch: str, cuda: str) -> FlashAttn | None:
    table = r.compat.get("flash_attn") or {}
    src = table.get("source_build") or {}
    if Version(torch) >= Version(str(src.get("min_torch", "99"))) and Version(cuda) >= Version(str(src.get("min_cuda", "99"))):
        newest = max((str(x["version"]) for x in table.get("releases", [])), key=Version)
        return FlashAttn(newest, None)
    return None


def flash_attn_max_jobs(r: RecipeSet) -> int:
    return int(((r.compat.get("flash_attn") or {}).get("source_build") or {}).get("max_jobs", 4))


def min_driver(r: RecipeSet, cuda: str) -> str | None:
    return ((r.compat.get("drivers") or {}).get("minimum_driver") or {}).get(cuda)
