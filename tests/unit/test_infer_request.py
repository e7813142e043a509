"""Engine access, narrowly: a create request maps to a model under the allowed roots (or a hub id), a framework
from the allowed list and a GPU count; paths out of the roots, unknown frameworks and container settings are 400s."""

from __future__ import annotations

import os

import pytest

from lazyllm_images.runtime.controller.core import ApiError
from lazyllm_images.runtime.controller.modelpaths import BadModel, ModelRoots, Root
from lazyllm_images.runtime.infer.request import DEFAULT_FRAMEWORKS, framework_name, parse_create


@pytest.fixture
def tree(tmp_path):
    """inner/ as the controller sees the root, outside/ beside it; the host path of the root is /srv/models."""
    inner = tmp_path / "inner"
    (inner / "qwen").mkdir(parents=True)
    (inner / "org" / "nested").mkdir(parents=True)
    (inner / "a-file").write_text("x")
    outside = tmp_path / "outside" / "secret-model"
    outside.mkdir(parents=True)
    (inner / "escape").symlink_to(outside)
    (inner / "alias").symlink_to(inner / "qwen")
    return tmp_path


def roots(tree, allow_hub: bool = True) -> ModelRoots:
    return ModelRoots([Root("/srv/models", str(tree / "inner"))], allow_hub=allow_hub)


def test_root_flag_forms() -> None:
    assert Root.parse("/host/m=/models/0") == Root("/host/m", "/models/0")
    assert Root.parse("/data/models/") == Root("/data/models", "/data/models")
    with pytest.raises(ValueError, match="absolute"):
        Root.parse("models=/models/0")


def test_folder_under_a_root_maps_to_its_host_path(tree) -> None:
    ref = roots(tree).resolve("qwen")
    assert (ref.kind, ref.inner, ref.host) == ("dir", str(tree / "inner" / "qwen"), "/srv/models/qwen")
    assert roots(tree).resolve("org/nested").host == "/srv/models/org/nested"


def test_full_paths_on_either_side_are_the_same_folder(tree) -> None:
    assert roots(tree).resolve(str(tree / "inner" / "qwen")).host == "/srv/models/qwen"
    assert roots(tree).resolve("/srv/models/qwen").inner == str(tree / "inner" / "qwen")


def test_a_link_inside_the_root_resolves_to_its_target(tree) -> None:
    assert roots(tree).resolve("alias").host == "/srv/models/qwen"


@pytest.mark.parametrize("name", ["../outside/secret-model", "qwen/../../outside/secret-model", "~/models",
                                  "/etc", "/srv/models/../../etc", "escape", "/srv/models/escape"])
def test_paths_out_of_the_roots_are_refused(tree, name) -> None:
    with pytest.raises(BadModel) as err:
        roots(tree).resolve(name)
    assert err.value.code == "outside_roots"
    assert "secret-model" not in str(err.value) or name.endswith("secret-model")


def test_an_absolute_path_outside_says_nothing_about_whether_it_exists(tree) -> None:
    there, missing = (str(tree / "outside" / "secret-model"), str(tree / "outside" / "nothing"))
    with pytest.raises(BadModel) as a:
        roots(tree).resolve(there)
    with pytest.raises(BadModel) as b:
        roots(tree).resolve(missing)
    assert str(a.value).replace(there, "P") == str(b.value).replace(missing, "P")


@pytest.mark.parametrize("name", ["a-file", "/srv/models/absent", ".", "/srv/models"])
def test_not_a_model_folder(tree, name) -> None:
    with pytest.raises(BadModel) as err:
        roots(tree).resolve(name)
    assert err.value.code in ("model_not_found", "bad_name")


def test_hub_ids_and_image_references(tree) -> None:
    assert roots(tree).resolve("Qwen/Qwen2-0.5B").kind == "hub"
    for image_like in ("docker.io/library/ubuntu:22.04", "ubuntu:latest", "ghcr.io/x/y@sha256:ab", "a--b"):
        with pytest.raises(BadModel, match="not a folder"):
            roots(tree).resolve(image_like)
    with pytest.raises(BadModel, match="hub ids are turned off"):
        roots(tree, allow_hub=False).resolve("Qwen/Qwen2-0.5B")
    with pytest.raises(BadModel, match="control characters"):
        roots(tree).resolve("qwen\x00")


