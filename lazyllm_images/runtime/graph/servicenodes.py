"""Kinds that go through ``Services``: HTTP, HttpTool, ToolsForLLM, MCPTool, FunctionCall, models, embeddings,
retrieval, Intention. The executor keeps upstream's value semantics (HTTP templates, HttpTool outputs, LLM keys,
tool-call envelopes, Intention's fallback); the services do the I/O."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from . import toolschema
from .errors import NodeError
from .executor import ModuleUnit, Runtime, Unit, invoke
from .flows import branch_unit
from .services import HttpRequest, ServiceCall, ToolHandle
from .spec import NodeSpec
from .values import Package

_TEMPLATE = re.compile(r"\{\{([^}]+)\}\}")


def fill_template(text: Any, args: tuple, kwargs: dict) -> Any:
    """upstream ``HttpRequest._map_input``: ``{{key}}`` from the keyword arguments and a dict first argument; a
    template that is exactly one placeholder takes the value itself, others its text (JSON for dict/list/bool)."""
    if not isinstance(text, str):
        return text
    values = {**kwargs, **(args[0] if args and isinstance(args[0], dict) else {})}
    if not values:
        return text
    full = _TEMPLATE.fullmatch(text)
    if full and full.group(1) in values:
        return values[full.group(1)]

    def sub(m: re.Match) -> str:
        if m.group(1) not in values:
            return m.group(0)
        v = values[m.group(1)]
        return json.dumps(v, ensure_ascii=False) if isinstance(v, (dict, list, bool)) or v is None else str(v)
    return _TEMPLATE.sub(sub, text)


def http_request(node: NodeSpec, args: tuple, kwargs: dict) -> HttpRequest:
    a = node.args
    fill = lambda t: fill_template(t, args, kwargs)
    params = {k: fill(v) for k, v in a["params"].items()} if a.get("params") else None
    headers = {k: fill(v) for k, v in a["headers"].items()} if a.get("headers") else None
    if a.get("api_key"):
        params = dict(params or {}, api_key=a["api_key"])
    body, data, payload = a.get("body"), None, None
    if isinstance(headers, dict) and headers.get("Content-Type") == "application/json":
        text = json.dumps(body) if isinstance(body, dict) else body
        if text is not None:             # upstream: json.loads(None) raises (LazyCraft #58); here: no body
            try:
                payload = json.loads(fill(text))
            except json.JSONDecodeError:
                raise ValueError(f"Invalid JSON format: {body}") from None
    else:
        data = json.dumps({k: fill(v) for k, v in body.items()}) if isinstance(body, dict) else fill(body)
    return HttpRequest(node, a.get("method") or "GET", fill(a.get("url")), params, headers, data, payload,
                       a.get("timeout", 10) or 10, a.get("proxies"))


class HttpUnit(ModuleUnit):
    def call(self, rt: Runtime, args: tuple, kw: dict) -> Any:
        return rt.services.http(http_request(self.node, args, kw))


class HttpToolUnit(ModuleUnit):
    def call(self, rt: Runtime, args: tuple, kw: dict) -> Any:
        a = self.node.args
        if not a.get("url") and a.get("code_str") is None:
            return None
        if a.get("url"):
            res = rt.services.http(http_request(self.node, args, kw))
            if int(res["status_code"]) >= 400:
                raise RuntimeError(f"HttpRequest error, status code is {res['status_code']}.")
            args, kw = (res,), {}
        if a.get("code_str") is not None:
            res = rt.code(self.node, "code_str", args, kw)
        else:
            res = json.loads(args[0]["content"])
        return self.outputs(res) if a.get("outputs") else res

    def outputs(self, res: Any) -> Any:
        outputs = self.node.args["outputs"]
        if self.node.args.get("extract_from_result") or (isinstance(res, dict) and len(outputs) > 1):
            if not isinstance(res, dict):
                raise AssertionError("The result of the tool should be a dict type")
            picked = Package([res.get(k) for k in outputs])
            return picked[0] if len(picked) == 1 else picked
        if len(outputs) > 1:
            if not isinstance(res, (tuple, list)):
                raise AssertionError("The result of the tool should be tuple or list")
            if len(res) != len(outputs):
                raise AssertionError("The number of outputs is inconsistent with expectations")
            return Package(res)
        return res


# ------------------------------------------------------------------------------------------------- tools
def tool_envelope(rt: Runtime, tool: NodeSpec, arguments: Any) -> dict:
    """One tool call as upstream's ToolManager answers it: ``{"ok": true, "value": v}`` or ``{"ok": false,
    "value": message}``."""
    try:
        if tool.kind == "Code":
            value = rt.code(tool, "code", (arguments,), {}, mode="tool")
        else:
            kwargs = json.loads(arguments) if isinstance(arguments, str) and arguments.strip() else arguments or {}
            if tool.kind == "MCPTool":
                value = rt.services.mcp(ServiceCall(tool, (), dict(kwargs), rt.run_id))
            else:
                value = rt.unit(tool)(rt, **kwargs)
    except NodeError as e:
        if e.reason == "invalid_arguments":
            return {"ok": False, "value": e.message}
        return {"ok": False, "value": f"{tool.name} failed: {e.message or e.exc_type}"}
    except Exception as e:
        return {"ok": False, "value": f"{tool.name} failed: {e or type(e).__name__}"}
    return {"ok": True, "value": value}


def _tools(node: NodeSpec) -> dict[str, NodeSpec]:
    refs = [node.refs[k] for k in sorted(node.refs, key=_index) if k.startswith("tools[")]
    return {t.name: t for t in refs}


def _index(key: str) -> int:
    m = re.search(r"\[(\d+)\]", key)
    return int(m.group(1)) if m else -1


BAD_CALL = ('Tool call format is invalid, expected: {"function": {"name": "tool_name", "arguments": '
            '"{{"arg1": "value1", "arg2": "value2"}}"}}')


class ToolsUnit(ModuleUnit):
    """ToolsForLLM: run OpenAI-style tool calls; one call gives its envelope, several a Package of them."""

    def call(self, rt: Runtime, args: tuple, kw: dict) -> Any:
        calls = args[0] if args else []
        tools = _tools(self.node)
        results = []
        for call in calls if isinstance(calls, list) else [calls]:
            function = call.get("function") if isinstance(call, dict) else None
            if not isinstance(function, dict):
                results.append({"ok": False, "value": BAD_CALL})
                continue
            name = function.get("name")
            if name not in tools:
                results.append({"ok": False, "value": f"Tool [{name}] was not exposed in this turn."})
                continue
            results.append(tool_envelope(rt, tools[name], function.get("arguments")))
        return results[0] if len(results) == 1 else Package(results)


def tool_handles(rt: Runtime, node: NodeSpec) -> list[ToolHandle]:
    out = []
    for name, tool in _tools(node).items():
        description, parameters = toolschema.describe(tool)
        out.append(ToolHandle(name, tool, description, parameters,
                              lambda arguments, _t=tool: tool_envelope(rt, _t, arguments)))
    return out


# -------------------------------------------------------------------------------------- models, retrieval
def _emitter(rt: Runtime, node: NodeSpec) -> Callable[[str], None]:
    return lambda text: rt.sink.emit("text_delta", node_id=node.id, name=node.name, delta=text)


def model_call(rt: Runtime, node: NodeSpec, args: tuple, kw: dict) -> ServiceCall:
    model = node.refs.get("llm") or node.refs.get("base_model") or node
    m, n = model.args, node.args
    shared = node.kind == "SharedModel"
    prompt = n.get("prompt") if shared and n.get("prompt") is not None else m.get("prompt")
    history = n.get("history") if shared and n.get("history") else m.get("history")
    stream = n.get("stream") if shared and n.get("stream") is not None else m.get("stream", False)
    keys = m.get("keys") if model.kind == "LLM" else None
    if model is node or shared:
        if keys and len(keys) > 1:
            if len(args) != len(keys):
                raise AssertionError(f"{model.label} has {len(keys)} keys ({', '.join(keys)}) but got "
                                     f"{len(args)} inputs")
            args = ({k: a for k, a in zip(keys, args)},)
        elif model.kind == "LLM" and len(args) != 1:
            raise AssertionError(f"{model.label} takes one input, got {len(args)}")
    return ServiceCall(node, tuple(args), kw, rt.run_id, _emitter(rt, node), model=model, prompt=prompt,
                       history=history, stream=bool(stream), document=node.refs.get("doc"))


def _service(method: str) -> Callable[[NodeSpec], Unit]:
    class ServiceUnit(ModuleUnit):
        def call(self, rt: Runtime, args: tuple, kw: dict) -> Any:
            call = model_call(rt, self.node, args, kw)
            if method == "rerank":
                call.model = self.node.refs.get("arguments.model")
            if method == "agent":
                return rt.services.agent(call, tool_handles(rt, self.node))
            return getattr(rt.services, method)(call)
    return ServiceUnit


class IntentionUnit(ModuleUnit):
    def __init__(self, node: NodeSpec) -> None:
        super().__init__(node)
        self.cases = {label: branch_unit(spec) for label, spec in node.sub.get("cases", [])}

    def call(self, rt: Runtime, args: tuple, kw: dict) -> Any:
        value = args[0] if len(args) == 1 else Package(args)
        labels = list(self.cases)
        label = rt.services.classify(model_call(rt, self.node, (value,), kw), labels)
        unit = self.cases.get(label) or self.cases[labels[0]]       # unknown label: the first (upstream)
        return invoke(rt.under(self.node), unit, value)


BUILDERS: dict[str, Callable[[NodeSpec], Unit]] = {
    "HTTP": HttpUnit, "HttpTool": HttpToolUnit, "ToolsForLLM": ToolsUnit, "MCPTool": _service("mcp"),
    "FunctionCall": _service("agent"),
    "LocalLLM": _service("llm"), "OnlineLLM": _service("llm"), "LLM": _service("llm"), "SharedModel": _service("llm"),
    "Embedding": _service("embed"), "LocalEmbedding": _service("embed"), "OnlineEmbedding": _service("embed"),
    "Retriever": _service("retrieve"), "Reranker": _service("rerank"), "Document": _service("other"),
    "Reader": _service("other"), "ParameterExtractor": _service("llm_task"), "QustionRewrite": _service("llm_task"),
    "CodeGenerator": _service("llm_task"), "Intention": IntentionUnit,
}

