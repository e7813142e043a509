"""The graph runner's ``Services``: model nodes on OpenAI-compatible servers (the project's model containers, or an
online API), upstream's ``dummy`` model answered here, HTTP nodes through the runner's network.

The configuration is a JSON file the launcher writes (``--services FILE``)::

    {"models": {"<node or resource id>": {"kind": "dummy"}
                                         | {"kind": "openai", "url": "http://svc-model-1:8000/v1",
                                            "model": "served-name", "key_file": "/tmp/lazyllm/keys/1"}},
     "http": true}

API keys are files written into the container's tmpfs at start (never in its config).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .services import HttpRequest, ServiceCall, Services, ServiceUnavailable

DUMMY_SYSTEM = "You are an AI-Agent developed by LazyLLM."
TIMEOUT = 600.0
MAX_ROUNDS = 10


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


def messages(call: ServiceCall) -> list[dict]:
    """OpenAI chat messages from the node's effective prompt, history and input."""
    prompt, out = call.prompt, []
    system = prompt.get("system") if isinstance(prompt, dict) else prompt
    if system:
        out.append({"role": "system", "content": str(system)})
    for turn in call.history or []:
        if isinstance(turn, (list, tuple)) and len(turn) == 2:
            out += [{"role": "user", "content": _text(turn[0])}, {"role": "assistant", "content": _text(turn[1])}]
        elif isinstance(turn, dict) and "role" in turn:
            out.append({"role": turn["role"], "content": _text(turn.get("content", ""))})
    user = call.args[0] if call.args else ""
    if isinstance(prompt, dict) and prompt.get("user"):
        user = str(prompt["user"]).replace("{query}", _text(user))
    out.append({"role": "user", "content": _text(user)})
    return out


