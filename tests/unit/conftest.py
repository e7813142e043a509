"""Unit tests are hermetic: settings a developer or CI may export (the offline base, another recipes folder, an
image prefix) must not change what a pure function plans."""

from __future__ import annotations

import pytest

HOST_SETTINGS = ("LAZYLLM_BASE", "LAZYLLM_RECIPES", "LAZYLLM_IMAGE_PREFIX", "LAZYLLM_LOCK_FILE")


@pytest.fixture(autouse=True)
def hermetic_settings(monkeypatch):
    for name in HOST_SETTINGS:
        monkeypatch.delenv(name, raising=False)
