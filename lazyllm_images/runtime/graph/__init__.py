"""Upstream LazyLLM's JSON compute graphs (``lazyllm run WORKFLOW.json``): load, validate, execute.

Standard library only (PyYAML for the yaml formatter, imported when used). The API the CLI and the graph
runner build on:

- ``load_graph(data) -> (LoadedGraph | None, Report)``: validation before anything runs, every problem with its
  JSON path (``Report.errors``/``warnings``, ``Problem.path``/``message``/``hint``); ``read_graph_file(path)``
  for the file-level faults (``GraphFileError``). ``LoadedGraph.services()`` / ``services_summary()``: the model,
  retrieval, tool, MCP and server/web nodes the graph needs, with their args and users.
- ``Executor(graph, sandbox=SandboxClient(path), services=Services(), on_event=callback).run(*args)``: upstream's
  semantics value for value; ``run_result`` never raises. Errors are ``GraphRunError`` (``NodeError``:
  ``node "1" (name) raised ValueError: boom``). Events: see ``events``.
- ``Services``: subclass it to serve model, retrieval and tool nodes (see ``services``).
- ``sandbox``: the Code sandbox worker (``python -m lazyllm_images.runtime.graph.sandbox --socket PATH``),
  ``SandboxClient`` and ``LocalWorker``.
- ``python -m lazyllm_images.runtime.graph run G.json [--input V | --args JSON] [--trace] [--dry-run]``: one-shot
  and REPL (``cli.main`` takes ``services=`` and ``sandbox=`` for embedding).
"""

from .errors import EdgeError, GraphRunError, NodeError
from .events import EventSink
from .executor import Executor, RunResult
from .load import GraphFileError, load_graph, load_graph_strict, read_graph_file
from .problems import GraphValidationError, Problem, Report
from .services import HttpRequest, ServiceCall, Services, ServiceUnavailable, ToolHandle
from .spec import EdgeSpec, GraphSpec, LoadedGraph, NodeSpec, ServiceNeed
from .values import Package, output_json, to_output

__all__ = ["EdgeError", "EdgeSpec", "EventSink", "Executor", "GraphFileError", "GraphRunError", "GraphSpec",
           "GraphValidationError", "HttpRequest", "LoadedGraph", "NodeError", "NodeSpec", "Package", "Problem",
           "Report", "RunResult", "ServiceCall", "ServiceNeed", "ServiceUnavailable", "Services", "ToolHandle",
           "load_graph", "load_graph_strict", "output_json", "read_graph_file", "to_output"]
