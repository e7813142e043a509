"""``python -m lazyllm_images.runtime.graph run G.json [--input VALUE | --args JSON_ARRAY] [--trace] [--dry-run]``

- ``--input VALUE``: one input, JSON when it parses, else the string; ``--args '[1, 2]'``: several (``[]``: none).
  The result is printed as one line of JSON (upstream's tuple becomes a list); exit 0.
- Neither: upstream's REPL (``query(enter "quit" to exit): ``, ``answer: ...``); the input is the raw line. Unlike
  upstream, an error does not end the REPL, and end of input ends it quietly.
- A failing run prints ``error: node "1" (name) raised ValueError: boom`` (and a ``hint:``) and exits 1; a file
  that is missing, not JSON or not a valid graph prints every problem and exits 2; bad usage exits 2.
- ``--sandbox SOCKET`` (or ``LAZYLLM_SANDBOX_SOCKET``): the Code sandbox worker to use; without it a local worker is
  started when the graph has code. ``--dry-run``: validate and print the services the graph needs, as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from contextlib import ExitStack
from typing import Any, TextIO

from .errors import GraphRunError
from .executor import Executor
from .load import GraphFileError, load_graph, read_graph_file
from .services import Services
from .spec import LoadedGraph
from .values import output_json, parse_cli_input, upstream_str

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
PROMPT = 'query(enter "quit" to exit): '


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:             # exit 2 with one error/hint pair, not argparse's usage dump
        raise UsageError(message)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = _Parser(prog="python -m lazyllm_images.runtime.graph", description="Run an upstream LazyLLM JSON graph.")
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a graph once (--input/--args) or as a REPL")
    run.add_argument("graph", help="the workflow JSON file")
    run.add_argument("--input", dest="input_value", metavar="VALUE", help="one input (JSON when it parses)")
    run.add_argument("--args", dest="args_json", metavar="JSON_ARRAY", help="several inputs, a JSON array")
    run.add_argument("--trace", action="store_true", help="print per-node timings to stderr")
    run.add_argument("--dry-run", action="store_true", help="validate and print the services the graph needs")
    run.add_argument("--sandbox", metavar="SOCKET", default=os.environ.get("LAZYLLM_SANDBOX_SOCKET"),
                     help="unix socket of a running sandbox worker (default: start one)")
    serve = sub.add_parser("serve", help="serve the graph over HTTP (JSON API, SSE events)")
    serve.add_argument("graph", help="the workflow JSON file")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--sandbox", metavar="SOCKET", default=os.environ.get("LAZYLLM_SANDBOX_SOCKET"),
                       help="unix socket of a running sandbox worker (default: start one when the graph has code)")
    serve.add_argument("--services", metavar="FILE", help="where model nodes are served (runtime.graph.remote)")
    serve.add_argument("--auth-token-file", metavar="FILE", help="require 'Authorization: Bearer' this token")
    return p.parse_args(argv)


def serve_main(ns: argparse.Namespace, err: TextIO) -> int:
    """``serve``: the graph behind ``runtime.graph.serve``'s HTTP API until the process is stopped."""
    try:
        graph, report = load_graph(read_graph_file(ns.graph))
    except GraphFileError as e:
        print(f"error: {e}", file=err)
        return EXIT_USAGE
    if graph is None:
        _print_problems(report, err)
        return EXIT_USAGE
    import uvicorn

    from .remote import RemoteServices
    from .serve import Runs, make_app
    token = None
    if ns.auth_token_file:
        from ..auth import read_token_file
        token = read_token_file(ns.auth_token_file)
    elif ns.host not in ("127.0.0.1", "localhost", "::1"):
        from ..netaddr import exposure_warning, shout
        shout(exposure_warning("the graph service", ns.host, None, "Give it a token.", "run the graph"))
    with ExitStack() as stack:
        sandbox = _sandbox(ns, graph, stack, err)
        if sandbox is False:
            return EXIT_FAILED
        services = RemoteServices.from_file(ns.services)
        runs = Runs(lambda on_event: Executor(graph, sandbox=sandbox, services=services, on_event=on_event))
        summary = {**report.as_dict(), **graph.services_summary()}
        app = make_app(runs, json.loads(json.dumps(summary, default=str)), token)
        uvicorn.run(app, host=ns.host, port=ns.port, log_level="warning", timeout_graceful_shutdown=3)
    return EXIT_OK


