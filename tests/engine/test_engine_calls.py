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


def _v(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split("."))


def test_the_api_version_is_negotiated_with_the_engine_under_test(offline_base):
    """On 20.10 (API 1.41, older than the tool's newest) the engine's newest; on the current engine (minimum 1.44,
    as Docker 29) a version it accepts, where a fixed /v1.41 is refused: the raw calls and docker-py agree."""
    facts = engine.version_facts()
    spoken = engine.api_version()
    assert spoken == min(facts["ApiVersion"], engine.TOOL_API_MAX, key=_v)
    assert _v(spoken) >= _v(facts.get("MinAPIVersion") or "1.12")
    assert engine.client().api._version == spoken
    (status, body), = engine._unix_calls([("GET", "/v1.41/version")], versioned=False)
    if _v(facts.get("MinAPIVersion") or "1.12") > _v("1.41"):
        assert status == 400 and "too old" in body["message"]       # what every call got before negotiation
    else:
        assert status == 200
    assert engine.image_exists(offline_base)
    assert engine.call("GET", "/info")[0] == 200


def test_a_refused_call_is_an_error_not_an_absence(docker_client):
    with pytest.raises(EngineError, match=r"refused GET /containers/no-such-container-\w+/json \(404\)"):
        engine.call("GET", f"/containers/no-such-container-{uuid.uuid4().hex[:8]}/json")
