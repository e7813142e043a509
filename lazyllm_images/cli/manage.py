"""``lazyllm ps | logs | stop | images | prune | doctor``: state of what the tool made, and of the host."""

from __future__ import annotations

import json as jsonlib

import click

from ..errors import UsageError


@click.command("ps")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--all", "-a", "show_all", is_flag=True, help="Include stopped containers.")
def ps(as_json, show_all):
    """List the services this tool launched (only containers carrying its labels)."""
    from ..backends import state as services_state
    rows = services_state.list_services(show_all=show_all)
    if as_json:
        click.echo(jsonlib.dumps(rows, indent=2))
        return
    services_state.print_table(rows)


@click.command("logs")
@click.argument("name")
@click.option("--follow", "-f", is_flag=True, help="Keep streaming new lines.")
@click.option("--tail", default="all", show_default=True, help="Lines from the end to show.")
def logs(name, follow, tail):
    """Show the logs of a service this tool launched."""
    from ..backends import state as services_state
    services_state.show_logs(name, follow=follow, tail=tail)


@click.command("stop")
@click.argument("names", nargs=-1, metavar="NAME...")
@click.option("--all", "stop_all", is_flag=True, help="Stop every service this tool launched.")
@click.option("--timeout", "-t", default=3, show_default=True, help="Seconds before the container is killed.")
def stop(names, stop_all, timeout):
    """Stop and remove services this tool launched (never anything else)."""
    if not names and not stop_all:
        raise UsageError("stop needs a service NAME or --all", "'lazyllm ps' lists the services")
    from ..backends import state as services_state
    services_state.stop(names, stop_all=stop_all, timeout=timeout)


@click.group("images", invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def images(ctx, as_json):
    """List the layers and stacks this tool built, with sizes and shared bytes."""
    if ctx.invoked_subcommand is not None:
        return
    from .. import inventory
    report = inventory.collect()
    if as_json:
        click.echo(jsonlib.dumps(report, indent=2))
    else:
        inventory.print_report(report)


@images.command("bootstrap")
@click.option("--suite", default="bookworm", show_default=True, help="Debian suite to bootstrap.")
@click.option("--tag", metavar="IMAGE:TAG", help="Image reference to create (default: the offline base recipe's).")
@click.option("--mirror", envvar="LAZYLLM_DEBIAN_MIRROR", default="http://deb.debian.org/debian",
              show_default=True, help="Debian mirror (also $LAZYLLM_DEBIAN_MIRROR).")
@click.option("--force", is_flag=True, help="Rebuild even when the tag exists.")
def bootstrap(suite, tag, mirror, force):
    """Build a minimal Debian base image locally (debootstrap + import): no registry needed."""
    from ..bootstrap import bootstrap_base
    ref, created = bootstrap_base(suite=suite, tag=tag, mirror=mirror, force=force, echo=click.echo)
    click.echo(f"{'created' if created else 'exists'}: {ref}")


@click.command("prune")
@click.option("--dry-run", is_flag=True, help="Show what would be removed.")
@click.option("--all", "prune_all", is_flag=True, help="Also remove layers that a friendly tag still uses.")
@click.option("--volumes", is_flag=True, help="Also remove the tool's volumes no container uses: the hub cache "
              "(downloaded weights), RAG indexes, MCP caches.")
def prune(dry_run, prune_all, volumes):
    """Remove unreferenced layers this tool built (by label; nothing else)."""
    from .. import inventory
    inventory.prune(dry_run=dry_run, prune_all=prune_all, echo=click.echo)
    if volumes:
        inventory.prune_volumes(dry_run=dry_run, echo=click.echo)


@click.command("doctor")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def doctor(as_json):
    """Check this host: engine, BuildKit, GPUs and their runtime, network/CA settings, disk."""
    from ..doctor import run_checks, render
    report = run_checks()
    if as_json:
        click.echo(jsonlib.dumps(report.to_dict(), indent=2))
    else:
        render(report)
    raise SystemExit(0 if report.ok else 1)