def run_args(ns: argparse.Namespace) -> list[Any] | None:
    """The positional inputs of a one-shot run, or None for the REPL."""
    if ns.input_value is not None and ns.args_json is not None:
        raise UsageError("--input and --args cannot be used together")
    if ns.input_value is not None:
        return [parse_cli_input(ns.input_value)]
    if ns.args_json is not None:
        try:
            value = json.loads(ns.args_json)
        except json.JSONDecodeError as e:
            raise UsageError(f"--args is not JSON: {e.msg}") from None
        if not isinstance(value, list):
            raise UsageError("--args must be a JSON array of inputs, e.g. '[1, \"two\"]' ('[]' for none)")
        return value
    return None


def _print_problems(report: Any, err: TextIO) -> None:
    for p in report.errors + report.warnings:
        print(f"{p.level}: {p.message}", file=err)
        if p.hint:
            print(f"hint: {p.hint}", file=err)


def _needs_sandbox(graph: LoadedGraph) -> bool:
    return any(n.code for n in graph.nodes_by_id.values())


def trace_printer(err: TextIO):
    def on_event(event: dict) -> None:
        if event["type"] in ("node_finished", "node_failed"):
            status = "failed" if event["type"] == "node_failed" else "ok"
            inside = f" in {event['parent']}" if event.get("parent") else ""
            print(f"trace: node \"{event['node_id']}\" ({event['name']}) {event['kind']}{inside} "
                  f"{event['elapsed_ms']:.1f} ms {status}", file=err)
        elif event["type"] == "run_finished":
            print(f"trace: run {event['elapsed_ms']:.1f} ms", file=err)
    return on_event


def main(argv: list[str] | None = None, *, services: Services | None = None, sandbox: Any = None,
         stdin: TextIO | None = None, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    """The entry point; ``services`` serve model/retrieval/tool nodes, ``sandbox`` (a ``SandboxClient``) runs Code
    (default: ``--sandbox``, else a local worker started for this run)."""
    out, err = stdout or sys.stdout, stderr or sys.stderr
    try:
        ns = parse_args(argv)
        if ns.command == "serve":
            return serve_main(ns, err)
        inputs = run_args(ns)
        data = read_graph_file(ns.graph)
    except UsageError as e:
        print(f"error: {e}", file=err)
        print("hint: python -m lazyllm_images.runtime.graph run G.json [--input VALUE | --args JSON_ARRAY]", file=err)
        return EXIT_USAGE
    except GraphFileError as e:
        print(f"error: {e}", file=err)
        if e.hint:
            print(f"hint: {e.hint}", file=err)
        return EXIT_USAGE
    graph, report = load_graph(data)
    if graph is None:
        _print_problems(report, err)
        return EXIT_USAGE
    if ns.dry_run:
        print(json.dumps({"ok": True, **report.as_dict(), **graph.services_summary()}, indent=2, default=str),
              file=out)
        return EXIT_OK
    _print_problems(report, err)
    with ExitStack() as stack:
        sandbox = sandbox if sandbox is not None else _sandbox(ns, graph, stack, err)
        if sandbox is False:
            return EXIT_FAILED
        executor = Executor(graph, sandbox=sandbox, services=services,
                            on_event=trace_printer(err) if ns.trace else None)
        if inputs is None:
            return repl(executor, stdin or sys.stdin, out, err)
        return one_shot(executor, inputs, out, err)


def _sandbox(ns: argparse.Namespace, graph: LoadedGraph, stack: ExitStack, err: TextIO) -> Any:
    from .sandbox import LocalWorker, SandboxClient, SandboxUnavailable
    if ns.sandbox:
        return SandboxClient(ns.sandbox)
    if not _needs_sandbox(graph):
        return None
    try:
        worker = stack.enter_context(LocalWorker(extra_args=["--quiet"]))
    except SandboxUnavailable as e:
        print(f"error: could not start the Code sandbox: {e}", file=err)
        return False
    return worker.client()


def one_shot(executor: Executor, inputs: list, out: TextIO, err: TextIO) -> int:
    result = executor.run_result(*inputs)
    for warning in result.warnings:
        print(f"warning: {warning}", file=err)
    if not result.ok:
        _print_error(result.error, err)
        return EXIT_FAILED
    print(output_json(result.value), file=out)
    return EXIT_OK


def _print_error(error: GraphRunError | None, err: TextIO) -> None:
    print(f"error: {error}", file=err)
    if error is not None and error.hint:
        print(f"hint: {error.hint}", file=err)


def repl(executor: Executor, stdin: TextIO, out: TextIO, err: TextIO) -> int:
    while True:
        out.write(PROMPT)
        out.flush()
        line = stdin.readline()
        if not line:
            out.write("\n")
            return EXIT_OK
        query = line.removesuffix("\n")
        if query == "quit":
            return EXIT_OK
        result = executor.run_result(query)
        if result.ok:
            print(f"answer: {upstream_str(result.value)}", file=out, flush=True)
        else:
            _print_error(result.error, err)
