"""A graph whose nodes use services, or one run with ``--serve`` (or a ``server`` resource): the graph runner as a
service of the project's units, started through ``services.start`` like every other service.

- ``SERVICE-graph``: ``runtime.graph serve`` (JSON API, SSE node events, an OpenAI-shaped chat route), on the
  service's network, with the host's CA and proxies (HTTP nodes, online models), API keys as files on stdin;
- ``SERVICE-sandbox``: the Code sandbox worker, in its own container with no network at all, read-only, no
  secrets; the runner reaches it through a unix socket in a folder both mount;
- ``SERVICE-model-ID``: each LocalLLM with a real model, the unit ``lazyllm deploy`` describes
  (``deploy.model_server``); upstream's ``deploy_method: dummy`` is answered by the runner itself.
One-shot (``--input``/``--args``) and the REPL start the service, send the runs, and remove it; ``--serve`` leaves
it up (``lazyllm ps``, ``logs``, ``stop``).
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from functools import partial
from pathlib import Path

from ..errors import UsageError
from ..launch.spec import HealthCheck, LaunchSpec, MountSpec, PortSpec, scratch_mount, service_labels
from ..launch.unit import Service, Unit
from ..paths import service_files_dir
from ..requests import DeployModelRequest, RunRequest
from . import online
from .deploy import model_server
from .graph import GRAPH_TARGET, PROMPT, RUNNER, runner_plan
from .start import gpu_mode, service_name, start
from .trust import with_host_trust, with_secret_env

PORT = 8000
SOCKET_DIR = "/run/lazyllm-sandbox"
SOCKET = f"{SOCKET_DIR}/sandbox.sock"
SERVICES_FILE = "graph-services.json"
KEY_DIR = "/tmp/lazyllm/keys"
SUPPORTED = ("model", "embedding", "http", "resource", "agent", "llm_task")
RETRIEVAL = ("Document", "Retriever")
SERVED_KINDS = (*RETRIEVAL, "Reranker", "MCPTool")
DEFAULT_EMBED = "all-MiniLM-L6-v2"
FRAMEWORKS = {"auto": "auto", "vllm": "vllm", "lightllm": "lightllm", "lmdeploy": "lmdeploy", "infinity": "infinity"}


def _local_or_online(need) -> str | None:
    """LocalLLM | OnlineLLM | LocalEmbedding | OnlineEmbedding (LLM and Embedding say which by their ``type``)."""
    kind, args = need.kind, need.args
    if kind in ("LLM", "Embedding"):
        kind = {"local": f"Local{kind}", "online": f"Online{kind}"}.get(str((args.get("kw") or args).get("type", "")))
    return kind if kind in ("LocalLLM", "OnlineLLM", "LocalEmbedding", "OnlineEmbedding") else None


def check_supported(needs) -> None:
    """Kinds whose services this version does not start yet: refused before anything starts, with their paths."""
    missing = [n for n in needs if n.category not in SUPPORTED and n.kind not in SERVED_KINDS]
    if missing:
        where = ", ".join(f"{n.kind} at {n.path}" for n in missing)
        raise UsageError(f"this graph needs services lazyllm-images does not start for graphs yet: {where}",
                         "supported today: pure and Code nodes, LocalLLM/OnlineLLM/LLM/SharedModel, HTTP (README, "
                         "'run WORKFLOW.json')")


def _reuse(base_model: str, framework: str) -> tuple[dict, str] | None:
    """A model server already running for this model (``lazyllm deploy``, another graph), healthy and of the asked
    framework: its config and its service's network, which the runner joins."""
    from ..backends.state import running_model
    from ..frameworks import get
    from .models import resolve_model
    found = running_model(resolve_model(base_model).served_name)
    if found is None or (framework != "auto" and found["framework"] != framework):
        return None
    sys.stderr.write(f"note: the LocalLLM {base_model} is served by the running service {found['service']}: "
                     "the graph uses it\n")
    api = get(found["framework"]).api_base if found["framework"] else "/v1"
    config = {"kind": "openai", "url": f"http://{found['container']}:{found['port']}{api}",
              "model": resolve_model(base_model).served_name}
    return config, f"{found['service']}-net"