class RemoteServices(Services):
    def __init__(self, config: dict) -> None:
        self.models: dict[str, dict] = config.get("models") or {}
        self.documents: dict[str, dict] = config.get("documents") or {}
        self.tools: dict[str, dict] = config.get("mcp") or {}
        self.allow_http = bool(config.get("http"))
        self._keys: dict[str, str] = {}

    @classmethod
    def from_file(cls, path: str | None) -> "RemoteServices":
        return cls(json.loads(Path(path).read_text()) if path else {})

    def _model(self, call: ServiceCall) -> dict:
        ref = (call.model or call.node).id
        found = self.models.get(ref) or self.models.get(call.node.id)
        if found is None:
            raise ServiceUnavailable(f"no model server was started for node \"{ref}\" ({call.node.kind})")
        return found

    def _key(self, model: dict) -> str | None:
        path = model.get("key_file")
        if not path:
            return None
        if path not in self._keys:
            self._keys[path] = Path(path).read_text().strip()
        return self._keys[path]

    def llm(self, call: ServiceCall) -> Any:
        model = self._model(call)
        if model.get("kind") == "dummy":
            return self._dummy(call)
        return self._chat(model, call, messages(call))

    def _dummy(self, call: ServiceCall) -> str:
        """upstream's ``deploy_method="dummy"``: an echo of the prompt and the parameters."""
        prompt = call.prompt if isinstance(call.prompt, str) else (call.prompt or {}).get("system", "")
        text = f"reply for {DUMMY_SYSTEM}{prompt or ''}\n{call.args[0] if call.args else ''}, and parameters is " \
               f"{dict(call.kwargs)}"
        if call.stream:
            for word in text.split(" "):
                call.emit(word + " ")
        return text

    def _chat(self, model: dict, call: ServiceCall, msgs: list[dict]) -> str:
        import httpx
        body = {"model": model["model"], "messages": msgs, "stream": bool(call.stream),
                **{k: v for k, v in call.kwargs.items() if isinstance(v, (int, float, str, bool))}}
        headers = {"Authorization": f"Bearer {self._key(model)}"} if model.get("key_file") else {}
        url = model["url"].rstrip("/") + "/chat/completions"
        if not call.stream:
            r = httpx.post(url, json=body, headers=headers, timeout=TIMEOUT)
            _raise_for(r, model)
            return r.json()["choices"][0]["message"]["content"] or ""
        parts: list[str] = []
        with httpx.stream("POST", url, json=body, headers=headers, timeout=TIMEOUT) as r:
            if r.status_code >= 400:
                r.read()
                _raise_for(r, model)
            from ..sse import DONE, SSEDecoder, event_error
            decoder = SSEDecoder()
            for line in r.iter_lines():
                event = decoder.feed(line)
                if event is None:
                    continue
                if event[1] == DONE:
                    break
                data = json.loads(event[1])
                failed = event_error(event[0], data)
                if failed:
                    raise RuntimeError(f"the model server {model.get('url')} failed: {failed}")
                delta = ((data.get("choices") or [{}])[0].get("delta") or {}).get("content")
                if delta:
                    parts.append(delta)
                    call.emit(delta)
        return "".join(parts)

    def embed(self, call: ServiceCall) -> Any:
        """Embedding nodes: one text -> its vector, a list of texts -> their vectors (upstream's shapes)."""
        import httpx
        model = self._model(call)
        text = call.args[0] if call.args else ""
        many = isinstance(text, (list, tuple))
        headers = {"Authorization": f"Bearer {self._key(model)}"} if model.get("key_file") else {}
        r = httpx.post(model["url"].rstrip("/") + "/embeddings", headers=headers, timeout=TIMEOUT,
                       json={"model": model["model"], "input": [_text(t) for t in text] if many else [_text(text)]})
        _raise_for(r, model)
        vectors = [d["embedding"] for d in sorted(r.json()["data"], key=lambda d: d["index"])]
        return vectors if many else vectors[0]

    def retrieve(self, call: ServiceCall) -> Any:
        """A Retriever on its Document's RAG service: the top-k passages, as upstream's ``output_format`` says
        (``content``: their texts; ``dict`` or none: ``{"content", "metadata"}``), joined when ``join`` says so."""
        import httpx
        doc = self.documents.get(call.document.id if call.document is not None else "")
        if doc is None:
            raise ServiceUnavailable(f"no document service was started for the Retriever \"{call.node.id}\"")
        args = call.node.args
        query = call.args[0] if call.args else ""
        r = httpx.post(doc["url"].rstrip("/") + "/query", timeout=TIMEOUT,
                       json={"query": _text(query), "top_k": int(args.get("topk") or 6)})
        _raise_for(r, doc)
        found = r.json().get("sources") or []
        if args.get("output_format") == "content":
            out: list = [s["text"] for s in found]
        else:
            out = [{"content": s["text"], "metadata": {"file_name": s.get("path"), "score": s.get("score")}}
                   for s in found]
        join = args.get("join")
        if join and args.get("output_format") == "content":
            return ("" if join is True else str(join)).join(out)
        return out

    def mcp(self, call: ServiceCall) -> Any:
        """An MCPTool: its ``tool_name`` called with the node's arguments on its server (streamable HTTP: a URL,
        or the project's bridge in front of a command); the tool's text, or its structured content."""
        tool = self.tools.get(call.node.id)
        if tool is None:
            raise ServiceUnavailable(f"no MCP server was started for the MCPTool \"{call.node.id}\"")
        import anyio
        arguments = dict(call.kwargs) or (dict(call.args[0]) if call.args and isinstance(call.args[0], dict) else {})
        return anyio.run(_call_tool, tool, str(call.node.args.get("tool_name")), arguments)

    def rerank(self, call: ServiceCall) -> Any:
        """A Reranker on the project's embedding server serving its cross-encoder (``/v1/rerank``): the passages
        (``nodes``: texts or ``{"content"}`` dicts) reordered by relevance to the query, its ``topk`` kept."""
        import httpx
        model = self.models.get(call.node.id)
        if model is None:
            raise ServiceUnavailable(f"no reranker server was started for the Reranker \"{call.node.id}\"")
        nodes, query = (list(call.args) + [None, None])[:2]
        nodes = list(nodes) if isinstance(nodes, (list, tuple)) else [nodes]
        texts = [n.get("content", "") if isinstance(n, dict) else _text(n) for n in nodes]
        arguments = call.node.args.get("arguments") or {}
        top = int(arguments.get("topk") or len(texts) or 1)
        r = httpx.post(model["url"].rstrip("/") + "/rerank", timeout=TIMEOUT,
                       json={"model": model["model"], "query": _text(query), "documents": texts, "top_n": top})
        _raise_for(r, model)
        ranked = [nodes[x["index"]] for x in r.json()["results"]][:top]
        if call.node.args.get("output_format") == "content":
            ranked = [n.get("content", "") if isinstance(n, dict) else _text(n) for n in ranked]
            join = call.node.args.get("join")
            if join:
                return ("" if join is True else str(join)).join(ranked)
        return ranked

    def agent(self, call: ServiceCall, tools: list) -> Any:
        """FunctionCall (upstream's ReactAgent by default): the model is given the tools in OpenAI's ``tools`` shape;
        each tool call it makes is run (Code tools in the sandbox) and answered, until it answers in text."""
        model = self._model(call)
        by_name = {t.name: t for t in tools}
        specs = [{"type": "function", "function": {"name": t.name, "description": t.description,
                                                   "parameters": t.parameters}} for t in tools]
        msgs = messages(call)
        for _ in range(MAX_ROUNDS):
            reply = self._complete(model, msgs, tools=specs)
            calls = reply.get("tool_calls") or []
            if not calls:
                return reply.get("content") or ""
            msgs.append({"role": "assistant", "content": reply.get("content"), "tool_calls": calls})
            for c in calls:
                fn = c.get("function") or {}
                tool = by_name.get(fn.get("name"))
                try:
                    arguments = json.loads(fn.get("arguments") or "{}")
                except ValueError:
                    arguments = {}
                out = tool.call(arguments) if tool else {"ok": False, "value": f"no tool named {fn.get('name')}"}
                msgs.append({"role": "tool", "tool_call_id": c.get("id", ""), "content": _text(out.get("value"))})
        raise RuntimeError(f"the agent made no final answer after {MAX_ROUNDS} rounds of tool calls")

    def llm_task(self, call: ServiceCall) -> Any:
        """ParameterExtractor, QustionRewrite, CodeGenerator: one instruction to the ``base_model``."""
        from .values import Package
        model, args, kind = self._model(call), call.node.args, call.node.kind
        text = _text(call.args[0] if call.args else "")
        if kind == "ParameterExtractor":
            params = list(args.get("param") or [])
            fields = "; ".join(f"{p} ({t}): {d}" for p, t, d in zip(params, args.get("type") or [],
                                                                    args.get("description") or []))
            ask = f"Extract these parameters from the text and answer with a JSON object only: {fields}"
            answer = self._complete(model, [{"role": "system", "content": ask}, {"role": "user", "content": text}])
            found = _json_object(answer.get("content") or "")
            values = [found.get(p) for p in params]
            return values[0] if len(values) == 1 else Package(values)
        if kind == "QustionRewrite":
            ask = args.get("rewrite_prompt") or "Rewrite the question to be clear and self-contained."
            answer = self._complete(model, [{"role": "system", "content": ask}, {"role": "user", "content": text}])
            out = (answer.get("content") or "").strip()
            return [line for line in out.splitlines() if line.strip()] if args.get("formatter") == "list" else out
        ask = args.get("prompt") or "Write the Python code the user asks for. Answer with the code only."
        answer = self._complete(model, [{"role": "system", "content": ask}, {"role": "user", "content": text}])
        return _strip_fence(answer.get("content") or "")

    def _complete(self, model: dict, msgs: list[dict], tools: list | None = None) -> dict:
        """One non-streaming chat completion: the assistant message."""
        import httpx
        if model.get("kind") == "dummy":
            return {"content": f"reply for {DUMMY_SYSTEM}{msgs[-1]['content']}, and parameters is {{}}"}
        body = {"model": model["model"], "messages": msgs, **({"tools": tools} if tools else {})}
        headers = {"Authorization": f"Bearer {self._key(model)}"} if model.get("key_file") else {}
        r = httpx.post(model["url"].rstrip("/") + "/chat/completions", json=body, headers=headers, timeout=TIMEOUT)
        _raise_for(r, model)
        return r.json()["choices"][0]["message"]

    def classify(self, call: ServiceCall, labels: list[str]) -> str:
        model = self._model(call)
        if model.get("kind") == "dummy":
            return self._dummy(call)
        ask = (f"Classify the user's request into exactly one of these intents: {', '.join(labels)}. "
               "Answer with the intent only.")
        answer = self._chat(model, ServiceCall(call.node, call.args, {}, call.run_id, model=call.model),
                            [{"role": "system", "content": ask}, {"role": "user", "content": _text(call.args[0])}])
        return answer.strip().strip("\"'. ")

    def http(self, request: HttpRequest) -> dict:
        if not self.allow_http:
            raise ServiceUnavailable("HTTP nodes are not served in this run")
        import httpx
        r = httpx.request(request.method, request.url, params=request.params, headers=request.headers,
                          content=None if request.json is not None else request.data, json=request.json,
                          timeout=request.timeout, follow_redirects=True)
        return {"status_code": r.status_code, "content": r.text, "headers": dict(r.headers), "file": None}


