"""The validated-recipes cache: a later run reuses it only while every recipe file is unchanged."""

from __future__ import annotations

import shutil

import pytest

from lazyllm_images import recipes as R
from lazyllm_images.errors import PlanError
from lazyllm_images.paths import recipes_dir


@pytest.fixture
def fresh(tmp_path, monkeypatch):
    """A private copy of the recipes and a private state folder; the in-process memo cleared around the test."""
    monkeypatch.setenv("LAZYLLM_HOME", str(tmp_path / "home"))
    root = tmp_path / "recipes"
    shutil.copytree(recipes_dir(), root)
    R._load.cache_clear()
    yield root
    R._load.cache_clear()


def _new_process():
    R._load.cache_clear()   # what a new `lazyllm` process starts with: only the cache on disk


def test_a_second_run_reads_the_cache_not_the_yaml(fresh, monkeypatch):
    first = R.load_recipes(fresh)
    assert list((fresh.parent / "home" / "recipes").glob("*.pickle"))
    _new_process()
    monkeypatch.setattr(R, "_read_and_validate", lambda root: pytest.fail("the YAML was read again"))
    again = R.load_recipes(fresh)
    assert again == first and again.digests == first.digests


def test_a_changed_recipe_is_read_and_validated_again(fresh):
    R.load_recipes(fresh)
    group = fresh / "groups" / "chat.yaml"
    group.write_text(group.read_text().replace("order: 60", "order: 77"))
    _new_process()
    assert R.load_recipes(fresh).groups["chat"].order == 77


def test_an_invalid_recipe_is_still_an_error_after_a_good_run(fresh):
    R.load_recipes(fresh)
    (fresh / "groups" / "chat.yaml").write_text("name: chat\nnot_a_field: 1\n")
    _new_process()
    with pytest.raises(PlanError, match="chat.yaml"):
        R.load_recipes(fresh)


def test_a_corrupt_cache_file_is_only_a_miss(fresh):
    first = R.load_recipes(fresh)
    for path in (fresh.parent / "home" / "recipes").glob("*.pickle"):
        path.write_bytes(b"not a pickle")
    _new_process()
    assert R.load_recipes(fresh) == first