def _model_units(request: RunRequest, name: str, needs) -> tuple[dict, list[Unit], dict, tuple[str, ...]]:
    """(services.json models, their units, key files for the runner's stdin); models served by a running service
    are reused (``networks``: the ones the runner joins)."""
    models, units, keys, networks = {}, [], {}, []
    for need in needs:
        kind = _local_or_online(need)
        args = (need.args.get("kw") if need.kind in ("LLM", "Embedding") else None) or need.args
        if kind in ("LocalLLM", "LocalEmbedding"):
            embedding = kind == "LocalEmbedding"
            method = str(args.get("deploy_method") or "auto")
            if method == "dummy" and not embedding:
                models[need.id] = {"kind": "dummy"}
                continue
            if method not in FRAMEWORKS:
                raise UsageError(f"{kind} at {need.path}: deploy_method {method!r} is not served here",
                                 f"use one of: {', '.join(FRAMEWORKS)}" + ("" if embedding else ", dummy"))
            framework = "embedding" if embedding and method == "auto" else FRAMEWORKS[method]
            reused = None if request.launch.dry_run or embedding else _reuse(str(args.get("base_model")), framework)
            if reused is not None:
                models[need.id], net = reused
                networks.append(net)
                continue
            sub = DeployModelRequest(model=str(args.get("base_model")), framework=framework,
                                     launch=replace(request.launch, name=name, port=None,
                                                    gpus="none" if embedding else request.launch.gpus),
                                     build=request.build)
            m = model_server(sub, name, role=f"{'embed' if embedding else 'model'}-{need.id}".lower())
            units.append(m.unit)
            models[need.id] = {"kind": "openai", "url": f"{m.internal_url}{m.server.api_base}",
                               "model": m.server.served_name}
        elif kind == "OnlineEmbedding":
            src = online.source(str(args.get("source") or "openai").lower())
            keys[f"{KEY_DIR}/{need.id}"] = args.get("api_key") or online.api_key(src)
            models[need.id] = {"kind": "openai", "url": args.get("base_url") or online.base_url(src),
                               "model": args.get("base_model") or "text-embedding-3-small",
                               "key_file": f"{KEY_DIR}/{need.id}"}
        elif kind == "OnlineLLM":
            src = online.source(str(args.get("source") or "openai").lower())
            key = args.get("api_key") or online.api_key(src)
            keys[f"{KEY_DIR}/{need.id}"] = key
            models[need.id] = {"kind": "openai", "url": args.get("base_url") or online.base_url(src),
                               "model": args.get("base_model") or online.model(src, None),
                               "key_file": f"{KEY_DIR}/{need.id}"}
    return models, units, keys, tuple(networks)


def _dataset(path: str, graph_file: Path, where: str) -> Path:
    folder = Path(path).expanduser()
    folder = folder if folder.is_absolute() else graph_file.parent / folder
    if not folder.is_dir():
        raise UsageError(f"Document at {where}: dataset_path {path!r} is not a folder ({folder})",
                         "give the folder of the documents, absolute or relative to the graph file")
    return folder.resolve()


def _document_units(request: RunRequest, name: str, needs, graph_file: Path) -> tuple[dict, list[Unit]]:
    """Each Document: the RAG service over its dataset_path (read-only) with an embedding server (its ``embed``
    resource's model, else the packaged all-MiniLM-L6-v2); its Retrievers query it."""
    from .run import retrieval_spec
    by_id = {n.id: n for n in needs}
    documents, units = {}, []
    for need in needs:
        if need.kind != "Document":
            continue
        folder = _dataset(str(need.args.get("dataset_path")), graph_file, need.path)
        embed_ref = by_id.get(str(need.args.get("embed"))) if need.args.get("embed") else None
        model = ((embed_ref.args.get("kw") or embed_ref.args) if embed_ref else {}).get("base_model") or DEFAULT_EMBED
        sub = DeployModelRequest(model=str(model), framework="embedding", build=request.build,
                                 launch=replace(request.launch, name=name, port=None, gpus="none"))
        embed = model_server(sub, name, role=f"docembed-{need.id}".lower())
        spec = retrieval_spec(name, folder, embed, request.launch.host, None, role=f"doc-{need.id}".lower())
        units += [embed.unit, Unit(spec, stack=embed.plan)]
        documents[need.id] = {"url": f"http://{spec.name}:{spec.ports[0].container_port}/v1"}
    return documents, units


