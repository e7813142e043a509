"""Starting a described service: the one path ``deploy``, ``run chatbot|rag`` and ``deploy mcp_server`` share.

A service module describes a ``launch.unit.Service``; this prints it (``--dry-run``, no engine), writes it
(``--target compose|swarm|k8s``), or builds its stacks, checks its GPU units against the host and hands it to the local-engine
backend, which starts it healthy; then the summary, or ``--foreground``.
"""

from __future__ import annotations

import functools
import sys
from dataclasses import replace
from typing import Callable

from ..errors import UsageError
from ..launch.unit import Service, Unit
from ..requests import BuildOptions, LaunchOptions


def service_name(launch: LaunchOptions, default: str) -> str:
    """``--name`` or the default; a real launch takes the next free ``NAME-N`` (an explicit name must be free)."""
    name = launch.name or default
    if launch.dry_run or launch.renders:
        return name
    from ..backends.docker import unique_service_name
    return unique_service_name(name, bool(launch.name))


@functools.lru_cache(maxsize=1)
def engine_info() -> dict | None:
    """The engine's ``GET /info``, read once per command; None without an engine (dry runs need none)."""
    from .. import engine
    try:
        done = engine.call("GET", "/info")
        return done[1] if done is not None else engine.client().info()
    except engine.EngineUnreachable:
        return None


def gpu_mode(units: list[Unit], dry_run: bool = False) -> str:
    """How every NVIDIA unit of the service gets its devices: ``--gpus`` (the NVIDIA runtime or its hook) or CDI
    names (when the engine has CDI on and a spec exists); neither is an error pointing at ``lazyllm doctor``."""
    if not any(u.spec.gpus.wants_gpu and u.spec.gpus.vendor == "nvidia" for u in units):
        return "runtime"
    from ..host import gpu_plumbing
    from ..launch import gpu
    return gpu.choose_gpu_mode(gpu_plumbing(None if dry_run else engine_info()), dry_run=dry_run)


def check_gpus(service: Service) -> None:
    """Each unit that asks for GPUs: the host's driver runs its image's CUDA, GPUs reach containers, the devices
    exist. Read from the unit's plan and the host's facts (read once)."""
    units = [u for u in service.units if u.spec.gpus.wants_gpu]
    if not units:
        return
    from ..host import gpu_plumbing, host_facts
    from ..launch import gpu
    host, plumbing = host_facts(), gpu_plumbing(engine_info())
    for unit in units:
        gpu.check_driver(getattr(unit.stack, "cuda", None) or None, host.nvidia, unit.spec.gpus, plumbing=plumbing,
                         mode=service.gpu_mode)
        gpu.check_host(unit.spec.gpus, host)


def device_gids(service: Service) -> dict | None:
    """The groups owning the accelerator device nodes (Ascend, AMD), for ``--group-add`` by number: the image's
    /etc/group may lack the names. None when no unit needs them."""
    if not any(u.spec.gpus.wants_gpu and u.spec.gpus.vendor != "nvidia" for u in service.units):
        return None
    from ..host import device_gids as read
    return read()


def print_dry_run(service: Service) -> None:
    from ..launch.docker import dry_run_text
    for line in service.notes:
        print(line)
    for plan in service.stacks():
        print(f"image: {plan.top.ref}  (stack {plan.stack_tag}; {len(plan.layers)} layers, "
              "'lazyllm install' builds what is missing)")
    print(f"docker network create --label org.lazyllm.managed=true {service.name}-net")
    gids = device_gids(service)
    for unit in service.units:
        print(dry_run_text(unit.spec, service.gpu_mode, gids=gids))
        for net in unit.spec.extra_networks:
            print(f"docker network connect {net} {unit.spec.name}")
    if any(u.secrets for u in service.units):
        print("# secrets (tokens, keys, -e values) are written to the containers' stdin after the start, "
              "not shown here")


