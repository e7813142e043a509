"""``lazyllm run chatbot`` and ``lazyllm run rag``: the chat page and the RAG service, described as units and
started through ``services.start`` (the model, embedding and reranker servers are ``deploy.model_server``)."""

from __future__ import annotations

import hashlib
import sys
from dataclasses import replace
from functools import partial
from pathlib import Path

from ..errors import NotImplementedYet, UsageError
from ..launch.spec import HealthCheck, LaunchSpec, MountSpec, PortSpec, scratch_mount, service_labels
from ..launch.unit import Service, Unit
from ..requests import DeployModelRequest, RunRequest
from . import online
from .chat import API_KEY_FILE, AUTH_TOKEN_FILE, chat_spec, file_secrets, warn_exposed
from .deploy import ModelServer, chat_unit, model_server
from .start import gpu_mode, service_name, start
from .trust import with_host_trust, with_secret_env

RAG_PORT = 8000
RAG_MODEL = "lazyllm-rag"
DEFAULT_EMBED = "all-MiniLM-L6-v2"


def _model(request: RunRequest, service: str) -> ModelServer:
    """The service's LLM server (``--model`` with ``--framework``), as ``deploy`` describes it, on no host port."""
    sub = DeployModelRequest(model=request.model, framework=request.framework or "auto",
                             launch=replace(request.launch, name=service, port=None), build=request.build)
    m = model_server(sub, service)
    return replace(m, unit=replace(m.unit, urls=(("model", m.server.api_base),)))


def _encoder(request: RunRequest, service: str, model: str, role: str) -> ModelServer:
    """The embedding or reranker server (the project's embedding server), named ``SERVICE-ROLE``: on the CPU
    unless ``--embed-gpus`` says otherwise (the LLM keeps the GPUs it asked for)."""
    sub = DeployModelRequest(model=model, framework="embedding", build=request.build,
                             launch=replace(request.launch, name=service, port=None,
                                            gpus=request.embed_gpus or "none"))
    m = model_server(sub, service, role)
    return replace(m, unit=replace(m.unit, urls=((role, m.server.api_base),)))


def _online(request: RunRequest) -> tuple[online.Source, str, str]:
    src = online.source(request.source)
    return src, online.api_key(src), online.model(src, request.model)


def _chat_image(request: RunRequest):
    from ..host import host_facts
    from ..resolve import resolve
    return resolve(("chat",), request.build, host=host_facts())


def _service(name: str, units: list[Unit], primary: int, dry_run: bool) -> Service:
    return Service(name, tuple(units), gpu_mode(units, dry_run), primary)


def chatbot(request: RunRequest) -> Service:
    if not request.model and not request.source:
        raise UsageError("run chatbot needs --model (with --framework) or --source",
                         "e.g. 'lazyllm run chatbot --model ./my-llm --framework vllm' or "
                         "'lazyllm run chatbot --source openai'")
    name = service_name(request.launch, "lazyllm-chatbot")
    token = request.launch.auth_token
    if request.source:
        src, key, model = _online(request)
        plan = _chat_image(request)
        spec = chat_spec(name, plan.top.ref, online.base_url(src), model, host_ip=request.launch.host,
                         host_port=request.launch.port, network=f"{name}-net", api_key=True,
                         title=f"{model} ({src.name})", auth=bool(token))
        spec, proxy = with_host_trust(spec)
        secrets = with_secret_env(file_secrets((API_KEY_FILE, key), (AUTH_TOKEN_FILE, token)), proxy)
        return _service(name, [Unit(spec, stack=plan, secrets=secrets, urls=(("chat", "/"),))], 0,
                        request.launch.engine_free)
    m = _model(request, name)
    chat = chat_unit(m, name, request.launch, host_port=request.launch.port)
    return _service(name, [m.unit, chat], 1, request.launch.engine_free)


def _documents(path: str) -> Path:
    folder = Path(path).expanduser().resolve()
    if not folder.is_dir():
        raise UsageError(f"documents folder {folder} does not exist", "give an existing folder: --documents DIR")
    print(f"documents: {folder}")
    if not any(folder.iterdir()):
        sys.stderr.write(f"warning: {folder} is empty: the service starts and indexes files as they appear\n")
    return folder


def index_volume(folder: Path, embed_model: str) -> str:
    digest = hashlib.sha256(f"{folder}\0{embed_model}".encode()).hexdigest()[:12]
    return f"lazyllm-rag-index-{digest}"


def _reranker(request: RunRequest, service: str) -> tuple[Unit, list[str]]:
    """``--rerank-model``: its server's unit, and the RAG service's arguments for it."""
    m = _encoder(request, service, request.rerank_model, "rerank")
    if m.kind != "rerank":
        from ..frameworks.auto import KIND_WORDS
        raise UsageError(f"--rerank-model {request.rerank_model} is not a reranker "
                         f"(it looks like {KIND_WORDS[m.kind]})",
                         "give a cross-encoder: config.json names a *ForSequenceClassification with one label")
    return m.unit, ["--rerank-url", f"{m.internal_url}/v1", "--rerank-model", m.server.served_name]


