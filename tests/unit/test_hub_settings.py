"""Hub ids and hub settings: what a model container that downloads gets, checked before anything starts."""

from __future__ import annotations

import pytest

from lazyllm_images.errors import LaunchError, UsageError
from lazyllm_images.launch.spec import LaunchSpec
from lazyllm_images.services import hub
from lazyllm_images.services.models import resolve_model


@pytest.mark.parametrize("repo", ["gpt2", "BAAI/bge-base-en-v1.5", "sentence-transformers/all-MiniLM-L6-v2",
                                  "Qwen/Qwen2.5-0.5B-Instruct", "a_b/c.d"])
def test_hub_ids_the_hubs_accept(repo):
    assert hub.check_repo_id(repo) == repo
    assert resolve_model(repo).kind in ("hub", "package")     # the catalog's names are packaged models


@pytest.mark.parametrize("repo", ["a/b/c", "acme/has space", "acme/-x", "acme/x-", "acme/a--b", "acme/a..b",
                                  "/", "acme/", "x" * 97])
def test_bad_hub_ids_are_usage_errors(repo):
    with pytest.raises(UsageError, match="valid hub id"):
        hub.check_repo_id(repo)


def test_settings_pass_public_values_and_keep_tokens_for_stdin():
    env = {"HF_ENDPOINT": "https://hf-mirror.com/", "HF_HUB_ENABLE_HF_TRANSFER": "1", "HF_TOKEN": "hf_secret",
           "LAZYLLM_MODEL_SOURCE_TOKEN": "generic", "MODELSCOPE_DOMAIN": "www.modelscope.cn"}
    s = hub.settings(env)
    assert s.endpoint == "https://hf-mirror.com"
    assert dict(s.env) == {"HF_ENDPOINT": "https://hf-mirror.com", "HF_HUB_ENABLE_HF_TRANSFER": "1",
                           "MODELSCOPE_DOMAIN": "www.modelscope.cn"}
    assert hub.secrets(s, env) == {"HF_TOKEN": "hf_secret", "LAZYLLM_MODEL_SOURCE_TOKEN": "generic"}
    spec = hub.with_hub(LaunchSpec(name="m", image="i:1", env={"HF_HUB_OFFLINE": "1"}), s, "embedding")
    assert spec.env["HF_ENDPOINT"] == "https://hf-mirror.com" and spec.env["HF_HUB_OFFLINE"] == "0"
    assert spec.env["HF_HOME"] == hub.CACHE_TARGET
    assert not any("secret" in v or "generic" in v for v in spec.env.values())
    cache = [m for m in spec.mounts if m.purpose == "hub-cache"]
    assert cache and cache[0].target == hub.CACHE_ROOT and cache[0].source == hub.volume_name()


def test_the_generic_token_is_the_chosen_sources_token():
    env = {"LAZYLLM_MODEL_SOURCE": "modelscope", "LAZYLLM_MODEL_SOURCE_TOKEN": "ms"}
    assert hub.secrets(hub.settings(env), env)["MODELSCOPE_API_TOKEN"] == "ms"
    env = {"LAZYLLM_MODEL_SOURCE_TOKEN": "hf"}
    assert hub.token(hub.settings(env), env) == "hf"


def test_modelscope_switches_the_frameworks_that_can_use_it_and_refuses_the_others():
    s = hub.settings({"LAZYLLM_MODEL_SOURCE": "ModelScope"})
    spec = hub.with_hub(LaunchSpec(name="m", image="i:1"), s, "vllm")
    assert spec.env["VLLM_USE_MODELSCOPE"] == "True" and spec.env["LAZYLLM_MODEL_SOURCE"] == "ModelScope"
    with pytest.raises(UsageError, match="downloads from Hugging Face only"):
        hub.with_hub(LaunchSpec(name="m", image="i:1"), s, "embedding")


@pytest.mark.parametrize("value", ["not a url", "ftp://x", "hf-mirror.com", "http://"])
def test_an_endpoint_that_is_not_a_url_is_a_usage_error(value):
    with pytest.raises(UsageError, match="is not a URL"):
        hub.settings({"HF_ENDPOINT": value})


def test_an_unknown_model_source_is_a_usage_error():
    with pytest.raises(UsageError, match="is not a model source"):
        hub.settings({"LAZYLLM_MODEL_SOURCE": "civitai"})


def test_offline_settings_skip_the_check_and_keep_the_container_offline():
    s = hub.settings({"HF_HUB_OFFLINE": "1"})
    assert hub.preflight("acme/x", s) == "skipped"
    assert hub.with_hub(LaunchSpec(name="m", image="i:1"), s, "vllm").env["HF_HUB_OFFLINE"] == "1"


def test_a_hub_that_does_not_answer_is_not_an_error():
    s = hub.settings({"HF_ENDPOINT": "http://127.0.0.1:9"})          # discard port: refused at once
    assert hub.preflight("acme/x", s, env={}) == "unreachable"
    assert s.endpoint_is_loopback


@pytest.mark.parametrize("logs, has_token, words", [
    ("huggingface_hub.errors.GatedRepoError: 401 Client Error.", False, "needs a token"),
    ("error: hub download of acme/x failed: HfHubHTTPError: Client error '401 Unauthorized'", True,
     "refused the token"),
    ("RepositoryNotFoundError: 404 Client Error. Repository Not Found for url", True, "has no repo"),
    ("LocalEntryNotFoundError: An error happened while trying to locate the files on the Hub", True,
     "could not download"),
    ("httpx2.ConnectError: [Errno 111] Connection refused", False, "could not download"),
])
def test_a_failed_download_in_the_logs_is_one_clear_error(logs, has_token, words):
    found = hub.diagnose(logs, "acme/x", hub.settings({}), has_token)
    assert isinstance(found, LaunchError) and words in found.message and "acme/x" in found.message


def test_logs_without_a_download_failure_say_nothing():
    assert hub.diagnose("ValueError: bad config.json", "acme/x", hub.settings({}), False) is None
