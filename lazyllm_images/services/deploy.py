"""``lazyllm deploy MODEL``: choose the framework, describe the model server (and ``--chat=true``'s chat page), and
start it through ``services.start`` (dry run, compose file, or launched healthy). ``model_server`` is also how
every ``run`` service gets its model, embedding and reranker servers: one description of "the model unit"."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from functools import partial

from ..errors import LaunchError, UsageError
from ..launch.spec import GpuRequest
from ..launch.unit import Service, Unit
from ..paths import service_files_dir
from ..requests import DeployModelRequest, LaunchOptions
from . import hub
from .models import ModelSource, files_dict, resolve_model
from .start import gpu_mode, service_name, start
from .trust import with_host_trust


@dataclass(frozen=True)
class ModelServer:
    """A model server as a unit of some service, and what was decided on the way."""

    framework: str
    why: str
    source: ModelSource
    plan: object                      # the stack (resolve.Plan)
    server: object                    # launch.model_server.ModelServerPlan
    unit: Unit
    kind: str = "llm"                 # the model's kind: llm | embed | rerank
    hub: hub.HubSettings | None = None    # a model named by hub id: the settings its container gets

    @property
    def spec(self):
        return self.unit.spec

    @property
    def internal_url(self) -> str:
        """Its API on the service's network, for the other units."""
        return f"http://{self.spec.name}:{self.spec.ports[0].container_port}"


def model_kind(source: ModelSource) -> str:
    from ..frameworks import auto
    return source.model_kind or auto.detect_model_kind(source.spec, files_dict(source)).kind


def choose_framework(request: DeployModelRequest, kind: str, host) -> tuple[str, str]:
    from ..frameworks import auto
    if request.framework != "auto":
        return request.framework, "asked for"
    name, why = auto.choose_with_reason(kind, host)
    return name, f"auto: {why}"


def check_readable(folder: str, user: str | None) -> None:
    """A non-root server must be able to read every model file: say so before launching, not after a crash."""
    import os
    import stat
    if not user or user.split(":")[0] in ("0", "root"):
        return
    uid = int(user.split(":")[0])
    for root, dirs, files in os.walk(folder):
        for name in files + dirs:
            st = os.stat(os.path.join(root, name))
            other = stat.S_IROTH | (stat.S_IXOTH if stat.S_ISDIR(st.st_mode) else 0)
            if st.st_uid != uid and (st.st_mode & other) != other:
                raise LaunchError(f"the server runs as uid {uid} and cannot read {os.path.join(root, name)} "
                                  f"(mode {stat.filemode(st.st_mode)}, owner uid {st.st_uid})",
                                  f"make the model readable: chmod -R a+rX {folder}")


def _model_args(source: ModelSource, plan) -> dict:
    if source.kind == "dir":
        return dict(model_source=source.host_path, model_mount="bind")
    if source.kind == "package":
        return dict(model_source=source.path_in_image(plan.python), model_mount="image")
    return dict(model_source=source.spec, model_mount="image")


def model_server(request: DeployModelRequest, service: str, role: str = "model",
                 served_name: str | None = None) -> ModelServer:
    """The model server of ``service``, named ``SERVICE-ROLE``: framework, GPUs, stack, spec, secrets, and for a
    hub id the hub's settings, cache and (unless a dry run) the hub's answer about the repo. ``served_name``: the
    model name clients send (default: the model's own name)."""
    from ..frameworks import get
    from ..host import host_facts
    from ..launch import gpu, needs
    from ..launch.model_server import model_server_plan
    from ..resolve import resolve
    host = host_facts()
    source = resolve_model(request.model)
    kind = model_kind(source)
    fw_name, why = choose_framework(request, kind, host)
    fw = get(fw_name)
    gpus = gpu.resolve(GpuRequest.parse(request.launch.gpus), fw.needs.gpu, host, framework=fw.name,
                       vendors=fw.needs.vendors, ascend_indexes=_ascend_indexes(host),
                       min_compute_capability=fw.needs.min_compute_capability)
    plan = resolve(source.install_items, request.build, host=host, frameworks=(fw_name,))
    if gpus.wants_gpu and gpus.vendor == "nvidia" and plan.accelerator != "nvidia":
        raise UsageError(f"--gpus {gpus.to_arg()} asks for NVIDIA GPUs, but the image would be built for "
                         f"{plan.accelerator} ({host.nvidia.reason or 'no NVIDIA GPU here'})",
                         "plan for a GPU host with --cuda X.Y, or drop --gpus to run on the CPU")
    server = model_server_plan(fw, name=f"{service}-{role}", image=plan.top.ref,
                               served_name=served_name or source.served_name,
                               gpus=gpus, options=request.options, flags=request.flags,
                               pass_unknown=request.pass_unknown,
                               gpu_count=len(host.nvidia.gpus) or None, host_ip=request.launch.host,
                               host_port=request.launch.port, service=service, network=f"{service}-net",
                               files_dir=str(service_files_dir(service)), **_model_args(source, plan))
    spec = needs.apply(server.spec, needs.from_plan(plan))      # the image's layers declared these (one source)
    if source.kind == "dir":
        check_readable(source.host_path, spec.user)
    secret_env = dict(server.secret_env or {})
    settings, explain = None, None
    if source.kind == "hub":
        settings = hub.settings()
        spec, proxy_secrets = with_host_trust(hub.with_hub(spec, settings, fw_name))
        secret_env.update({**proxy_secrets, **hub.secrets(settings)})
        explain = partial(hub.diagnose, repo=source.spec, s=settings, has_token=bool(hub.token(settings)))
        if not (request.launch.dry_run or request.launch.renders):
            _check_hub(source.spec, settings)
    files = tuple((name.rsplit("/", 1)[-1], text) for name, text in server.files)
    unit = Unit(spec, stack=plan, secrets={"env": secret_env} if secret_env else None, files=files,
                urls=(("api", server.api_base),), explain=explain)
    return ModelServer(fw_name, why, source, plan, server, unit, kind, settings)


