"""``lazyllm install GROUP|PACKAGE ...``"""

from __future__ import annotations

import click

from ..errors import UsageError
from ..requests import InstallRequest
from .common import build_options, dispatch, make_build_options


@click.command("install", context_settings={"ignore_unknown_options": False})
@click.argument("items", nargs=-1, metavar="GROUP|PACKAGE...")
@build_options
@click.option("--dry-run", is_flag=True, help="Print the plan (layers, tags, Dockerfiles); build nothing.")
@click.option("--json", "as_json", is_flag=True, help="The plan (with --dry-run) or the outcome as JSON.")
@click.option("--dockerfiles", metavar="DIR", help="With --dry-run: write each layer's Dockerfile to DIR.")
def install(items, dry_run, as_json, dockerfiles, **kw):
    """Resolve extras groups and Python packages into layered images, building only what is missing.

    \b
    Examples:
      lazyllm install embedding chat
      lazyllm install openai sentence-transformers
      lazyllm install chat --dry-run --json
    Groups: 'lazyllm install --dry-run --json' shows what each resolves to; README.md lists them.
    """
    if not items:
        raise UsageError("nothing to install",
                         "name groups or packages, e.g. 'lazyllm install embedding chat' "
                         "or 'lazyllm install openai sentence-transformers'")
    request = InstallRequest(items=tuple(items), build=make_build_options(kw), dry_run=dry_run, json=as_json,
                             dockerfiles=dockerfiles)
    dispatch(request, _execute)


def _execute(request: InstallRequest):
    from ..install import run
    run(request)