def _generator(request: RunRequest, service: str) -> tuple[list[Unit], list[str], dict | None]:
    """Where answers come from: an online API (its key on stdin), a model server of the service, or nothing
    (retrieval only)."""
    if request.source:
        src, key, model = _online(request)
        args = ["--llm-url", online.base_url(src), "--llm-model", model, "--llm-key-file", API_KEY_FILE]
        return [], args, file_secrets((API_KEY_FILE, key))
    if request.model:
        m = _model(request, service)
        return [m.unit], ["--llm-url", m.internal_url, "--llm-model", m.server.served_name], None
    return [], [], None


def retrieval_spec(service: str, folder: Path, embed: ModelServer, host: str, port: int | None,
                   extra: tuple[str, ...] = (), role: str = "rag") -> LaunchSpec:
    """The RAG service over ``folder`` (read-only) with its index in a volume, named ``SERVICE-ROLE``: ``run rag``'s
    and a graph's Document (whose Retrievers query it)."""
    command = ("python3", "-m", "lazyllm_images.runtime.rag", "--documents", "/docs",
               "--index", "/var/lib/lazyllm/index", "--embed-url", embed.internal_url,
               "--embed-model", embed.server.served_name, "--served-model-name", RAG_MODEL,
               "--host", "0.0.0.0", "--port", str(RAG_PORT), *extra)
    return LaunchSpec(
        name=f"{service}-{role}", image=embed.plan.top.ref, command=command, role="rag",
        env={"HOME": "/tmp", "PYTHONUNBUFFERED": "1"},
        ports=(PortSpec("rag", RAG_PORT, port, host),),
        mounts=(MountSpec("bind", "/docs", str(folder), read_only=True, purpose="documents"),
                MountSpec("volume", "/var/lib/lazyllm", index_volume(folder, embed.server.served_name),
                          purpose="index"), scratch_mount()),
        labels=service_labels(service, "rag", model=RAG_MODEL, documents=str(folder)),
        healthcheck=HealthCheck("/healthz", RAG_PORT), network=f"{service}-net", read_only_rootfs=True)


def rag(request: RunRequest) -> Service:
    folder = _documents(request.documents)
    name = service_name(request.launch, "lazyllm-rag")
    embed = _encoder(request, name, request.embed_model or DEFAULT_EMBED, "embed")
    units = [embed.unit]
    rerank_args: list[str] = []
    if request.rerank_model:
        unit, rerank_args = _reranker(request, name)
        units.append(unit)
    llm_units, llm_args, rag_secrets = _generator(request, name)
    units += llm_units
    token = request.launch.auth_token
    rag_spec = retrieval_spec(name, folder, embed, request.launch.host, request.launch.port,
                              (*llm_args, *rerank_args, *(("--auth-token-file", AUTH_TOKEN_FILE) if token else ())))
    if token:                             # its clients (the chat page too) show this token
        rag_secrets = {"files": {**(rag_secrets or {}).get("files", {}), AUTH_TOKEN_FILE: token}}
    if request.source:
        rag_spec, proxy = with_host_trust(rag_spec)
        rag_secrets = with_secret_env(rag_secrets, proxy)
    units.append(Unit(rag_spec, stack=embed.plan, secrets=rag_secrets, urls=(("rag", "/v1"),)))
    chat = chat_spec(name, embed.plan.top.ref, f"http://{rag_spec.name}:{RAG_PORT}", RAG_MODEL,
                     host_ip=request.launch.host, network=f"{name}-net", title="LazyLLM RAG",
                     api_key=bool(token), auth=bool(token))
    units.append(Unit(chat, stack=embed.plan, secrets=file_secrets((API_KEY_FILE, token), (AUTH_TOKEN_FILE, token)),
                      urls=(("chat", "/"),)))
    return _service(name, units, len(units) - 2, request.launch.engine_free)


def run(request: RunRequest) -> None:
    if request.target == "workflow":
        from . import graph
        graph.run(request)
        return
    if request.target not in ("chatbot", "rag"):
        raise NotImplementedYet(f"lazyllm run {request.target}")
    service = chatbot(request) if request.target == "chatbot" else rag(request)
    if not request.launch.dry_run:
        what = "the chat page" if request.target == "chatbot" else "the RAG service and its chat page"
        warn_exposed(what, request.launch.host, request.launch.auth_token, "use it")
    start(service, request.launch, request.build, partial(print_summary, service, request))


def print_summary(service: Service, request: RunRequest, urls: dict[str, str]) -> None:
    print(f"service:   {service.name}")
    for key, value in urls.items():
        print(f"{key + ':':<10} {value}")
    if request.target == "rag":
        mode = "retrieval and answers" if (request.model or request.source) else \
            "retrieval-only (no --model or --source: answers are null, sources are filled)"
        print(f"mode:      {mode}")
        print(f"try:       curl {urls['rag']}/query -H 'Content-Type: application/json' "
              "-d '{\"query\": \"what is this about?\", \"top_k\": 3}'")
    if request.launch.auth_token:
        print("token:     the page asks for the --auth-token once; API clients send 'Authorization: Bearer TOKEN'")
    print(f"manage:    lazyllm ps | lazyllm logs {service.name} | lazyllm stop {service.name}")
