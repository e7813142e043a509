"""``lazyllm run chatbot`` and ``lazyllm run rag``: the chat page and the RAG service, from images."""

from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

from ..errors import NotImplementedYet, UsageError
from ..launch.spec import HealthCheck, LaunchSpec, MountSpec, PortSpec, scratch_mount, service_labels
from ..requests import DeployModelRequest, RunRequest
from . import launcher, online
from .chat import API_KEY_FILE, api_key_secrets, chat_spec
from .deploy import model_unit, prepare

RAG_PORT = 8000
RAG_MODEL = "lazyllm-rag"
DEFAULT_EMBED = "all-MiniLM-L6-v2"


@dataclass
class Service:
    name: str
    units: list = field(default_factory=list)          # launcher.Unit, in start order
    plans: list = field(default_factory=list)          # plans to build (install) before launching
    gpu_mode: str = "runtime"

    def stacks(self) -> list:
        """The plans to build, each stack once (two containers may share one)."""
        return list({p.top.ref: p for p in self.plans}.values())


def _service_name(request: RunRequest, default: str) -> str:
    if request.launch.dry_run or request.launch.compose:
        return request.launch.name or default
    return launcher.unique_service_name(request.launch.name or default, bool(request.launch.name))


def _model_units(request: RunRequest, service: str, chat: bool = False):
    """A model server of the service (``--model`` with ``--framework``), as ``deploy`` would launch it."""
    sub = DeployModelRequest(model=request.model, framework=request.framework or "auto", chat=chat,
                             launch=replace(request.launch, name=service), build=request.build)
    return prepare(sub, service=service)


def _online(request: RunRequest) -> tuple[online.Source, str, str]:
    src = online.source(request.source)
    return src, online.api_key(src), online.model(src, request.model)


def _chat_image(request: RunRequest):
    from ..host import host_facts
    from ..resolve import resolve
    return resolve(("chat",), request.build, host=host_facts())


def chatbot(request: RunRequest) -> Service:
    if not request.model and not request.source:
        raise UsageError("run chatbot needs --model (with --framework) or --source",
                         "e.g. 'lazyllm run chatbot --model ./my-llm --framework vllm' or "
                         "'lazyllm run chatbot --source openai'")
    service = _service_name(request, "lazyllm-chatbot")
    if request.source:
        src, key, model = _online(request)
        plan = _chat_image(request)
        spec = chat_spec(service, plan.top.ref, online.base_url(src), model, host_ip=request.launch.host,
                         host_port=request.launch.port, network=f"{service}-net", api_key=True,
                         title=f"{model} ({src.name})")
        spec = launcher.with_host_trust(spec)
        return Service(service, [launcher.Unit(spec, api_key_secrets(key))], [plan])
    p = _model_units(request, service, chat=True)
    chat = replace(p.specs[1], ports=(replace(p.specs[1].ports[0], host_port=request.launch.port),))
    model = replace(p.specs[0], ports=(replace(p.specs[0].ports[0], host_port=None),))
    return Service(service, [model_unit(p, model), launcher.Unit(chat)], [p.plan], p.gpu_mode)


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


def _encoder_unit(request: RunRequest, service: str, model: str, role: str):
    """The embedding or reranker server of a RAG service: the project's embedding server, as ``deploy`` would
    launch it, named ``SERVICE-ROLE``."""
    p = prepare(DeployModelRequest(model=model, framework="embedding",
                                   launch=replace(request.launch, name=service, port=None), build=request.build),
                service=service)
    return p, model_unit(p, replace(p.specs[0], name=f"{service}-{role}"))


def _reranker(request: RunRequest, service: str):
    """``--rerank-model``: its server's unit and plan, and the RAG service's arguments for it."""
    p, unit = _encoder_unit(request, service, request.rerank_model, "rerank")
    spec = unit.spec
    if p.kind != "rerank":
        from ..frameworks.auto import KIND_WORDS
        raise UsageError(f"--rerank-model {request.rerank_model} is not a reranker "
                         f"(it looks like {KIND_WORDS[p.kind]})",
                         "give a cross-encoder: config.json names a *ForSequenceClassification with one label")
    args = ["--rerank-url", f"http://{spec.name}:{spec.ports[0].container_port}/v1",
            "--rerank-model", p.server.served_name]
    return unit, p.plan, args