def _reranker_units(request: RunRequest, name: str, needs) -> tuple[dict, list[Unit]]:
    """Each Reranker: the project's embedding server on its cross-encoder (``arguments.model``: a model name, a
    folder or a hub id, or the id of a resource naming one)."""
    by_id = {n.id: n for n in needs}
    models, units = {}, []
    for need in needs:
        if need.kind != "Reranker":
            continue
        ref = str((need.args.get("arguments") or {}).get("model") or "")
        if not ref:
            raise UsageError(f"Reranker at {need.path} names no model", "set arguments.model to a cross-encoder")
        if ref in by_id:
            ref = str((by_id[ref].args.get("kw") or by_id[ref].args).get("base_model") or ref)
        sub = DeployModelRequest(model=ref, framework="embedding", build=request.build,
                                 launch=replace(request.launch, name=name, port=None, gpus="none"))
        m = model_server(sub, name, role=f"rerank-{need.id}".lower())
        if m.kind != "rerank":
            raise UsageError(f"Reranker at {need.path}: {ref} is not a cross-encoder",
                             "give a reranker model: config.json names a *ForSequenceClassification with one label")
        units.append(m.unit)
        models[need.id] = {"kind": "openai", "url": f"{m.internal_url}{m.server.api_base}",
                           "model": m.server.served_name}
    return models, units


def _mcp_units(request: RunRequest, name: str, needs) -> tuple[dict, list[Unit]]:
    """Each MCPTool: a URL is called as it is; a command runs behind the project's MCP bridge (``deploy
    mcp_server``'s unit) on the service's network. ``env`` values reach the server on stdin only."""
    import shlex
    from ..requests import McpServerRequest
    from .mcp_container import secrets as bridge_secrets
    from .mcp_container import mcp_spec
    tools, units, plan = {}, [], None
    for need in needs:
        if need.kind != "MCPTool":
            continue
        target = need.args.get("command_or_url")
        timeout = float(need.args.get("timeout") or 5)
        if isinstance(target, str) and target.startswith(("http://", "https://")):
            tools[need.id] = {"url": target, "headers": need.args.get("headers") or {}, "timeout": timeout}
            continue
        argv = shlex.split(target) if isinstance(target, str) else [str(a) for a in target or []]
        if not argv:
            raise UsageError(f"MCPTool at {need.path} has no command_or_url", "give a server command or a URL")
        argv += [str(a) for a in need.args.get("args") or []]
        if plan is None:
            from ..host import host_facts
            from ..resolve import resolve
            plan = resolve(("mcp-bridge",), request.build, host=host_facts())
        unit_name = f"mcp-{need.id}".lower()
        container = f"{name}-{unit_name}"
        bridge = McpServerRequest(command=argv[0], args=tuple(argv[1:]), sse_host="127.0.0.1",
                                  env=tuple((str(k), str(v)) for k, v in (need.args.get("env") or {}).items()),
                                  allowed_hosts=(f"{container}:8000",), build=request.build)
        spec, proxy = mcp_spec(bridge, name, plan.top.ref, unit=unit_name)
        units.append(Unit(spec, stack=plan, secrets=bridge_secrets(bridge, spec, proxy), wrap=False))
        tools[need.id] = {"url": f"http://{container}:8000/mcp", "headers": {}, "timeout": timeout}
    return tools, units


def sandbox_unit(name: str, plan) -> Unit:
    folder = service_files_dir(name) / "sandbox"
    spec = LaunchSpec(
        name=f"{name}-sandbox", image=plan.top.ref, role="workflow",
        command=("python3", "-m", "lazyllm_images.runtime.graph.sandbox", "--socket", SOCKET, "--scratch",
                 "/tmp/scratch", "--quiet"),
        env={"HOME": "/tmp", "PYTHONUNBUFFERED": "1"}, network="none", read_only_rootfs=True,
        mounts=(MountSpec("bind", SOCKET_DIR, str(folder), purpose="socket"), scratch_mount()),
        labels=service_labels(name, "sandbox"))
    return Unit(spec, stack=plan, ready_path=str(folder / "sandbox.sock"))


