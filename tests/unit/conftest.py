"""Unit tests are hermetic: settings a developer or CI may export (the offline base, another recipes folder, an
image prefix) must not change what a pure function plans."""

from __future__ import annotations

import json

import pytest

HOST_SETTINGS = ("LAZYLLM_BASE", "LAZYLLM_RECIPES", "LAZYLLM_IMAGE_PREFIX", "LAZYLLM_LOCK_FILE")


@pytest.fixture(autouse=True)
def hermetic_settings(monkeypatch):
    for name in HOST_SETTINGS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture()
def llm_dir(tmp_path):
    """A model folder that looks like a Llama (config.json only): what the services plan for."""
    folder = tmp_path / "my-llm"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"], "model_type": "llama"}))
    return folder


@pytest.fixture()
def docs(tmp_path):
    """A documents folder with one Markdown file (run rag --documents)."""
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.md").write_text("# A\n\ntext\n")
    return folder