def rag(request: RunRequest) -> Service:
    folder = _documents(request.documents)
    service = _service_name(request, "lazyllm-rag")
    embed, embed_unit = _encoder_unit(request, service, request.embed_model or DEFAULT_EMBED, "embed")
    embed_spec = embed_unit.spec
    units = [embed_unit]
    plans = [embed.plan]
    rerank_args = []
    if request.rerank_model:
        unit, plan, rerank_args = _reranker(request, service)
        units.append(unit)
        plans.append(plan)
    llm_args, rag_secrets = [], None
    if request.source:
        src, key, model = _online(request)
        llm_args = ["--llm-url", online.base_url(src), "--llm-model", model, "--llm-key-file", API_KEY_FILE]
        rag_secrets = api_key_secrets(key)
    elif request.model:
        p = _model_units(request, service)
        model_spec = replace(p.specs[0], ports=(replace(p.specs[0].ports[0], host_port=None),))
        units.append(model_unit(p, model_spec))
        plans.append(p.plan)
        llm_args = ["--llm-url", f"http://{model_spec.name}:{model_spec.ports[0].container_port}",
                    "--llm-model", p.server.served_name]
    volume = index_volume(folder, embed.server.served_name)
    command = ("python3", "-m", "lazyllm_images.runtime.rag", "--documents", "/docs",
               "--index", "/var/lib/lazyllm/index", "--embed-url", f"http://{embed_spec.name}:8000",
               "--embed-model", embed.server.served_name, "--served-model-name", RAG_MODEL,
               "--host", "0.0.0.0", "--port", str(RAG_PORT), *llm_args, *rerank_args)
    rag_spec = LaunchSpec(
        name=f"{service}-rag", image=embed.plan.top.ref, command=command, role="rag",
        env={"HOME": "/tmp", "PYTHONUNBUFFERED": "1"},
        ports=(PortSpec("rag", RAG_PORT, request.launch.port, request.launch.host),),
        mounts=(MountSpec("bind", "/docs", str(folder), read_only=True, purpose="documents"),
                MountSpec("volume", "/var/lib/lazyllm", volume, purpose="index"), scratch_mount()),
        labels=service_labels(service, "rag", model=RAG_MODEL, documents=str(folder)),
        healthcheck=HealthCheck("/healthz", RAG_PORT), network=f"{service}-net", read_only_rootfs=True)
    if request.source:
        rag_spec = launcher.with_host_trust(rag_spec)
    units.append(launcher.Unit(rag_spec, rag_secrets))
    chat = chat_spec(service, embed.plan.top.ref, f"http://{rag_spec.name}:{RAG_PORT}", RAG_MODEL,
                     host_ip=request.launch.host, network=f"{service}-net", title="LazyLLM RAG")
    units.append(launcher.Unit(chat))
    return Service(service, units, plans)


def _urls(service: str, specs: list[LaunchSpec]) -> dict[str, str]:
    """embed / model / rag / chat -> URL (the container name without the service prefix)."""
    out = {}
    for spec in specs:
        path = "/v1" if spec.role in ("model", "rag") else "/"
        out[spec.name.removeprefix(f"{service}-")] = launcher.url(spec.ports[0], path)
    return out


def launch(service: Service, request: RunRequest) -> None:
    from ..build.runner import build_plan
    for plan in service.stacks():
        build_plan(plan, request.build, write_lock=False, quiet=True)
    specs = [launcher.with_ports(u.spec) for u in service.units]
    urls = _urls(service.name, specs)
    primary = next(i for i, s in enumerate(specs) if s.role in ("rag", "chat"))
    specs = launcher.labelled(specs, urls, primary)
    units = [replace(u, spec=s) for s, u in zip(specs, service.units)]
    started = launcher.launch_all(service.name, units, service.gpu_mode, request.launch.timeout,
                                  request.launch.keep)
    launcher.hand_over(started, started[primary], service.name, partial(print_summary, service, request, urls),
                       request.launch.foreground)


def dry_run(service: Service) -> None:
    from ..launch.docker import dry_run_text
    for plan in service.stacks():
        print(f"image: {plan.top.ref} (stack {plan.stack_tag})")
    print(f"docker network create --label org.lazyllm.managed=true {service.name}-net")
    for unit in service.units:
        print(dry_run_text(unit.spec, service.gpu_mode))


def run(request: RunRequest) -> None:
    if request.target not in ("chatbot", "rag"):
        label = "WORKFLOW.json" if request.target == "workflow" else request.target
        raise NotImplementedYet(f"lazyllm run {label}")
    service = chatbot(request) if request.target == "chatbot" else rag(request)
    if request.launch.dry_run:
        dry_run(service)
        return
    if request.launch.compose:
        from ..launch.compose import compose_yaml
        with open(request.launch.compose, "w") as out:
            out.write(compose_yaml([u.spec for u in service.units], service.gpu_mode))
        print(f"compose file: {request.launch.compose}")
        return
    launch(service, request)


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
    print(f"manage:    lazyllm ps | lazyllm logs {service.name} | lazyllm stop {service.name}")
