"""The raw Engine API calls on the local socket (no docker-py import on the no-op install path)."""

from __future__ import annotations

import uuid

import pytest

from lazyllm_images import engine
from lazyllm_images.errors import EngineError
from recipe_helpers import unique_mark


def test_existence_labels_and_tagging_agree_with_the_sdk(offline_base, docker_client):
    assert engine.image_exists(offline_base)
    assert not engine.image_exists(f"lazyllm/no-such-image:{unique_mark()}")
    assert engine.image_labels(offline_base) == docker_client.images.get(offline_base).labels
    repo, tag = "lazyllm-test/tagged", uuid.uuid4().hex[:12]   # not the run's mark: that would remove the base
    engine.tag_image(offline_base, repo, tag)
    try:
        assert docker_client.images.get(f"{repo}:{tag}").id == docker_client.images.get(offline_base).id
    finally:
        docker_client.images.remove(f"{repo}:{tag}")


def test_no_engine_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no.sock")
    engine.client.cache_clear()
    try:
        assert engine.inspect_images(["x"]) is None
        with pytest.raises(EngineError, match="cannot reach the Docker engine"):
            engine.require()
        with pytest.raises(EngineError, match="cannot reach the Docker engine"):
            engine.image_exists("x")
    finally:
        engine.client.cache_clear()
