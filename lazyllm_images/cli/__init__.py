"""The ``lazyllm`` command. Parses and prints; the work happens in the modules each command imports."""

from __future__ import annotations

import os
import sys

import click

from .. import __version__
from ..errors import LazyllmError, UsageError
from .common import close_matches, env_flag
from .deploy import deploy
from .install import install
from .manage import doctor, images, logs, prune, ps, stop
from .run import run
from .stack import stack


class RootGroup(click.Group):
    def resolve_command(self, ctx, args):
        name = args[0] if args else None
        if name is not None and name not in self.commands and not name.startswith("-"):
            hint = close_matches(name, self.commands)
            raise UsageError(f"unknown command {name!r}",
                             (f"did you mean {hint}? " if hint else "") + "run 'lazyllm --help'")
        return super().resolve_command(ctx, args)


@click.group(cls=RootGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="lazyllm")
@click.option("--debug", is_flag=True, help="Show tracebacks (also LAZYLLM_DEBUG=1).")
def cli(debug):
    """Build layered container images for LLM applications and launch them on Docker hosts.

    \b
    lazyllm install embedding chat            resolve groups/packages into layered images
    lazyllm deploy MODEL --framework vllm     launch a model server (--chat=true adds a web chat page)
    lazyllm deploy mcp_server uvx mcp-server-fetch   serve a stdio MCP server over SSE / HTTP
    lazyllm run rag --documents DIR           a RAG service over mounted documents
    lazyllm doctor                            check this host
    """
    if debug:
        os.environ["LAZYLLM_DEBUG"] = "1"


for command in (install, deploy, run, stack, ps, logs, stop, images, prune, doctor):
    cli.add_command(command)


def _usage_hint(exc: click.UsageError, argv: list[str]) -> str:
    if exc.ctx is not None:
        path = exc.ctx.command_path
    else:   # errors raised while parsing options carry no context: rebuild the path from the words given
        words, group = ["lazyllm"], cli
        for token in argv:
            sub = group.commands.get(token) if isinstance(group, click.Group) else None
            if sub is None:
                break
            words.append(token)
            group = sub
        path = " ".join(words)
    return f"run '{path} --help' for usage"


def main(argv: list[str] | None = None) -> int:
    """Entry point: one line ``error:`` plus ``hint:``, exit 2 for usage, 1 for failures, no traceback."""
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in argv or env_flag("LAZYLLM_DEBUG")
    try:
        cli.main(args=argv, prog_name="lazyllm", standalone_mode=False)
        return 0
    except LazyllmError as exc:
        if debug:
            import traceback
            traceback.print_exc()
        _print_error(exc.message, exc.hint)
        return exc.exit_code
    except click.exceptions.Abort:
        _print_error("aborted", None)
        return 130
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.UsageError as exc:
        _print_error(exc.format_message(), _usage_hint(exc, argv))
        return 2
    except click.ClickException as exc:
        _print_error(exc.format_message(), None)
        return exc.exit_code
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except KeyboardInterrupt:
        _print_error("interrupted", "run the same command again: finished layers and services are kept")
        return 130
    except BrokenPipeError:
        return 1
    except Exception as exc:  # noqa: BLE001 - the last line of defence: never a bare traceback
        if debug:
            raise
        _print_error(f"internal error: {type(exc).__name__}: {exc}",
                     "rerun with --debug for the traceback, and report it")
        return 1


def _print_error(message: str, hint: str | None) -> None:
    first = " ".join(str(message).split("\n")[0].split())
    click.echo(f"error: {first}", err=True)
    if hint:
        click.echo(f"hint: {hint}", err=True)


def entry() -> None:
    sys.exit(main())
