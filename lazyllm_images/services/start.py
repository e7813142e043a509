"""Starting a described service: the one path ``deploy``, ``run chatbot|rag`` and ``deploy mcp_server`` share.

A service module describes a ``launch.unit.Service``; this prints it (``--dry-run``, no engine), writes it
(``--compose``), or builds its stacks, checks its GPU units against the host and hands it to the local-engine
backend, which starts it healthy; then the summary, or ``--foreground``.
"""

from __future__ import annotations

import functools
import sys
from typing import Callable

from ..errors import UsageError
from ..launch.unit import Service, Unit
from ..requests import BuildOptions, LaunchOptions


def service_name(launch: LaunchOptions, default: str) -> str:
    """``--name`` or the default; a real launch takes the next free ``NAME-N`` (an explicit name must be free)."""
    name = launch.name or default
    if launch.dry_run or launch.compose:
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


def write_compose(service: Service, path: str) -> None:
    from ..launch.compose import compose_yaml
    text = compose_yaml(service.specs, service.gpu_mode, gids=device_gids(service))
    try:
        with open(path, "w") as out:
            out.write(text)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror}", "choose a writable path for --compose") from exc
    print(f"compose file: {path} (docker compose -f {path} up -d)")


def start(service: Service, launch: LaunchOptions, build: BuildOptions,
          announce: Callable[[dict[str, str]], None]) -> None:
    """Print, write, or launch ``service``; ``announce(urls)`` prints the summary once it is healthy."""
    if launch.dry_run:
        print_dry_run(service)
        return
    from ..build.runner import build_plan
    if launch.compose:
        for plan in service.stacks():
            build_plan(plan, build, write_lock=False, quiet=True)
        write_compose(service, launch.compose)
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
