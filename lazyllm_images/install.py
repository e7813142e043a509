"""``lazyllm install``: plan (pure) and, unless --dry-run, build (effects in lazyllm_images.build)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .errors import LazyllmError
from .plan import Plan
from .requests import BuildOptions, InstallRequest


def make_plan(items: tuple[str, ...], build: BuildOptions) -> Plan:
    from .host import host_facts
    from .resolve import resolve
    locks = None
    if build.locked:
        from .build.lockfile import read_pins
        locks = read_pins(items)
    return resolve(items, build, host=host_facts(), locks=locks)


def local_images(plan: Plan) -> dict[str, bool] | None:
    """Which layer images exist locally; None when no engine answers (a dry run needs none)."""
    from .engine import images_exist
    return images_exist([layer.ref for layer in plan.layers])


def write_dockerfiles(plan: Plan, folder: str) -> list[Path]:
    out = Path(folder)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LazyllmError(f"cannot create {folder}: {exc.strerror}", "choose a writable folder") from exc
    paths = []
    for i, layer in enumerate(plan.layers, 1):
        path = out / f"{i:02d}-{layer.name}.Dockerfile"
        path.write_text(layer.dockerfile)
        paths.append(path)
    return paths


def installer_notes(plan: Plan, only: set[str] | None = None) -> tuple[str, ...]:
    """Say where pip installs instead of uv (a recipe's choice, a source build, or LAZYLLM_INSTALLER=pip); with
    ``only``, among those layers (the ones a build ran)."""
    from .resolve.stack import UV_VERSION, installer_override
    by_pip = [layer.name for layer in plan.layers if layer.installer == "pip" and (only is None or layer.name in only)]
    if not by_pip:
        return ()
    why = "LAZYLLM_INSTALLER=pip" if installer_override() == "pip" else "the recipe's choice"
    return (f"pip installs {', '.join(by_pip)} ({why}); uv {UV_VERSION} the others",)


def print_plan(plan: Plan, exists: dict[str, bool] | None, show_dockerfiles: bool) -> None:
    from rich.console import Console
    from rich.table import Table
    console = Console(highlight=False)
    console.print(f"[bold]plan[/] {' '.join(plan.items)}  ->  [bold]{plan.stack_tag}[/]")
    fw = ", ".join(f"{k} {v}".strip() for k, v in plan.frameworks.items())
    console.print(f"base {plan.base} ({plan.base_image}), {plan.accelerator}"
                  + (f" CUDA {plan.cuda}" if plan.cuda else "") + f", Python {plan.python}"
                  + (f", torch {plan.torch}" if plan.torch else "") + (f", {fw}" if fw else ""))
    table = Table(box=None, header_style="bold", pad_edge=False)
    for col in ("#", "layer", "image", "state", "installs"):
        table.add_column(col)
    for i, layer in enumerate(plan.layers, 1):
        state = "?" if exists is None else ("[green]exists[/]" if exists.get(layer.ref) else "[yellow]to build[/]")
        what = " ".join(list(layer.apt) + list(layer.packages))
        table.add_row(str(i), layer.name, layer.ref, state, what if len(what) < 70 else what[:67] + "...")
    console.print(table)
    for note in plan.notes + installer_notes(plan):
        console.print(f"note: {note}")
    if exists is None:
        console.print("note: no Docker engine answers, so whether layers exist is unknown")
    if show_dockerfiles:
        for i, layer in enumerate(plan.layers, 1):
            console.rule(f"{i:02d}-{layer.name}.Dockerfile")
            console.print(layer.dockerfile, markup=False, end="")


def run(request: InstallRequest) -> None:
    plan = make_plan(request.items, request.build)
    if request.dry_run:
        exists = local_images(plan)
        if request.dockerfiles:
            written = write_dockerfiles(plan, request.dockerfiles)
        if request.json:
            data = plan.to_dict(exists)
            if request.dockerfiles:
                data["dockerfiles"] = [str(p) for p in written]
            sys.stdout.write(json.dumps(data, indent=2) + "\n")
            return
        print_plan(plan, exists, show_dockerfiles=not request.dockerfiles)
        if request.dockerfiles:
            print(f"Dockerfiles written to {request.dockerfiles}/ ({len(written)} files)")
        return
    from .build.runner import build_plan
    outcome = build_plan(plan, request.build, quiet=request.json)
    if request.json:
        sys.stdout.write(json.dumps(outcome.to_dict(plan), indent=2) + "\n")
        return
    built = {name for name, how in outcome.how.items() if how == "built"}
    for note in installer_notes(plan, only=built):
        print(f"note: {note}")
    if outcome.lock_file:
        print(f"lock: {outcome.lock_file}")
    for ref in outcome.pushed:
        print(f"pushed: {ref}")