def runner_unit(request: RunRequest, name: str, plan, graph_file: Path, models: dict, keys: dict,
                sandbox: bool, documents: dict | None = None, tools: dict | None = None) -> Unit:
    config = {"models": models, "documents": documents or {}, "mcp": tools or {}, "http": True}
    command = RUNNER + ("serve", GRAPH_TARGET, "--host", "0.0.0.0", "--port", str(PORT),
                        "--services", f"/graph/{SERVICES_FILE}")
    mounts = [MountSpec("bind", GRAPH_TARGET, str(graph_file), read_only=True, purpose="graph"),
              MountSpec("bind", f"/graph/{SERVICES_FILE}", str(service_files_dir(name) / SERVICES_FILE),
                        read_only=True, purpose="config"), scratch_mount()]
    if sandbox:
        command += ("--sandbox", SOCKET)
        mounts.append(MountSpec("bind", SOCKET_DIR, str(service_files_dir(name) / "sandbox"), purpose="socket"))
    if request.launch.auth_token:
        command += ("--auth-token-file", "/tmp/lazyllm/auth-token")
        keys = {**keys, "/tmp/lazyllm/auth-token": request.launch.auth_token}
    spec = LaunchSpec(
        name=f"{name}-graph", image=plan.top.ref, command=command, role="workflow",
        env={"HOME": "/tmp", "PYTHONUNBUFFERED": "1"}, network=f"{name}-net", read_only_rootfs=True,
        ports=(PortSpec("api", PORT, request.launch.port, request.launch.host),),
        mounts=tuple(mounts), healthcheck=HealthCheck("/healthz", PORT, start_period_s=60),
        labels=service_labels(name, "workflow", model="graph", graph=graph_file.name))
    spec, proxy = with_host_trust(spec)
    secrets = with_secret_env({"files": keys} if keys else None, proxy)
    return Unit(spec, stack=plan, secrets=secrets, files=((SERVICES_FILE, json.dumps(config, indent=2)),),
                urls=(("graph", "/v1"),))


def describe(request: RunRequest, graph, graph_file: Path) -> Service:
    needs = graph.services()
    check_supported(needs)
    name = service_name(request.launch, f"lazyllm-graph-{graph_file.stem}".lower()[:40].rstrip("-_."))
    plan = runner_plan(request)
    models, units, keys, networks = _model_units(request, name, needs)
    documents, doc_units = _document_units(request, name, needs, graph_file)
    tools, mcp_units = _mcp_units(request, name, needs)
    rerankers, rerank_units = _reranker_units(request, name, needs)
    models.update(rerankers)
    units += doc_units + rerank_units + mcp_units
    has_code = any(n.code for n in graph.nodes_by_id.values())
    if has_code:
        units.append(sandbox_unit(name, plan))
    runner = runner_unit(request, name, plan, graph_file, models, keys, has_code, documents, tools)
    runner = replace(runner, spec=replace(runner.spec, extra_networks=networks))
    units.append(runner)
    primary = len(units) - 1
    if graph.root.web is not None:                  # upstream's web resource: the chat page over the graph
        from .chat import AUTH_TOKEN_FILE, chat_spec, file_secrets
        token = request.launch.auth_token
        chat = chat_spec(name, plan.top.ref, f"http://{runner.spec.name}:{PORT}", "graph",
                         host_ip=request.launch.host, network=f"{name}-net", depends_on=(runner.spec.name,),
                         title=str(graph.root.web.args.get("title") or "LazyLLM graph"), api_key=bool(token),
                         auth=bool(token))
        units.append(Unit(chat, stack=plan, urls=(("chat", "/"),),
                          secrets=file_secrets(("/tmp/lazyllm/api-key", token), (AUTH_TOKEN_FILE, token))))
    return Service(name, tuple(units), gpu_mode(units, request.launch.engine_free), primary=primary)