def _raise_for(r, model: dict) -> None:
    if r.status_code < 400:
        return
    try:
        message = r.json().get("error", {})
        message = message.get("message") if isinstance(message, dict) else message
    except ValueError:
        message = r.text[:300]
    raise RuntimeError(f"the model server {model.get('url')} answered {r.status_code}: {message}")


async def _call_tool(tool: dict, name: str, arguments: dict) -> Any:
    from datetime import timedelta

    from mcp import ClientSession
    from mcp.client.streamable_http import streamablehttp_client
    timeout = float(tool.get("timeout") or 5)
    async with streamablehttp_client(tool["url"], headers=tool.get("headers") or None,
                                     timeout=timeout) as (read, write, _):
        async with ClientSession(read, write, read_timeout_seconds=timedelta(seconds=max(timeout, 30))) as session:
            await session.initialize()
            result = await session.call_tool(name, arguments)
    if result.isError:
        texts = [c.text for c in result.content if getattr(c, "text", None)]
        raise RuntimeError(f"the MCP tool {name} failed: {' '.join(texts) or 'no reason given'}")
    if getattr(result, "structuredContent", None):
        return result.structuredContent
    texts = [c.text for c in result.content if getattr(c, "text", None) is not None]
    return texts[0] if len(texts) == 1 else texts


def _json_object(text: str) -> dict:
    """The first JSON object in a model's answer ({} when there is none)."""
    start = text.find("{")
    while start != -1:
        try:
            found, _ = json.JSONDecoder().raw_decode(text[start:])
            if isinstance(found, dict):
                return found
        except ValueError:
            pass
        start = text.find("{", start + 1)
    return {}


def _strip_fence(text: str) -> str:
    """Code out of a markdown fence, when the model wrote one."""
    lines = text.strip().splitlines()
    if len(lines) >= 2 and lines[0].startswith("```") and lines[-1].startswith("```"):
        return "\n".join(lines[1:-1])
    return text.strip()
