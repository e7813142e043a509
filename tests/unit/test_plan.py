"""Planning is pure: every upstream group and the seed examples plan; conflicts are found before any build."""

from __future__ import annotations

import json

import pytest

from lazyllm_images.cli import main
from lazyllm_images.errors import PlanError
from lazyllm_images.host import Gpu, HostFacts, NvidiaFacts
from lazyllm_images.recipes import json_schema, load_recipes, _flatten_defs
from lazyllm_images.requests import BuildOptions
from lazyllm_images.resolve import resolve

OFFLINE = BuildOptions(base="offline")
CUDA128 = BuildOptions(cuda="12.8")
UPSTREAM = ["standard", "full", "alpaca-lora", "colie", "llama-factory", "finetune-all", "vllm", "lmdeploy",
            "lightllm", "infinity", "deploy-all", "multimodal", "rag", "rag-advanced", "agent-advanced",
            "online-advanced", "tracing"]


def names(plan):
    return [layer.name for layer in plan.layers]


@pytest.mark.parametrize("group", UPSTREAM)
def test_every_upstream_group_plans_on_a_gpu_host(group):
    plan = resolve([group], CUDA128)
    assert plan.layers[0].name == "python" and plan.layers[-1].name == "runtime"
    assert plan.cuda == "12.8"


def test_upstream_mistakes_are_fixed():
    r = load_recipes()
    assert r.groups["full"].includes == ["standard"]
    full = resolve(["full"], CUDA128)
    assert names(full).index("group-standard") < names(full).index("group-full")
    assert "lightllm" in resolve(["deploy-all"], CUDA128).frameworks


@pytest.mark.parametrize("items", [("embedding", "chat"), ("openai", "sentence-transformers")])
def test_seed_examples_plan_on_the_offline_base(items):
    plan = resolve(items, OFFLINE)
    assert plan.base == "offline" and plan.accelerator == "cpu"
    assert plan.torch == "2.13.0+cpu" if "embedding" in items else True


def test_packages_become_a_layer_above_the_groups():
    plan = resolve(["chat", "openai>=1.40", "rich==13.7.1"], OFFLINE)
    assert names(plan)[-3:] == ["group-chat", "packages", "runtime"]
    assert plan.layers[-2].packages == ("openai>=1.40", "rich==13.7.1")


def test_canonical_order_and_identical_tags():
    a, b = resolve(["chat", "embedding"], OFFLINE), resolve(["embedding", "chat"], OFFLINE)
    assert [x.ref for x in a.layers] == [x.ref for x in b.layers]
    assert names(a) == ["python", "torch", "group-embedding", "group-chat", "runtime"]   # heavy group lower


def test_torch_is_protected_in_every_layer_above_it():
    plan = resolve(["embedding", "chat"], OFFLINE)
    start = names(plan).index("torch")
    for layer in plan.layers[start:]:
        assert "torch==2.13.0+cpu" in layer.constraints
        assert "torch" in layer.protect
    assert not plan.layers[0].constraints


def test_framework_pins_hold_for_the_layers_above():
    plan = resolve(["embedding", "infinity"], OFFLINE)
    emb = plan.layers[names(plan).index("group-embedding")]
    assert {"sentence-transformers<4", "transformers<5", "numpy<2", "infinity-emb==0.0.78"} <= set(emb.constraints)


def test_gpu_host_gets_the_highest_cuda_its_driver_runs():
    host = HostFacts(nvidia=NvidiaFacts(True, "", "550.54.14", "12.4",
                                        (Gpu(0, "GPU-1", "NVIDIA A100", 81920, "8.0"),)))
    plan = resolve(["embedding"], BuildOptions(), host=host)
    assert plan.cuda == "12.4" and plan.torch.endswith("+cu124")


def test_host_without_gpu_gets_cpu_unless_cuda_is_given():
    assert resolve(["embedding"]).accelerator == "cpu"
    assert resolve(["embedding"], BuildOptions(cuda="12.6")).torch.endswith("+cu126")


def test_python_override_uses_uv_when_the_base_has_another_python():
    plan = resolve(["chat"], BuildOptions(cuda="12.4", python="3.12"))
    assert plan.python == "3.12" and "uv python install" in plan.layers[0].dockerfile


def test_flash_attn_without_a_wheel_moves_to_a_devel_base():
    plan = resolve(["finetune", "torch>=2.9"], BuildOptions(cuda="13.0"))
    assert "devel" in plan.base and "--no-build-isolation" in plan.layers[names(plan).index("flash-attn")].dockerfile
    assert any("compiles from source" in n for n in plan.notes)


def test_flash_attn_is_left_out_of_cpu_plans_with_a_note():
    plan = resolve(["finetune"], OFFLINE)
    assert "flash-attn" not in names(plan) and any("flash-attn left out" in n for n in plan.notes)