def serves(request: RunRequest, graph, argv: tuple[str, ...]) -> bool:
    """A service that stays up: --serve, or a graph with a ``server`` (or ``web``) resource run without inputs."""
    return request.graph_serve or (not argv and (graph.root.server is not None or graph.root.web is not None))


def run(request: RunRequest, graph, graph_file: Path, argv: tuple[str, ...]) -> None:
    service = describe(request, graph, graph_file)
    if serves(request, graph, argv) or request.launch.dry_run or request.launch.renders:
        start(service, request.launch, request.build, partial(print_summary, service))
        return
    from ..backends import docker as backend
    from ..build.runner import build_plan
    from .start import check_gpus
    for plan in service.stacks():
        build_plan(plan, request.build, write_lock=False, quiet=True)
    check_gpus(service)
    running = backend.up(service, request.launch.timeout)
    try:
        url = running.urls["graph"]
        if argv:
            raise SystemExit(run_once(url, request, argv))
        repl(url, request)
    finally:
        backend.remove(running.containers, service.name)


def _post(url: str, body: dict, request: RunRequest) -> dict:
    import httpx
    headers = {"Authorization": f"Bearer {request.launch.auth_token}"} if request.launch.auth_token else {}
    r = httpx.post(f"{url}/run", json=body, headers=headers, timeout=request.launch.timeout)
    return r.json()


def _traced(url: str, body: dict, request: RunRequest) -> dict:
    """A run with its events (``--trace``): each node's timing to stderr, as the one-container run prints them."""
    import httpx
    from ..runtime.graph.cli import trace_printer
    headers = {"Authorization": f"Bearer {request.launch.auth_token}"} if request.launch.auth_token else {}
    show, final = trace_printer(sys.stderr), {}
    with httpx.stream("POST", f"{url}/run", json={**body, "stream": True}, headers=headers,
                      timeout=request.launch.timeout) as r:
        for line in r.iter_lines():
            if line.startswith("data: {"):
                event = json.loads(line[6:])
                show(event)
                final = event if event["type"] == "run_finished" else final
    error = final.get("error") or {}
    return {"ok": final.get("ok"), "result": final.get("result"), "error": error.get("message"),
            "hint": error.get("hint")}


def run_once(url: str, request: RunRequest, argv: tuple[str, ...]) -> int:
    from ..runtime.graph.values import parse_cli_input
    body = {"args": json.loads(argv[1])} if argv[0] == "--args" else {"input": parse_cli_input(argv[1])}
    answer = _traced(url, body, request) if request.graph_trace else _post(url, body, request)
    if answer.get("ok"):
        print(json.dumps(answer["result"], ensure_ascii=False), flush=True)
        return 0
    sys.stderr.write(f"error: {answer.get('error')}\n" + (f"hint: {answer['hint']}\n" if answer.get("hint") else ""))
    return 1


def repl(url: str, request: RunRequest) -> None:
    from ..runtime.graph.values import upstream_str
    while True:
        sys.stdout.write(PROMPT)
        sys.stdout.flush()
        line = sys.stdin.readline()
        if not line or line.removesuffix("\n") == "quit":
            sys.stdout.write("\n" if not line else "")
            return
        answer = _post(url, {"input": line.removesuffix("\n")}, request)
        if answer.get("ok"):
            print(f"answer: {upstream_str(answer['result'])}", flush=True)
        else:
            sys.stderr.write(f"error: {answer.get('error')}\n")


def print_summary(service: Service, urls: dict[str, str]) -> None:
    print(f"service:   {service.name}")
    if "chat" in urls:
        print(f"chat page: {urls['chat']}")
    print(f"api:       {urls['graph']}/run   (POST {{\"input\": ...}}; \"stream\": true for node events)")
    print(f"chat:      {urls['graph']}/chat/completions (OpenAI shape)")
    print(f"try:       curl {urls['graph']}/run -H 'Content-Type: application/json' -d '{{\"input\": \"hello\"}}'")
    print(f"manage:    lazyllm ps | lazyllm logs {service.name} | lazyllm stop {service.name}")
