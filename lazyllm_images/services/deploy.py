"""``lazyllm deploy MODEL``: choose the framework, install (or reuse) its stack, launch it healthy, print how to
use it. ``--chat=true`` adds the web chat page; ``--dry-run`` prints the engine calls; ``--compose`` writes them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import partial

from .. import engine
from ..errors import LaunchError, UsageError
from ..launch.spec import GpuRequest, LaunchSpec
from ..requests import DeployModelRequest
from . import hub, launcher
from .models import ModelSource, files_dict, resolve_model


@dataclass
class Prepared:
    framework: str
    why: str
    source: ModelSource
    plan: object
    server: object                    # launch.plan.ModelServerPlan
    specs: list[LaunchSpec]
    gpu_mode: str
    service: str
    network: object = None            # launcher.NetworkInBackground, when prepare started one
    kind: str = "llm"                 # the model's kind: llm | embed | rerank
    hub: hub.HubSettings | None = None    # a model named by hub id: the settings its container gets


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


def prepare(request: DeployModelRequest, service: str | None = None) -> Prepared:
    """``service``: launch as part of that service (``run chatbot|rag``), as its ``-model`` container."""
    from ..host import host_facts
    host = host_facts()
    source = resolve_model(request.model)
    network_job = None
    if service is None:
        explicit = bool(request.launch.name)
        base = request.launch.name or f"lazyllm-{source.served_name.lower()}"
        dry = request.launch.dry_run or request.launch.compose
        service = base if dry else launcher.unique_service_name(base, explicit)
        if not dry:                      # the engine makes the network while this process plans
            network_job = launcher.NetworkInBackground(service)
    with launcher.NetworkInBackground.discarded_on_error(network_job):
        return _prepare(request, service, host, source, network_job)


def _prepare(request: DeployModelRequest, service: str, host, source: ModelSource, network_job) -> Prepared:
    from ..frameworks import get
    from ..host import cdi_nvidia_specs
    from ..launch import gpu
    from ..launch.plan import model_server_plan
    from ..resolve import resolve
    kind = model_kind(source)
    fw_name, why = choose_framework(request, kind, host)
    fw = get(fw_name)
    gpus = gpu.resolve(GpuRequest.parse(request.launch.gpus), fw.needs.gpu, host, framework=fw.name,
                       vendors=fw.needs.vendors)
    plan = resolve(source.install_items, request.build, host=host, frameworks=(fw_name,))
    if gpus.wants_gpu and gpus.vendor == "nvidia" and plan.accelerator != "nvidia":
        raise UsageError(f"--gpus {gpus.to_arg()} asks for NVIDIA GPUs, but the image would be built for "
                         f"{plan.accelerator} ({host.nvidia.reason or 'no NVIDIA GPU here'})",
                         "plan for a GPU host with --cuda X.Y, or drop --gpus to run on the CPU")
    network = f"{service}-net"
    server = model_server_plan(fw, name=f"{service}-model", image=plan.top.ref, served_name=source.served_name,
                               gpus=gpus, options=request.options, flags=request.flags,
                               pass_unknown=request.pass_unknown,
                               gpu_count=len(host.nvidia.gpus) or None, host_ip=request.launch.host,
                               host_port=request.launch.port, service=service, network=network,
                               **_model_args(source, plan))
    from ..launch import needs
    model_spec = needs.apply(server.spec, needs.from_plan(plan))    # re-read from the image's labels at launch
    if source.kind == "dir":
        check_readable(source.host_path, model_spec.user)
    settings = None
    if source.kind == "hub":
        settings = hub.settings()
        model_spec = hub.with_hub(model_spec, settings, fw_name)
        if not (request.launch.dry_run or request.launch.compose):
            _check_hub(source.spec, settings)
    specs = [model_spec]
    if request.chat:
        from .chat import chat_spec
        specs.append(chat_spec(service, plan.top.ref, f"http://{model_spec.name}:{fw.container_port}",
                               server.served_name, host_ip=request.launch.host, default_params=server.default_params(),
                               network=network, depends_on=(model_spec.name,)))
    mode = gpu.choose_mode(_nvidia_runtime(), cdi_nvidia_specs()) if gpus.wants_gpu else "runtime"
    return Prepared(fw_name, why, source, plan, server, specs, mode, service, network_job, kind, settings)


def _check_hub(repo: str, settings: hub.HubSettings) -> None:
    """Before anything is built: the hub's answer about the repo (a refusal is an error now), and a warning for
    an endpoint on this host's loopback, which no container reaches."""
    import sys
    if settings.endpoint_is_loopback:
        sys.stderr.write(f"warning: HF_ENDPOINT={settings.endpoint} is this host's loopback, which containers "
                         "cannot reach: use an address of the host they can reach (e.g. the docker bridge's)\n")
    if hub.preflight(repo, settings) == "unreachable":
        sys.stderr.write(f"note: the hub at {settings.endpoint} does not answer this host; the server will try "
                         f"itself, or start from the cache volume {hub.volume_name()}\n")


def _nvidia_runtime() -> bool:
    try:
        done = engine.call("GET", "/info")
        info = done[1] if done is not None else engine.client().info()
    except engine.EngineUnreachable:        # a dry run on a host without an engine
        return False
    return "nvidia" in ((info or {}).get("Runtimes") or {})