def test_frameworks_allowed_list_and_upstream_class_names() -> None:
    assert framework_name("Vllm", DEFAULT_FRAMEWORKS) == "vllm"
    assert framework_name("LMDeploy", DEFAULT_FRAMEWORKS) == "lmdeploy"
    assert framework_name("AutoDeploy", DEFAULT_FRAMEWORKS) == "auto"
    assert framework_name("EmbeddingDeploy", DEFAULT_FRAMEWORKS) == "embedding"
    assert framework_name("vllm_cpu", DEFAULT_FRAMEWORKS) == "vllm-cpu"
    assert framework_name(None, DEFAULT_FRAMEWORKS) == "auto"
    for bad in ("mindie", "tensorrt", "", 3):
        with pytest.raises(ApiError) as err:
            framework_name(bad, DEFAULT_FRAMEWORKS)
        assert (err.value.status, err.value.code) == (400, "unknown_framework")


def body(**extra) -> dict:
    return {"service_name": "s1", "model_name": "qwen", "framework": "vllm", "num_gpus": 1, **extra}


def code_of(tree, data: dict, host_gpus: int = 2) -> tuple[int, str]:
    with pytest.raises(ApiError) as err:
        parse_create(data, roots(tree), DEFAULT_FRAMEWORKS, host_gpus)
    return err.value.status, err.value.code


@pytest.mark.parametrize("field", ["image", "docker_image", "volumes", "mounts", "privileged", "cap_add", "devices",
                                   "env", "environment", "command", "entrypoint", "network_mode", "user", "ports",
                                   "security_opt", "runtime", "extra_args", "options"])
def test_container_settings_are_refused(tree, field) -> None:
    assert code_of(tree, body(**{field: "x"})) == (400, "field_not_allowed")


def test_a_request_maps_to_values_only(tree) -> None:
    req = parse_create(body(note="ignored", stage=""), roots(tree), DEFAULT_FRAMEWORKS, 2)
    assert req.spec() == {"model": "qwen", "model_kind": "dir", "model_inner": str(tree / "inner" / "qwen"),
                          "model_host": "/srv/models/qwen", "framework": "vllm", "num_gpus": 1}


def test_bad_fields(tree) -> None:
    assert code_of(tree, {"model_name": "qwen"}) == (400, "missing_field")
    assert code_of(tree, body(service_name="")) == (400, "missing_field")
    assert code_of(tree, body(service_name="a/b")) == (400, "bad_service_name")
    assert code_of(tree, body(service_name="../x")) == (400, "bad_service_name")
    assert code_of(tree, body(service_name="x" * 64)) == (400, "bad_service_name")
    assert code_of(tree, {"service_name": "s"}) == (400, "missing_field")
    assert code_of(tree, body(model_name="/etc")) == (400, "outside_roots")
    assert code_of(tree, body(model_name="absent-folder!")) == (400, "model_not_found")
    assert code_of(tree, body(framework="docker")) == (400, "unknown_framework")
    for gpus in (-1, True, 1.5, "two", 65):
        assert code_of(tree, body(num_gpus=gpus)) == (400, "bad_num_gpus")


def test_gpu_counts(tree) -> None:
    def gpus(data: dict, host: int) -> int:
        return parse_create(data, roots(tree), DEFAULT_FRAMEWORKS, host).gpus
    assert gpus(body(num_gpus="2"), 4) == 2
    no_count = {k: v for k, v in body().items() if k != "num_gpus"}
    assert gpus(no_count, 4) == 1 and gpus(no_count, 0) == 0      # upstream's default of 1, where there is one
    assert gpus(body(framework="vllm-cpu", num_gpus=1), 0) == 0    # a CPU framework: the count is moot
    assert gpus(body(framework="embedding", num_gpus=0), 4) == 0


def test_symlinked_root_itself_is_fine(tmp_path) -> None:
    real = tmp_path / "real"
    (real / "m").mkdir(parents=True)
    link = tmp_path / "link"
    os.symlink(real, link)
    ref = ModelRoots([Root("/h", str(link))]).resolve("m")
    assert ref.host == "/h/m" and ref.inner == str(real / "m")
