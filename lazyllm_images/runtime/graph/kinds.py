"""The node kinds upstream registers (``NodeConstructor.builder_methods``, 52 names), with their arguments.

Each kind says how its ``args`` are read, which of them are references to other nodes by id, and where it runs:
``pure`` (this package), ``flow`` (this package, sub-graphs), or a service category (``model``, ``embedding``,
``retrieval``, ``http``, ``mcp``, ``agent``, ``llm_task``, ``reader``) that a ``Services`` implementation serves.
``unsupported`` kinds are refused at validation with the reason. Defaults are upstream's (``REQUIRED``: none).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()

PURE, FLOW, RESOURCE, UNSUPPORTED = "pure", "flow", "resource", "unsupported"
MODEL, EMBEDDING, RETRIEVAL, HTTP, MCP, AGENT, LLM_TASK, READER = (
    "model", "embedding", "retrieval", "http", "mcp", "agent", "llm_task", "reader")
SERVICE_CATEGORIES = (MODEL, EMBEDDING, RETRIEVAL, HTTP, MCP, AGENT, LLM_TASK, READER)


@dataclass(frozen=True)
class Kind:
    name: str
    params: dict[str, Any]
    category: str
    refs: tuple[str, ...] = ()          # args holding node ids (a string or a list of strings)
    whole_dict: bool = False            # f(kw: dict): the args dict is dispatched on kw["type"] (LLM, Embedding, ...)
    any_value: bool = False             # Constant: args that are not {"value": ...} are the value itself
    reason: str = ""                    # why an unsupported kind is refused
    module: bool = True                 # upstream makes a ModuleBase (so ``hyperparameter`` applies)
    dispatch: dict[str, str] = field(default_factory=dict)   # whole_dict kinds: type -> kind of its params

    @property
    def first_param(self) -> str | None:
        return next(iter(self.params), None)


def _p(**kw: Any) -> dict[str, Any]:
    return kw


R = REQUIRED
_GRAPH = _p(nodes=R, edges=None, resources=None, enable_server=True, _history_ids=None)
_LOCAL_LLM = _p(base_model=R, target_path="", prompt="", stream=False, return_trace=False, deploy_method="auto",
                url=None, history=None)
_ONLINE_LLM = _p(source=None, base_model=None, prompt=None, api_key=None, secret_key=None, stream=False, token=None,
                 base_url=None, history=None, static_params=None)
_LOCAL_EMBED = _p(base_model=R, deploy_method="auto", url=None)
_ONLINE_EMBED = _p(source=None, embed_type="embed", base_model=None, base_url=None, api_key=None)
_LOCAL_MM = _p(base_model=R, deploy_method="auto", url=None)
_ONLINE_MM = _p(source=None, base_model=None, base_url=None, api_key=None)
_HTTP_TOOL = _p(method=None, url=None, params=None, headers=None, body=None, timeout=10, proxies=None, code_str=None,
                vars_for_code=None, doc=None, outputs=None, extract_from_result=None, authentication_type=None,
                tool_api_id=None, user_id=None, share_key=False)

_MEDIA = "speech, image and vision models (STT, TTS, SD, VQA) are not served by lazyllm-images yet"
_SQL = "SQL kinds (SqlManager, SqlCall) are not supported yet: they need a database connection and NL-to-SQL"

KINDS: dict[str, Kind] = {k.name: k for k in [
    # control flow and glue
    Kind("Graph", _GRAPH, FLOW, module=True),
    Kind("SubGraph", _GRAPH, FLOW, module=True),
    Kind("App", _p(nodes=R, edges=R, resources=None), FLOW, module=True),
    Kind("Code", _p(code=R, vars_for_code=None), PURE),
    Kind("Switch", _p(judge_on_full_input=R, nodes=R, conversion=None), FLOW, module=False),
    Kind("Ifs", _p(cond=R, true=R, false=R, judge_on_full_input=True), FLOW, module=False),
    Kind("Loop", _p(nodes=R, edges=None, resources=None, stop_condition=None, judge_on_full_input=True,
                    count=sys.maxsize), FLOW, module=False),
    Kind("Warp", _p(nodes=R, edges=None, resources=None, batch_flags=None), FLOW, module=False),
    Kind("Diverter", _p(nodes=R), FLOW, module=False),
    Kind("Formatter", _p(ftype=R, rule=R), PURE, module=False),
    Kind("JoinFormatter", _p(type="sum", names=None, symbol=None), PURE, module=False),
    Kind("Constant", _p(value=R), PURE, any_value=True, module=False),
    # tools and HTTP
    Kind("HTTP", _p(method=R, url=R, api_key="", headers=None, params=None, body=""), HTTP),
    Kind("HttpTool", _HTTP_TOOL, HTTP),            # PURE when it has no url (see graph.spec)
    Kind("ToolsForLLM", _p(tools=R), PURE, refs=("tools",)),
    Kind("FunctionCall", _p(base_model=R, tools=R, algorithm=None), AGENT, refs=("base_model", "tools")),
    Kind("MCPTool", _p(command_or_url=R, tool_name=R, args=None, env=None, headers=None, timeout=5), MCP),
    Kind("SqlManager", _p(db_type=None, user=None, password=None, host=None, port=None, db_name=None, options_str="",
                          tables_info_dict=None), UNSUPPORTED, reason=_SQL),
    Kind("SqlCall", _p(sql_manager=R, base_model=R, sql_examples="", use_llm_for_sql_result=True, return_trace=True),
         UNSUPPORTED, refs=("sql_manager", "base_model"), reason=_SQL),
    # models
    Kind("LocalLLM", _LOCAL_LLM, MODEL),
    Kind("OnlineLLM", _ONLINE_LLM, MODEL),
    Kind("LLM", _p(kw=R), MODEL, whole_dict=True, dispatch={"local": "LocalLLM", "online": "OnlineLLM"}),
    Kind("SharedModel", _p(llm=R, prompt=None, stream=None, file_resource_id=None, history=None, cls="llm"), MODEL,
         refs=("llm",)),
    Kind("Embedding", _p(kw=R), EMBEDDING, whole_dict=True,
         dispatch={"local": "LocalEmbedding", "online": "OnlineEmbedding"}),
    Kind("LocalEmbedding", _LOCAL_EMBED, EMBEDDING),
    Kind("OnlineEmbedding", _ONLINE_EMBED, EMBEDDING),
    Kind("VQA", _p(kw=R), UNSUPPORTED, whole_dict=True, reason=_MEDIA),
    Kind("LocalVQA", _p(base_model=R, file_resource_id=None, prompt=None, deploy_method="auto", url=None),
         UNSUPPORTED, reason=_MEDIA),
    Kind("OnlineVQA", {k: v for k, v in _ONLINE_LLM.items() if k != "static_params"}, UNSUPPORTED, reason=_MEDIA),
    Kind("STT", _p(kw=R), UNSUPPORTED, whole_dict=True, reason=_MEDIA),
    Kind("LocalSTT", _LOCAL_MM, UNSUPPORTED, reason=_MEDIA),
    Kind("TTS", _p(kw=R), UNSUPPORTED, whole_dict=True, reason=_MEDIA),
    Kind("LocalTTS", _LOCAL_MM, UNSUPPORTED, reason=_MEDIA),
    Kind("OnlineTTS", _ONLINE_MM, UNSUPPORTED, reason=_MEDIA),
    Kind("SD", _p(kw=R), UNSUPPORTED, whole_dict=True, reason=_MEDIA),
    Kind("LocalSD", _LOCAL_MM, UNSUPPORTED, reason=_MEDIA),
    Kind("OnlineSD", _ONLINE_MM, UNSUPPORTED, reason=_MEDIA),
    Kind("OCR", _p(base_model="PP-OCRv5_mobile", deploy_method="auto", url=None), UNSUPPORTED,
         reason="OCR models (PP-OCR) are not served by lazyllm-images yet"),
    # RAG
    Kind("Document", _p(dataset_path=R, embed=None, create_ui=False, server=False, node_group=[],
                        activated_groups=[]), RETRIEVAL, refs=("embed",)),
    Kind("Retriever", _p(doc=R, group_name=R, similarity="cosine", similarity_cut_off=float("-inf"),
                         index="default", topk=6, target=None, output_format=None, join=False), RETRIEVAL,
         refs=("doc",)),
    Kind("Reranker", _p(type="ModuleReranker", target=None, output_format=None, join=False, arguments=None),
         RETRIEVAL),
    # miscellaneous
    Kind("File", _p(id=R), UNSUPPORTED, module=False,
         reason="File resources are per-run file paths that only upstream's Python API can pass"),
    Kind("Reader", _p(file_resource_id=None), READER),
    Kind("ParameterExtractor", _p(base_model=R, param=R, type=R, description=R, require=R), LLM_TASK,
         refs=("base_model",)),
    Kind("QustionRewrite", _p(base_model=R, rewrite_prompt="", formatter="str"), LLM_TASK, refs=("base_model",)),
    Kind("CodeGenerator", _p(base_model=R, prompt=""), LLM_TASK, refs=("base_model",)),
    Kind("Intention", _p(base_model=R, nodes=R, prompt="", constrain="", attention=""), LLM_TASK,
         refs=("base_model",)),
    # resources only
    Kind("server", _p(port=None), RESOURCE, module=False),
    Kind("web", _p(port=None, title=R, audio=R, history=None), RESOURCE, module=False, refs=("history",)),
]}

# upstream's own quirk: `OnlineSTT` is defined without `@` (engine.py), so it is not a registered kind
UNREGISTERED_HINTS = {
    "OnlineSTT": "upstream never registered OnlineSTT (a missing @ in its engine.py); it is not a kind there either",
    "QuestionRewrite": 'upstream spells this kind "QustionRewrite"',
}

MODEL_KINDS = frozenset({"LocalLLM", "OnlineLLM", "LLM", "SharedModel"})
LLM_REF_KINDS = MODEL_KINDS
RESERVED_IDS = frozenset({"__start__", "__end__"})
CONTROL_ARGS = ("_lazyllm_arg_names", "_lazyllm_enable_report")


def lookup(name: Any) -> Kind | None:
    return KINDS.get(name) if isinstance(name, str) else None
