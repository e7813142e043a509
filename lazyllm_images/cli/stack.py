"""``lazyllm stack up|down|ps FILE``: run a compose or Swarm stack file written by ``--target compose|swarm``."""

from __future__ import annotations

import click

from ..errors import UsageError

STACK_TARGETS = ("compose", "swarm")


def read_stack(path: str, target: str | None) -> tuple[dict, str]:
    """(the file as YAML, its target): ``x-lazyllm.target`` unless ``--target`` says otherwise."""
    import yaml
    try:
        with open(path) as stream:
            doc = yaml.safe_load(stream)
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}", "give the file --target compose|swarm wrote") from exc
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" (line {where.line + 1})" if where is not None else ""
        raise UsageError(f"{path} is not YAML{at}: {getattr(exc, 'problem', None) or exc}",
                         "render it again with --target compose|swarm") from exc
    ext = doc.get("x-lazyllm") if isinstance(doc, dict) else None
    if not isinstance(ext, dict) or not isinstance(ext.get("service"), str) or not isinstance(doc.get("services"), dict):
        raise UsageError(f"{path} was not written by lazyllm (no x-lazyllm service, or no services)",
                         "write one with 'lazyllm deploy|run ... --target compose -o FILE' (or --target swarm)")
    found = target or ext.get("target")
    if found not in STACK_TARGETS:
        raise UsageError(f"{path}: target {found!r} is not one 'lazyllm stack' runs",
                         "--target compose or --target swarm")
    return doc, found


def _backend(target: str):
    if target == "swarm":
        from ..backends import swarm
        return swarm
    from ..backends import compose
    return compose


@click.group("stack")
def stack():
    """Run a stack file written by --target compose or --target swarm.

    \b
    lazyllm run rag --documents docs --target compose -o rag.yaml && lazyllm stack up rag.yaml
    lazyllm deploy all-MiniLM-L6-v2 --target swarm -o embed.yaml --registry R && lazyllm stack up embed.yaml
    """


target_option = click.option("--target", type=click.Choice(STACK_TARGETS), default=None,
                             help="Override the file's own target (x-lazyllm.target).")


@stack.command("up")
@click.argument("file", type=click.Path(dir_okay=False))
@target_option
@click.option("--timeout", type=float, default=600.0, show_default=True, help="Seconds to wait until healthy.")
@click.option("--keep", is_flag=True, help="Leave a stack that failed to become healthy (for debugging).")
def up(file, target, timeout, keep):
    """Start FILE's services, wait until every one is healthy, print the URLs."""
    if not timeout > 0:
        raise UsageError(f"--timeout {timeout:g} is not a positive number of seconds", "e.g. --timeout 600")
    doc, target = read_stack(file, target)
    backend = _backend(target)
    urls = backend.up(file, doc, timeout, keep=keep)
    name = doc["x-lazyllm"]["service"]
    click.echo(f"{name} is up ({target})")
    for key, url in urls.items():
        click.echo(f"  {key}: {url}")
    click.echo(f"stop it: lazyllm stack down {file}")


@stack.command("down")
@click.argument("file", type=click.Path(dir_okay=False))
@target_option
def down(file, target):
    """Stop and remove FILE's services and network (named volumes stay)."""
    doc, target = read_stack(file, target)
    _backend(target).down(file, doc)
    click.echo(f"removed {doc['x-lazyllm']['service']}")


@stack.command("ps")
@click.argument("file", type=click.Path(dir_okay=False))
@target_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def ps(file, target, as_json):
    """FILE's services: where each runs and its state."""
    import json
    doc, target = read_stack(file, target)
    name = doc["x-lazyllm"]["service"]
    if target == "swarm":
        rows = _backend(target).ps(file, doc)
        if as_json:
            click.echo(json.dumps(rows, indent=2))
            return
        for row in rows:
            click.echo("  ".join(str(v) for v in row.values()))
        return
    from ..backends import state
    rows = [r for r in state.list_services(show_all=True) if r["name"] == name]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo(f"{name}: not running")
        return
    state.print_table(rows)