def render(service: Service, launch: LaunchOptions, build: BuildOptions):
    """``service`` for a file-based target: ``launch.targets.Rendered`` (no engine call; compose fills in free
    host ports here, as a launch would)."""
    from ..launch import targets
    targets.check_portable(service, launch.target)
    if launch.target == "compose":
        from .. import engine
        from ..backends.docker import with_urls
        from ..launch import compose
        from ..paths import service_files_dir
        service = replace(service, units=tuple(with_urls(service)[0]))
        return compose.render(service, output_path(service, launch), gids=device_gids(service),
                              files_dir=str(service_files_dir(service.name)),
                              labels=engine.runtime_labels)
    if launch.target == "swarm":
        from ..launch import swarm
        return swarm.render(service, build.registry, output_path(service, launch), node_hostname=node_hostname(),
                            node_labels=launch.node_labels)
    from ..launch import k8s
    return k8s.render(service, build.registry, namespace=launch.namespace, runtime_class=launch.runtime_class,
                      read_file=k8s.small_file, node_labels=launch.node_labels)


def node_hostname() -> str | None:
    """This engine's node name (Swarm places local-only images there); None without an engine."""
    info = engine_info()
    return info.get("Name") if info else None


DEFAULT_OUTPUT = {"compose": "{name}.compose.yaml", "swarm": "{name}.stack.yaml", "k8s": "{name}-k8s"}


def output_path(service: Service, launch: LaunchOptions) -> str:
    return launch.output or DEFAULT_OUTPUT[launch.target].format(name=service.name)


def write_rendered(rendered, service: Service, launch: LaunchOptions) -> list[str]:
    """Write ``rendered.files``: beside the stack file (compose, swarm) or into the folder (k8s); folders 0700
    when they hold a secret file. Returns the paths written."""
    import os
    out = output_path(service, launch)
    root = out if launch.target == "k8s" else (os.path.dirname(out) or ".")
    written = []
    try:
        for rel, text, mode in rendered.files:
            path = os.path.join(root, rel)
            folder = os.path.dirname(path)
            if folder and not os.path.isdir(folder):
                os.makedirs(folder, mode=0o700 if folder != root else 0o755)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
            with os.fdopen(fd, "w") as stream:
                stream.write(text)
            os.chmod(path, mode)          # an existing file keeps its old mode through O_CREAT
            written.append(path)
        for rel, mode in rendered.folders:
            path = os.path.join(root, rel)
            os.makedirs(path, exist_ok=True)
            os.chmod(path, mode)
            written.append(path + "/")
    except OSError as exc:
        raise UsageError(f"cannot write {exc.filename or out}: {exc.strerror}",
                         "choose a writable path with -o (or --compose FILE)") from exc
    return written


RUN_HINT = {"compose": "lazyllm stack up {out}", "swarm": "lazyllm stack up {out}",
            "k8s": "kubectl apply -k {out}"}


def render_and_write(service: Service, launch: LaunchOptions, build: BuildOptions) -> None:
    from ..build.runner import build_plan
    from ..launch.targets import check_portable
    check_portable(service, launch.target)              # before anything is built
    if launch.target == "k8s":
        from ..launch import k8s
        k8s.preflight(service, build.registry)
    for plan in service.stacks():
        build_plan(plan, build, write_lock=False, quiet=True)
    rendered = render(service, launch, build)
    written = write_rendered(rendered, service, launch)
    for line in service.notes:                       # what a dry run says first (framework, where the token is)
        print(line)
    for note in rendered.notes:
        print(f"note: {note}")
    out = output_path(service, launch)
    print(f"{launch.target} files: {', '.join(written)}")
    print(f"start it: {RUN_HINT[launch.target].format(out=out)}")


def start(service: Service, launch: LaunchOptions, build: BuildOptions,
          announce: Callable[[dict[str, str]], None]) -> None:
    """Print, write, or launch ``service``; ``announce(urls)`` prints the summary once it is healthy."""
    if launch.dry_run:
        print_dry_run(service)
        return
    from ..build.runner import build_plan
    if launch.renders:
        render_and_write(service, launch, build)
        return
    from ..backends import docker as backend
    from ..backends.foreground import hand_over
    network = backend.NetworkInBackground(service.name)      # made by the engine while the stacks are checked
    with backend.NetworkInBackground.discarded_on_error(network):
        for plan in service.stacks():
            build_plan(plan, build, write_lock=False, quiet=True)
        check_gpus(service)
    running = backend.up(service, launch.timeout, launch.keep, network=network, gids=device_gids(service))
    sys.stdout.flush()
    hand_over(running.containers, running.primary, service.name, functools.partial(announce, running.urls),
              launch.foreground)
