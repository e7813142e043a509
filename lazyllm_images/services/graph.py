"""``lazyllm run WORKFLOW.json``: upstream LazyLLM's JSON graph, validated here before anything starts, then run
from the project's runtime image.

A graph of pure and Code nodes only needs no service: each run is one container with no network at all, a
read-only root and the Code sandbox inside (``runtime.graph``: every Code call a forked child with limits). That is
the one-shot run (``--input``/``--args``: one line of JSON on stdout) and upstream's REPL (one run per line). A
graph whose nodes call models, retrieval or tools runs as a service (``services.graph_service``).
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from pathlib import Path

from ..errors import UsageError
from ..launch.spec import LaunchSpec, MountSpec, scratch_mount, service_labels
from ..launch.unit import Unit
from ..requests import RunRequest

RUNNER = ("python3", "-m", "lazyllm_images.runtime.graph")
GRAPH_TARGET = "/graph/graph.json"
PROMPT = 'query(enter "quit" to exit): '


def load(path: str):
    """The validated graph (``runtime.graph.spec.LoadedGraph``). Every problem is printed with its JSON path; the
    last one is raised as the usage error (exit 2). Warnings (upstream's quirks kept) go to stderr."""
    from ..runtime.graph.load import GraphFileError, load_graph, read_graph_file
    try:
        data = read_graph_file(path)
    except GraphFileError as exc:
        raise UsageError(str(exc), exc.hint or "give the path of a workflow JSON file") from None
    graph, report = load_graph(data)
    for problem in report.warnings:
        sys.stderr.write(f"warning: {problem.message}\n")
    if graph is None:
        *rest, last = report.errors
        for problem in rest:
            sys.stderr.write(f"error: {problem.message}\n" + (f"hint: {problem.hint}\n" if problem.hint else ""))
        raise UsageError(last.message, last.hint or "fix the graph; 'lazyllm run G.json --dry-run' validates it")
    return graph


def inputs_argv(request: RunRequest) -> tuple[str, ...]:
    """The runner's ``--input``/``--args``, checked here (a usage error before anything starts)."""
    if request.graph_input is not None and request.graph_args is not None:
        raise UsageError("--input and --args exclude each other",
                         "give one input with --input VALUE, or several with --args '[1, \"two\"]'")
    if request.graph_args is not None:
        try:
            value = json.loads(request.graph_args)
        except ValueError as exc:
            raise UsageError(f"--args is not JSON ({exc})", "write a JSON array, e.g. --args '[1, \"two\"]'") from None
        if not isinstance(value, list):
            raise UsageError("--args must be a JSON array of inputs", "e.g. --args '[1, \"two\"]' ('[]' for none)")
        return ("--args", request.graph_args)
    if request.graph_input is not None:
        return ("--input", request.graph_input)
    return ()


def runner_plan(request: RunRequest):
    from ..host import host_facts
    from ..resolve import resolve
    return resolve(("chat",), request.build, host=host_facts())


def isolated_unit(request: RunRequest, plan, graph_file: Path, argv: tuple[str, ...]) -> Unit:
    """One run of a service-free graph: no network, read-only root, unprivileged, the sandbox inside."""
    name = request.launch.name or "lazyllm-graph"
    spec = LaunchSpec(
        name=f"{name}-run-{uuid.uuid4().hex[:8]}", image=plan.top.ref, role="workflow",
        command=RUNNER + ("run", GRAPH_TARGET, *argv, *(("--trace",) if request.graph_trace else ())),
        env={"HOME": "/tmp", "PYTHONUNBUFFERED": "1"}, network="none", read_only_rootfs=True,
        mounts=(MountSpec("bind", GRAPH_TARGET, str(graph_file), read_only=True, purpose="graph"), scratch_mount()),
        labels=service_labels(name, "workflow", graph=graph_file.name))
    return Unit(spec, stack=plan, job=True)


def run(request: RunRequest) -> None:
    graph_file = Path(request.workflow).expanduser().resolve()
    graph = load(str(graph_file))
    argv = inputs_argv(request)
    needs = graph.services()
    if argv and request.launch.renders:
        raise UsageError(f"--target {request.launch.target} writes the graph as a service: inputs are sent to it "
                         "once it runs", "drop the inputs; call the service's /v1 once 'lazyllm stack up' printed it")
    if needs or request.launch.renders or request.graph_serve or graph.root.server is not None or graph.root.web is not None:
        from . import graph_service
        graph_service.run(request, graph, graph_file, argv)
        return
    plan = runner_plan(request)
    if request.launch.dry_run:
        print_isolated_dry_run(request, graph, plan, graph_file, argv)
        return
    from ..build.runner import build_plan
    build_plan(plan, request.build, write_lock=False, quiet=True)
    if argv:
        raise SystemExit(run_once(request, plan, graph_file, argv))
    repl(request, plan, graph_file)


def run_once(request: RunRequest, plan, graph_file: Path, argv: tuple[str, ...]) -> int:
    """One run in its own container; its output as it printed it; its exit code (1: the graph failed)."""
    from ..backends.jobs import run_job
    result = run_job(isolated_unit(request, plan, graph_file, argv), request.launch.timeout)
    sys.stderr.write(result.stderr)
    sys.stdout.write(result.stdout)
    sys.stdout.flush()
    return result.code


def repl(request: RunRequest, plan, graph_file: Path) -> None:
    """Upstream's REPL: each line is one run (the graph's input, as a string); ``quit`` or end of input ends it."""
    while True:
        sys.stdout.write(PROMPT)
        sys.stdout.flush()
        line = sys.stdin.readline()
        if not line:
            sys.stdout.write("\n")
            return
        query = line.removesuffix("\n")
        if query == "quit":
            return
        from ..backends.jobs import run_job
        result = run_job(isolated_unit(request, plan, graph_file, ("--args", json.dumps([query]))),
                         request.launch.timeout)
        sys.stderr.write(result.stderr)
        if result.code == 0:
            from ..runtime.graph.values import upstream_str
            value = json.loads(result.stdout.strip().splitlines()[-1])
            print(f"answer: {upstream_str(value)}", flush=True)


def print_isolated_dry_run(request: RunRequest, graph, plan, graph_file: Path, argv: tuple[str, ...]) -> None:
    from ..launch.docker import dry_run_text
    nodes = graph.nodes_by_id
    code = sum(1 for n in nodes.values() if n.code)
    print(f"graph: {graph_file} ({len(nodes)} nodes, {code} Code; no model, retrieval or tool services)")
    print(f"image: {plan.top.ref}  (stack {plan.stack_tag})")
    print("# each run: one container, no network, read-only root, the Code sandbox inside")
    print(dry_run_text(isolated_unit(request, plan, graph_file, argv or ("--input", "VALUE")).spec))
    if os.environ.get("LAZYLLM_DEBUG"):
        print(json.dumps(graph.services_summary(), indent=2, default=str))
