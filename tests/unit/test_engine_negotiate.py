"""The Engine API version the tool speaks to an engine, from the engine's GET /version (as the docker CLI does)."""

from __future__ import annotations

import pytest

from lazyllm_images import engine
from lazyllm_images.errors import EngineError


@pytest.mark.parametrize("top, low, spoken", [
    ("1.41", "1.12", "1.41"),        # Docker 20.10: older than the tool's newest, spoken at its own newest
    ("1.47", "1.24", "1.47"),        # Docker 27
    ("1.51", "1.44", "1.51"),        # Docker 28.5 started with DOCKER_MIN_API_VERSION=1.44 (as Docker 29)
    ("1.52", "1.44", "1.52"),        # Docker 29.0
    ("1.60", "1.44", engine.TOOL_API_MAX),    # newer than the tool: the tool's newest, which it still accepts
])
def test_the_newest_version_both_sides_know(top, low, spoken):
    assert engine.negotiate(top, low, "X") == spoken


def test_an_engine_too_old_names_both_versions():
    with pytest.raises(EngineError) as err:
        engine.negotiate("1.40", "1.12", "19.03.5")
    assert "Docker 19.03.5 speaks Engine API 1.40 at most" in err.value.message
    assert engine.TOOL_API_MIN in err.value.message and "upgrade" in err.value.hint


def test_an_engine_too_new_names_both_versions():
    with pytest.raises(EngineError) as err:
        engine.negotiate("1.70", "1.60", "40.0")
    assert "accepts Engine API 1.60 and newer" in err.value.message and engine.TOOL_API_MAX in err.value.message
    assert "DOCKER_MIN_API_VERSION" in err.value.hint


@pytest.mark.parametrize("top, low", [(None, None), ("", "1.12"), ("v1", "1.12")])
def test_an_answer_without_versions_is_a_clear_error(top, low):
    with pytest.raises(EngineError, match="Engine API versions") as err:
        engine.negotiate(top, low)
    assert "is DOCKER_HOST a Docker engine?" in err.value.hint
