"""Online OpenAI-compatible APIs for `run chatbot|rag --source`: base URL, the key's usual variable, a default
model. ``LAZYLLM_<SOURCE>_API_KEY`` and ``LAZYLLM_<SOURCE>_BASE_URL`` override (as upstream LazyLLM reads them)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..errors import UsageError


@dataclass(frozen=True)
class Source:
    name: str
    base_url: str
    key_vars: tuple[str, ...]
    default_model: str | None


SOURCES = {
    "openai": Source("openai", "https://api.openai.com/v1", ("OPENAI_API_KEY",), "gpt-4o-mini"),
    "sensenova": Source("sensenova", "https://api.sensenova.cn/compatible-mode/v1", ("SENSENOVA_API_KEY",),
                        "SenseChat-5"),
    "glm": Source("glm", "https://open.bigmodel.cn/api/paas/v4", ("ZHIPUAI_API_KEY", "GLM_API_KEY"), "glm-4-flash"),
    "kimi": Source("kimi", "https://api.moonshot.cn/v1", ("MOONSHOT_API_KEY", "KIMI_API_KEY"), "moonshot-v1-8k"),
    "qwen": Source("qwen", "https://dashscope.aliyuncs.com/compatible-mode/v1", ("DASHSCOPE_API_KEY", "QWEN_API_KEY"),
                   "qwen-plus"),
    "doubao": Source("doubao", "https://ark.cn-beijing.volces.com/api/v3", ("ARK_API_KEY", "DOUBAO_API_KEY"), None),
}


def source(name: str) -> Source:
    return SOURCES[name]


def key_vars(s: Source) -> tuple[str, ...]:
    return (f"LAZYLLM_{s.name.upper()}_API_KEY",) + s.key_vars


def api_key(s: Source, env: dict[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    for var in key_vars(s):
        if env.get(var):
            return env[var]
    raise UsageError(f"--source {s.name} needs an API key and none is set",
                     f"export {key_vars(s)[1]}=... (or {key_vars(s)[0]}); it is passed to the container at run time")


def base_url(s: Source, env: dict[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    return env.get(f"LAZYLLM_{s.name.upper()}_BASE_URL") or s.base_url


def model(s: Source, asked: str | None) -> str:
    if asked:
        return asked
    if s.default_model is None:
        raise UsageError(f"--source {s.name} needs --model (its endpoint or model id)",
                         f"e.g. lazyllm run chatbot --source {s.name} --model <your model>")
    return s.default_model