def print_dry_run(p: Prepared) -> None:
    from ..launch.docker import dry_run_text
    print(f"framework: {p.framework} ({p.why})")
    print(f"image: {p.plan.top.ref}  (stack {p.plan.stack_tag}; {len(p.plan.layers)} layers, "
          f"'lazyllm install' builds what is missing)")
    print(f"docker network create --label org.lazyllm.managed=true {p.service}-net")
    for spec in p.specs:
        print(dry_run_text(spec, p.gpu_mode))


def write_compose(p: Prepared, path: str) -> None:
    from ..launch.compose import compose_yaml
    text = compose_yaml(p.specs, p.gpu_mode)
    with open(path, "w") as out:
        out.write(text)
    print(f"compose file: {path} (docker compose -f {path} up -d)")


def check_gpus(p: Prepared) -> None:
    from ..host import cdi_nvidia_specs, host_facts
    from ..launch import gpu
    spec = p.specs[0]
    labels = engine.image_labels(p.plan.top.ref)
    host = host_facts()
    gpu.check_driver(labels.get("org.lazyllm.cuda") or None, host.nvidia, spec.gpus,
                     nvidia_runtime=_nvidia_runtime(), cdi_specs=cdi_nvidia_specs(), mode=p.gpu_mode)
    gpu.check_host(spec.gpus, host)


def launch(p: Prepared, request: DeployModelRequest) -> tuple[list, dict[str, str]]:
    with launcher.NetworkInBackground.discarded_on_error(p.network):
        units, urls = _units(p)
    started = launcher.launch_all(p.service, units, p.gpu_mode, request.launch.timeout, request.launch.keep,
                                  network=p.network)
    return started, urls


def _units(p: Prepared) -> tuple[list, dict[str, str]]:
    from ..launch import needs
    declared = needs.from_labels(engine.image_labels(p.plan.top.ref))
    specs = [needs.apply(s, declared) if s.role == "model" else s for s in p.specs]
    specs = [launcher.with_ports(s) for s in specs]
    urls = _urls(p, specs)
    units = [model_unit(p, spec) if spec.role == "model" else launcher.Unit(spec)
             for spec in launcher.labelled(specs, urls)]
    return units, urls


def model_unit(p: Prepared, spec: LaunchSpec | None = None) -> "launcher.Unit":
    """The model server's unit, for ``deploy`` and every ``run`` service alike: its secrets on stdin (the
    framework's and, for a hub id, the hub tokens) and, for a hub id, a reading of a failed download."""
    spec = spec or p.specs[0]
    env = dict(p.server.secret_env or {})
    explain = None
    if p.hub is not None:
        tokens = hub.secrets(p.hub)
        env.update(tokens)
        explain = partial(hub.diagnose, repo=p.source.spec, s=p.hub, has_token=bool(hub.token(p.hub)))
    return launcher.Unit(spec, {"env": env}, explain=explain)


def _urls(p: Prepared, specs: list[LaunchSpec]) -> dict[str, str]:
    urls = {"api": launcher.url(specs[0].ports[0], p.server.api_base)}
    if len(specs) > 1:
        urls["chat"] = launcher.url(specs[1].ports[0], "/")
    return urls


def curl_example(p: Prepared, api: str) -> str:
    if p.kind == "rerank" and p.server.api_kind == "openai-embeddings":
        body = {"model": p.server.served_name, "query": "What is a container?",
                "documents": ["A container runs an image.", "Bread is baked."]}
        return f"curl {api}/rerank -H 'Content-Type: application/json' -d '{json.dumps(body)}'"
    if p.server.api_kind == "openai-embeddings":
        body = {"model": p.server.served_name, "input": ["hello world"]}
        return f"curl {api}/embeddings -H 'Content-Type: application/json' -d '{json.dumps(body)}'"
    if p.server.api_kind == "openai-chat":
        body = {"model": p.server.served_name, "messages": [{"role": "user", "content": "Hello!"}]}
        return f"curl {api}/chat/completions -H 'Content-Type: application/json' -d '{json.dumps(body)}'"
    return f"curl {api}/generate -H 'Content-Type: application/json' -d '{json.dumps({'inputs': 'Hello!'})}'"


def run(request: DeployModelRequest) -> None:
    p = prepare(request)
    if request.launch.dry_run:
        print_dry_run(p)
        return
    from ..build.runner import build_plan
    with launcher.NetworkInBackground.discarded_on_error(p.network):
        build_plan(p.plan, request.build, write_lock=False, quiet=True)
        if request.launch.compose:       # (no network was started for it)
            write_compose(p, request.launch.compose)
            return
        check_gpus(p)
    started, urls = launch(p, request)
    launcher.hand_over(started, started[0], p.service, partial(print_summary, p, urls), request.launch.foreground)


def print_summary(p: Prepared, urls: dict[str, str]) -> None:
    print(f"service:   {p.service} ({p.framework}; {p.why})")
    print(f"endpoint:  {urls['api']}")
    print(f"model:     {p.server.served_name}")
    if "chat" in urls:
        print(f"chat:      {urls['chat']}")
    print(f"try:       {curl_example(p, urls['api'])}")
    print(f"manage:    lazyllm ps | lazyllm logs {p.service} | lazyllm stop {p.service}")
