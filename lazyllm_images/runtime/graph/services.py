"""The interface model, retrieval and tool nodes go through: the executor prepares each call (upstream's value
semantics, prompts and keys resolved, HTTP templates filled) and a ``Services`` implementation does the I/O.

Subclass ``Services`` and override what the graph needs; anything not overridden raises ``ServiceUnavailable``,
which fails the node with a clear message. Every method may be called from several threads at once.

Which method serves which kinds, and what the executor has prepared:
- ``llm(call)``: LocalLLM, OnlineLLM, LLM, SharedModel. ``call.model`` is the model definition (for SharedModel
  the ``llm`` resource); ``call.prompt``/``history``/``stream`` the effective settings; ``call.args`` the input
  (with LLM ``keys``, the inputs already zipped into one dict); ``call.kwargs`` hyperparameters.
- ``embed(call)``: Embedding, LocalEmbedding, OnlineEmbedding; the text(s) in ``call.args``.
- ``classify(call, labels)``: Intention; return one label (anything else falls back to the first, as upstream).
- ``retrieve(call)``: Retriever; ``call.document`` is the Document definition, ``call.args`` the query.
- ``rerank(call)``: Reranker; ``call.args`` are (nodes, query) as upstream passes them.
- ``http(request)``: HTTP, and HttpTool with a url; an ``HttpRequest`` with its templates filled. Return
  ``{"status_code", "content", "headers", "file"}``.
- ``mcp(call)``: MCPTool; ``call.kwargs`` are the tool arguments.
- ``agent(call, tools)``: FunctionCall; ``tools`` are ``ToolHandle``s the agent calls back (Code tools run in the
  sandbox).
- ``llm_task(call)``: ParameterExtractor, QustionRewrite, CodeGenerator; ``call.model`` is the ``base_model``.
- ``other(call)``: Reader, and a Document used as a node.

``call.emit(text)`` streams a text delta of a streaming model to the run's event callback (``text_delta`` events);
the method still returns the full result, as upstream does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .spec import NodeSpec


class ServiceUnavailable(RuntimeError):
    """The node needs a service this run was not given (e.g. a model graph run without model services)."""


@dataclass
class ServiceCall:
    node: NodeSpec
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    run_id: str = ""
    emit: Callable[[str], None] = lambda text: None
    model: NodeSpec | None = None          # the model/resource definition behind the node
    document: NodeSpec | None = None       # Retriever: the Document definition
    prompt: Any = None                     # effective prompt (str or {"system", "user"}), SharedModel overrides
    history: list | None = None
    stream: bool = False


@dataclass
class HttpRequest:
    """An HTTP call with ``{{name}}`` templates filled from the node's inputs (upstream ``HttpRequest.forward``).
    Send ``json`` as a JSON body when it is not None, else ``data`` (a str or None) as the raw body."""
    node: NodeSpec
    method: str
    url: str
    params: dict | None = None
    headers: dict | None = None
    data: str | None = None
    json: Any = None
    timeout: float = 10
    proxies: dict | None = None


@dataclass
class ToolHandle:
    """A tool an agent may call: ``name``/``description``/``parameters`` for the model, ``call(arguments)`` to run
    it (returns upstream's envelope ``{"ok": bool, "value": ...}``)."""
    name: str
    node: NodeSpec
    description: str
    parameters: dict
    call: Callable[[Any], dict]


class Services:
    def llm(self, call: ServiceCall) -> Any:
        raise ServiceUnavailable(f"no model service for {call.node.kind} nodes in this run")

    def embed(self, call: ServiceCall) -> Any:
        raise ServiceUnavailable(f"no embedding service for {call.node.kind} nodes in this run")

    def classify(self, call: ServiceCall, labels: list[str]) -> str:
        raise ServiceUnavailable("no model service for Intention nodes in this run")

    def retrieve(self, call: ServiceCall) -> Any:
        raise ServiceUnavailable("no retrieval service for Retriever nodes in this run")

    def rerank(self, call: ServiceCall) -> Any:
        raise ServiceUnavailable("no reranking service for Reranker nodes in this run")

    def http(self, request: HttpRequest) -> dict:
        raise ServiceUnavailable(f"no HTTP client for {request.node.kind} nodes in this run")

    def mcp(self, call: ServiceCall) -> Any:
        raise ServiceUnavailable("no MCP service for MCPTool nodes in this run")

    def agent(self, call: ServiceCall, tools: list[ToolHandle]) -> Any:
        raise ServiceUnavailable("no agent service for FunctionCall nodes in this run")

    def llm_task(self, call: ServiceCall) -> Any:
        raise ServiceUnavailable(f"no model service for {call.node.kind} nodes in this run")

    def other(self, call: ServiceCall) -> Any:
        raise ServiceUnavailable(f"{call.node.kind} nodes are not served in this run")
