"""Properties of the resolver (hypothesis): order independence, shared prefixes, stable tags, local changes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from lazyllm_images.paths import recipes_dir
from lazyllm_images.recipes import load_recipes
from lazyllm_images.requests import BuildOptions
from lazyllm_images.resolve import resolve

OFFLINE = BuildOptions(base="offline")
CUDA = BuildOptions(cuda="12.8")
CPU_GROUPS = ["embedding", "chat", "finetune", "rag", "agent-advanced", "online-advanced", "tracing", "alpaca-lora",
              "colie", "multimodal", "infinity", "mcp-bridge"]
GPU_GROUPS = CPU_GROUPS + ["vllm", "lmdeploy", "deploy-all", "standard", "llama-factory", "finetune-all"]


def refs(plan):
    return [layer.ref for layer in plan.layers]


@settings(max_examples=25, deadline=None)
@given(st.lists(st.sampled_from(CPU_GROUPS), min_size=1, max_size=4, unique=True), st.randoms())
def test_order_of_items_never_matters_cpu(groups, rnd):
    shuffled = list(groups)
    rnd.shuffle(shuffled)
    assert refs(resolve(groups, OFFLINE)) == refs(resolve(shuffled, OFFLINE))


@settings(max_examples=25, deadline=None)
@given(st.lists(st.sampled_from(GPU_GROUPS), min_size=1, max_size=3, unique=True), st.randoms())
def test_order_of_items_never_matters_gpu(groups, rnd):
    shuffled = list(groups)
    rnd.shuffle(shuffled)
    assert refs(resolve(groups, CUDA)) == refs(resolve(shuffled, CUDA))


@settings(max_examples=25, deadline=None)
@given(st.lists(st.sampled_from(CPU_GROUPS), min_size=1, max_size=3, unique=True),
       st.sampled_from(CPU_GROUPS))
def test_group_sets_share_their_lower_layers(groups, extra):
    small, big = resolve(groups, OFFLINE), resolve(groups + [extra], OFFLINE)
    r = load_recipes()
    same_torch = small.torch == big.torch
    for name in ("python",) + (("torch",) if small.torch and same_torch else ()):
        a = next(x for x in small.layers if x.name == name)
        b = next(x for x in big.layers if x.name == name)
        assert a.ref == b.ref, name
    adds_framework = bool(r.groups[extra].frameworks)
    if same_torch and not adds_framework and all(r.groups[extra].order > r.groups[g].order for g in groups):
        body = refs(small)[:-1]                  # everything but the runtime layer
        assert refs(big)[:len(body)] == body     # a tree of images: the small stack is a prefix of the big one


def test_tags_are_stable_across_runs_and_machines(tmp_path):
    """Host paths, caches and pip settings never reach a tag: another HOME, state dir, cwd and pip config give
    the same tags."""
    here = refs(resolve(["embedding", "chat"], OFFLINE))
    code = ("import json; from lazyllm_images.resolve import resolve; from lazyllm_images.requests import "
            "BuildOptions; print(json.dumps([l.ref for l in resolve(['chat', 'embedding'], "
            "BuildOptions(base='offline')).layers]))")
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "LAZYLLM_HOME": str(tmp_path / "state"),
           "PIP_INDEX_URL": "https://mirror.example/simple", "PIP_FIND_LINKS": "/elsewhere", "PIP_CERT": "/x.crt"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == here


def test_a_recipe_change_moves_only_its_layer_and_those_above(tmp_path):
    copy = tmp_path / "recipes"
    shutil.copytree(recipes_dir(), copy)
    before = resolve(["embedding", "chat"], OFFLINE, recipes=load_recipes(copy))
    chat = copy / "groups" / "chat.yaml"
    doc = yaml.safe_load(chat.read_text())
    doc["packages"].append("rich")
    chat.write_text(yaml.safe_dump(doc))
    after = resolve(["embedding", "chat"], OFFLINE, recipes=load_recipes(copy))
    i = [x.name for x in before.layers].index("group-chat")
    assert refs(before)[:i] == refs(after)[:i]
    assert all(a != b for a, b in zip(refs(before)[i:], refs(after)[i:]))


def test_changing_the_base_recipe_moves_every_tag(tmp_path):
    copy = tmp_path / "recipes"
    shutil.copytree(recipes_dir(), copy)
    before = resolve(["chat"], OFFLINE, recipes=load_recipes(copy))
    off = copy / "bases" / "offline.yaml"
    doc = yaml.safe_load(off.read_text())
    doc[0]["description"] = "changed"
    off.write_text(yaml.safe_dump(doc))
    after = resolve(["chat"], OFFLINE, recipes=load_recipes(copy))
    assert all(a != b for a, b in zip(refs(before), refs(after)))


@pytest.mark.parametrize("first, second", [
    (("six", "idna"), ("idna", "six")),
    (("Six", "IDNA>=3"), ("idna>=3", "six")),
    (("Foo_Bar[Extra_One]", "six"), ("six", "foo-bar[extra-one]")),
    (("chat", "embedding", "openai"), ("openai", "embedding", "chat")),
])
def test_package_order_and_spelling_do_not_change_the_tags(first, second):
    a, b = resolve(first, BuildOptions(base="offline")), resolve(second, BuildOptions(base="offline"))
    assert [layer.ref for layer in a.layers] == [layer.ref for layer in b.layers]
    assert a.stack_tag == b.stack_tag