CONFLICTS = [
    (["vllm"], BuildOptions(), "needs an NVIDIA GPU"),
    (["mindie"], BuildOptions(base="cpu"), "needs an Ascend NPU"),
    (["flash-attn"], OFFLINE, "flash-attn needs CUDA"),
    (["embedding", "infinity", "sentence-transformers>=5"], OFFLINE, "conflicts with sentence-transformers<4"),
    (["numpy<2", "numpy>=2.1"], OFFLINE, "conflicts with"),
    (["vllm", "torch==2.2.2"], CUDA128, "no torch release fits"),
    (["chat"], BuildOptions(cuda="10.2"), "unsupported CUDA"),
    (["chat"], BuildOptions(python="3.8"), "unsupported Python"),
    (["chat"], BuildOptions(base="nope"), "unknown base"),
    (["embeding"], OFFLINE, "did you mean embedding"),
    (["finetune", "torch>=2.9"], BuildOptions(base="cuda13.0-runtime-ubuntu24.04"), "must compile on a devel base"),
]


@pytest.mark.parametrize("items,build,needle", CONFLICTS, ids=[" ".join(c[0]) + f" {c[2]}" for c in CONFLICTS])
def test_conflicts_are_found_before_any_build(items, build, needle):
    with pytest.raises(PlanError) as err:
        resolve(items, build)
    assert needle in err.value.message and err.value.hint


def test_old_driver_is_a_conflict_naming_the_driver_to_install():
    host = HostFacts(nvidia=NvidiaFacts(True, "", "535.0", "12.2", (Gpu(0, "GPU-1", "T4", 15360, "7.5"),)))
    with pytest.raises(PlanError) as err:
        resolve(["chat"], BuildOptions(cuda="12.8"), host=host)
    assert "runs CUDA <= 12.2" in err.value.message and "570.26" in err.value.hint


def test_torch_conflict_names_both_sides():
    with pytest.raises(PlanError) as err:
        resolve(["vllm", "torch==2.2.2"], CUDA128)
    assert "the command line" in err.value.message and "vllm" in err.value.message


def test_cli_dry_run_json_is_stable_and_machine_readable(capsys):
    assert main(["install", "embedding", "chat", "--dry-run", "--json", "--base", "offline"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [layer["name"] for layer in data["layers"]] == ["python", "torch", "group-embedding", "group-chat",
                                                            "runtime"]
    for layer in data["layers"]:
        assert {"name", "image", "tag", "parent", "packages"} <= set(layer)
    assert data["layers"][1]["parent"] == data["layers"][0]["image"]


def test_cli_writes_dockerfiles(tmp_path, capsys):
    assert main(["install", "chat", "--dry-run", "--base", "offline", "--dockerfiles", str(tmp_path)]) == 0
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["01-python.Dockerfile", "02-group-chat.Dockerfile", "03-runtime.Dockerfile"]
    assert "FROM lazyllm/base-offline:debian-bookworm" in (tmp_path / files[0]).read_text()


@pytest.mark.parametrize("argv,needle", [
    (["install", "nonsense-group-x", "--dry-run"], None),
    (["install", "embeding", "--dry-run"], "did you mean embedding"),
    (["install", "a b c", "--dry-run"], "neither a group nor a valid requirement"),
    (["install", "vllm", "--dry-run", "--base", "offline"], "needs an NVIDIA GPU"),
    (["install", "chat", "--cuda", "9.0", "--dry-run"], "unsupported CUDA"),
])
def test_cli_bad_plans_are_one_line_errors(argv, needle, capsys):
    code = main(argv)
    err = capsys.readouterr().err
    if needle is None:          # an unknown name far from any group is a PyPI package: that plans fine
        assert code == 0
        return
    assert code == 2 and err.startswith("error: ") and needle in err and "\nhint: " in err


def test_no_dockerfile_has_a_syntax_line_or_copies_a_secret():
    for items, build in ((["full"], CUDA128), (["embedding", "chat"], OFFLINE), (["finetune", "torch>=2.9"], BuildOptions(cuda="13.0"))):
        for layer in resolve(items, build).layers:
            assert "# syntax" not in layer.dockerfile
            assert "ca.crt" not in "".join(line for line in layer.dockerfile.splitlines() if line.startswith("COPY"))


def test_committed_json_schema_matches_the_models():
    from lazyllm_images.paths import recipes_dir
    committed = json.loads((recipes_dir() / "schema.json").read_text())
    assert committed == json.loads(json.dumps(_flatten_defs(json_schema()))), \
        "regenerate: python -m lazyllm_images.recipes --schema > recipes/schema.json"


def test_cuda_flag_beats_the_base_from_the_environment():
    plan = resolve(["chat"], BuildOptions(cuda="12.4"), env={"LAZYLLM_BASE": "offline"})
    assert plan.cuda == "12.4"
    assert resolve(["chat"], BuildOptions(), env={"LAZYLLM_BASE": "offline"}).base == "offline"
    with pytest.raises(PlanError, match="contradicts"):
        resolve(["chat"], BuildOptions(base="offline", cuda="12.4"))
