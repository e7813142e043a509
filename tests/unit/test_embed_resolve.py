"""Embedding server: --model resolution, including packages that ship weights (a fake package here)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lazyllm_images.runtime.embed_server.resolve import ModelNotFound, find_model_dir, resolve_model


def make_pkg(root: Path, name: str, model_sub: str | None = "model", marker: str = "modules.json") -> Path:
    pkg = root / name
    pkg.mkdir()
    (pkg / "__init__.py").write_text("raise RuntimeError('resolution must not import the package')\n")
    if model_sub is not None:
        model = pkg / model_sub
        model.mkdir(parents=True)
        (model / marker).write_text(json.dumps([]))
        (model / "config.json").write_text("{}")
    return pkg


@pytest.fixture
def site(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_package_model_dir_found_without_importing(site):
    pkg = make_pkg(site, "fake_weights_pkg")
    assert resolve_model("pkg:fake_weights_pkg") == str(pkg / "model")
    assert resolve_model("pkg:fake-weights-pkg") == str(pkg / "model")  # the distribution's spelling


def test_package_subdir_named_explicitly(site):
    pkg = make_pkg(site, "fake_two_models", model_sub="weights/small")
    (pkg / "weights" / "large").mkdir()
    assert resolve_model("pkg:fake_two_models/weights/large") == str((pkg / "weights" / "large").resolve())
    with pytest.raises(ModelNotFound, match="no folder 'nope'"):
        resolve_model("pkg:fake_two_models/nope")


def test_sentence_transformers_marker_wins_over_a_shallower_config(site):
    pkg = make_pkg(site, "fake_nested", model_sub="data/st")
    (pkg / "config.json").write_text("{}")  # a package-level config that is not the model
    assert find_model_dir(pkg) == pkg / "data" / "st"


def test_config_json_is_enough_when_no_modules_json(site):
    pkg = make_pkg(site, "fake_hf_only", marker="config.json")
    assert resolve_model("pkg:fake_hf_only") == str(pkg / "model")


def test_package_without_model_or_missing_package(site):
    make_pkg(site, "fake_empty", model_sub=None)
    with pytest.raises(ModelNotFound, match="holds no folder"):
        resolve_model("pkg:fake_empty")
    with pytest.raises(ModelNotFound, match="no installed package"):
        resolve_model("pkg:surely_not_installed_pkg_123")
    with pytest.raises(ModelNotFound, match="not a package name"):
        resolve_model("pkg:bad name")


def test_paths_and_hub_ids(tmp_path):
    assert resolve_model(str(tmp_path)) == str(tmp_path.resolve())
    f = tmp_path / "file.bin"
    f.write_text("x")
    with pytest.raises(ModelNotFound, match="is a file"):
        resolve_model(str(f))
    with pytest.raises(ModelNotFound, match="no model folder"):
        resolve_model(str(tmp_path / "missing"))
    assert resolve_model("BAAI/bge-small-en-v1.5") == "BAAI/bge-small-en-v1.5"


@pytest.mark.parametrize("files, task", [
    ({"config.json": '{"architectures": ["BertForSequenceClassification"], "num_labels": 1}'}, "rerank"),
    ({"config.json": '{"architectures": ["XLMRobertaForSequenceClassification"]}'}, "rerank"),
    ({"config.json": '{"architectures": ["BertForSequenceClassification"], "id2label": {"0": "a", "1": "b"}}'},
     "embed"),
    ({"config.json": '{"architectures": ["BertModel"]}', "modules.json": "[]"}, "embed"),
    ({"config_sentence_transformers.json": '{"model_type": "CrossEncoder"}', "config.json": "{}"}, "rerank"),
    ({"config.json": "not json"}, "embed"),
])
def test_a_cross_encoder_is_served_as_a_reranker(tmp_path, files, task):
    from lazyllm_images.runtime.embed_server.model import detect_task
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    assert detect_task(str(tmp_path)) == task