def _ascend_indexes(host) -> tuple[int, ...]:
    """The host's NPUs, for ``--gpus all`` on Ascend (read only on an Ascend host)."""
    if not host.ascend:
        return ()
    from .. import host as host_mod
    from ..launch import gpu
    return gpu.ascend_indexes(host_mod.ascend_devices())


def _check_hub(repo: str, settings: hub.HubSettings) -> None:
    """Before anything is built: the hub's answer about the repo (a refusal is an error now), and a warning for
    an endpoint on this host's loopback, which no container reaches."""
    if settings.endpoint_is_loopback:
        sys.stderr.write(f"warning: HF_ENDPOINT={settings.endpoint} is this host's loopback, which containers "
                         "cannot reach: use an address of the host they can reach (e.g. the docker bridge's)\n")
    if hub.preflight(repo, settings) == "unreachable":
        sys.stderr.write(f"note: the hub at {settings.endpoint} does not answer this host; the server will try "
                         f"itself, or start from the cache volume {hub.volume_name()}\n")


def chat_unit(m: ModelServer, service: str, launch: LaunchOptions, host_port: int | None = None) -> Unit:
    """The chat page over the model server (``--chat=true``, ``run chatbot``); ``--auth-token`` guards it."""
    from .chat import AUTH_TOKEN_FILE, chat_spec, file_secrets
    token = launch.auth_token
    spec = chat_spec(service, m.plan.top.ref, m.internal_url, m.server.served_name, host_ip=launch.host,
                     host_port=host_port, default_params=m.server.default_params(), network=f"{service}-net",
                     depends_on=(m.spec.name,), auth=bool(token))
    return Unit(spec, stack=m.plan, secrets=file_secrets((AUTH_TOKEN_FILE, token)), urls=(("chat", "/"),))


def describe(request: DeployModelRequest) -> tuple[Service, ModelServer]:
    source = resolve_model(request.model)
    name = service_name(request.launch, f"lazyllm-{source.served_name.lower()}")
    if request.launch.auth_token and not request.chat:
        raise UsageError("--auth-token guards the chat page, and there is none without --chat=true",
                         "add --chat=true, or protect the model server with its own option (vLLM: --api_key=...)")
    m = model_server(request, name)
    units = [m.unit] + ([chat_unit(m, name, request.launch)] if request.chat else [])
    return Service(name, tuple(units), gpu_mode(units, request.launch.engine_free),
                   notes=(f"framework: {m.framework} ({m.why})",)), m


def run(request: DeployModelRequest) -> None:
    service, m = describe(request)
    if request.chat and not request.launch.dry_run:
        from .chat import warn_exposed
        warn_exposed("the chat page", request.launch.host, request.launch.auth_token, "chat with the model")
    start(service, request.launch, request.build, partial(print_summary, service.name, m))


def curl_example(m: ModelServer, api: str) -> str:
    if m.kind == "rerank" and m.server.api_kind == "openai-embeddings":
        body = {"model": m.server.served_name, "query": "What is a container?",
                "documents": ["A container runs an image.", "Bread is baked."]}
        return f"curl {api}/rerank -H 'Content-Type: application/json' -d '{json.dumps(body)}'"
    if m.server.api_kind == "openai-embeddings":
        body = {"model": m.server.served_name, "input": ["hello world"]}
        return f"curl {api}/embeddings -H 'Content-Type: application/json' -d '{json.dumps(body)}'"
    if m.server.api_kind == "openai-chat":
        body = {"model": m.server.served_name, "messages": [{"role": "user", "content": "Hello!"}]}
        return f"curl {api}/chat/completions -H 'Content-Type: application/json' -d '{json.dumps(body)}'"
    return f"curl {api}/generate -H 'Content-Type: application/json' -d '{json.dumps({'inputs': 'Hello!'})}'"


def print_summary(service: str, m: ModelServer, urls: dict[str, str]) -> None:
    print(f"service:   {service} ({m.framework}; {m.why})")
    print(f"endpoint:  {urls['api']}")
    print(f"model:     {m.server.served_name}")
    if "chat" in urls:
        print(f"chat:      {urls['chat']}")
    print(f"try:       {curl_example(m, urls['api'])}")
    print(f"manage:    lazyllm ps | lazyllm logs {service} | lazyllm stop {service}")
