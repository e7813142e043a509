"""Golden files of the rendered Dockerfiles for representative plans (LAZYLLM_UPDATE_GOLDEN=1 rewrites them).

A diff here is a change in what gets built: review it like code.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from lazyllm_images.requests import BuildOptions
from lazyllm_images.resolve import resolve

GOLDEN = Path(__file__).resolve().parent.parent / "golden" / "plans"
CASES = {
    "cpu-embedding-offline": (["embedding"], BuildOptions(base="offline")),
    "cuda12.4-chat-vllm": (["chat", "vllm"], BuildOptions(cuda="12.4")),
    "cuda12.8-finetune-flash-attn-wheel": (["finetune"], BuildOptions(cuda="12.8")),
    "cuda13.0-finetune-flash-attn-source": (["finetune", "torch>=2.9"], BuildOptions(cuda="13.0")),
    "ascend-mindie": (["mindie"], BuildOptions()),
}


def summary(plan) -> dict:
    """The plan without tags of the runtime layer (its code changes often; its Dockerfile is checked)."""
    data = plan.to_dict()
    data.pop("image")
    for layer in data["layers"]:
        if layer["name"] == "runtime":
            layer.pop("image"), layer.pop("tag")
    return data


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden_dockerfiles(case):
    items, build = CASES[case]
    plan = resolve(items, build, env={})
    folder = GOLDEN / case
    rendered = {f"{i:02d}-{layer.name}.Dockerfile": layer.dockerfile for i, layer in enumerate(plan.layers, 1)}
    rendered["plan.json"] = json.dumps(summary(plan), indent=2, sort_keys=True) + "\n"
    if os.environ.get("LAZYLLM_UPDATE_GOLDEN"):
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.iterdir():
            old.unlink()
        for name, text in rendered.items():
            (folder / name).write_text(text)
    assert folder.is_dir(), f"no golden files for {case}: run with LAZYLLM_UPDATE_GOLDEN=1"
    assert sorted(p.name for p in folder.iterdir()) == sorted(rendered)
    for name, text in rendered.items():
        assert (folder / name).read_text() == text, f"{case}/{name} changed (LAZYLLM_UPDATE_GOLDEN=1 to accept)"
