"""``lazyllm deploy MODEL ...`` and ``lazyllm deploy mcp_server ...``"""

from __future__ import annotations

import re

import click

from ..errors import UsageError
from ..requests import FRAMEWORKS, DeployModelRequest, McpServerRequest
from .common import (BoolWord, DefaultGroup, build_options, check_host, check_name, dispatch, launch_options,
                     make_build_options, make_launch_options, target_option_list, target_options)


def targets_options(func):
    for opt in reversed(target_option_list()):
        func = opt(func)
    return func


def _route(first: str) -> str:
    return "model"


@click.group("deploy", cls=DefaultGroup, route=_route,
             missing=UsageError("deploy needs a model or 'mcp_server'",
                                "e.g. 'lazyllm deploy llama3-chat --framework vllm' or "
                                "'lazyllm deploy mcp_server uvx mcp-server-fetch'"))
def deploy():
    """Launch a model server, or serve a stdio MCP server over SSE and streamable HTTP.

    \b
    lazyllm deploy MODEL [--framework F] [--chat=true] [--key=value ...]
    lazyllm deploy mcp_server [-e KEY VALUE]... [--sse-port P] [--sse-host H]
                              [--allow-origin O ...] [--pass-environment] COMMAND [-- ARGS...]
    """


# ---------------------------------------------------------------- deploy MODEL

def split_extra_options(extra: list[str]) -> tuple[tuple[tuple[str, str], ...], tuple[str, ...]]:
    """``--key=value`` -> (key, value); ``--flag`` -> flag. Anything else is a usage error."""
    options: list[tuple[str, str]] = []
    flags: list[str] = []
    for token in extra:
        if not token.startswith("--") or token == "--":
            raise UsageError(f"unexpected argument {token!r}",
                             "framework options are written --key=value (or --flag); the model comes first")
        body = token[2:]
        if "=" in body:
            key, value = body.split("=", 1)
            if not key:
                raise UsageError(f"malformed option {token!r}", "write framework options as --key=value")
            options.append((key, value))
        else:
            flags.append(body)
    return tuple(options), tuple(flags)


@deploy.command("model", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("model", metavar="MODEL")
@click.option("--framework", type=click.Choice(FRAMEWORKS, case_sensitive=False), default="auto",
              show_default=True, help="Inference framework ('auto' chooses by model type and host).")
@click.option("--chat", type=BoolWord(), default="false", is_flag=False, flag_value="true", show_default=True,
              help="Also start the web chat page (true/false/1/0/on/off).")
@click.option("--pass-unknown", is_flag=True, help="Pass options the framework does not know unchanged.")
@launch_options
@build_options
@click.pass_context
def deploy_model(ctx, model, framework, chat, pass_unknown, **kw):
    """Deploy MODEL (a local directory or a hub id) with an inference framework.

    Other options are written --key=value (e.g. --top_p=0.9 --max_tokens=2048) or --flag and are mapped to
    the framework's own flags.
    """
    options, flags = split_extra_options(list(ctx.args))
    request = DeployModelRequest(model=model, framework=framework.lower(), chat=chat, options=options,
                                 flags=flags, pass_unknown=pass_unknown, launch=make_launch_options(kw),
                                 build=make_build_options(kw))
    dispatch(request, _execute_model)


def _execute_model(request: DeployModelRequest):
    from ..services.deploy import run
    run(request)


# ---------------------------------------------------------------- deploy mcp_server

def looks_like_origin(token: str) -> bool:
    """An Origin is ``*``, ``null`` or ``scheme://host[:port]``; a command never looks like one."""
    return token in ("*", "null") or ("://" in token and not token.startswith("-"))


def gather_origins(args: list[str]) -> list[str]:
    """Let ``--allow-origin A B C`` take several origins without swallowing the command after them.

    Rewrites ``--allow-origin A B`` to ``--allow-origin A --allow-origin B``; stops at the first token that
    is not an origin (the command) or at an option.
    """
    out: list[str] = []
    i = 0
    while i < len(args):
        token = args[i]
        if token == "--":
            out.extend(args[i:])
            break
        if token == "--allow-origin" or token.startswith("--allow-origin="):
            if "=" in token:
                out.append(token)
                i += 1
            else:
                if i + 1 >= len(args):
                    out.append(token)     # click reports the missing value
                    break
                out += [token, args[i + 1]]
                i += 2
            while i < len(args) and looks_like_origin(args[i]):
                out += ["--allow-origin", args[i]]
                i += 1
            continue
        out.append(token)
        i += 1
    return out


ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def check_env_pairs(pairs, command: click.Command) -> tuple[tuple[str, str], ...]:
    """``-e KEY VALUE``: KEY must be a variable name and VALUE must not be one of our own options
    (``-e TOKEN --sse-port 8080`` is a forgotten value, not a token called ``--sse-port``)."""
    own = {name for p in command.params for name in getattr(p, "opts", [])}
    for key, value in pairs:
        if not ENV_NAME.match(key) or value in own:
            raise UsageError(f"-e needs KEY VALUE (got {key!r} {value!r})",
                             "e.g. -e GITHUB_TOKEN your_token; KEY is a variable name")
    return tuple((k, v) for k, v in pairs)


def check_allowed_hosts(ctx, param, values) -> tuple[str, ...]:
    from ..runtime.netaddr import parse_allowed_host
    try:
        return tuple(parse_allowed_host(v) for v in values)
    except ValueError as exc:
        raise UsageError(f"--allowed-host: {exc}", "e.g. --allowed-host mcp.example.com or gw.example:8443") from None


class McpCommand(click.Command):
    def parse_args(self, ctx, args):
        return super().parse_args(ctx, gather_origins(list(args)))


@deploy.command("mcp_server", cls=McpCommand,
                context_settings={"allow_interspersed_args": False, "ignore_unknown_options": False})
@click.option("-e", "--env", "env", nargs=2, multiple=True, metavar="KEY VALUE",
              help="Environment variable for the MCP server (repeatable). Reaches only the server process.")
@click.option("--pass-environment/--no-pass-environment", default=False, show_default=True,
              help="Pass this shell's whole environment to the MCP server.")
@click.option("--sse-port", type=click.IntRange(0, 65535), default=0, show_default=True,
              help="Port to serve on (0: a free one, printed).")
@click.option("--sse-host", default="127.0.0.1", show_default=True, help="Address to serve on.")
@click.option("--allowed-host", "allowed_hosts", multiple=True, metavar="HOST[:PORT]", callback=check_allowed_hosts,
              help="Also accept this Host header (repeatable): HOST:PORT, HOST (any port), or '*' (no Host check). "
                   "Beyond loopback this host's addresses and names are accepted already.")
@click.option("--allow-origin", "allow_origins", multiple=True, metavar="ORIGIN...",
              help="Origins allowed by CORS; several may follow one flag. Without it: no CORS.")
@click.option("--auth-token", envvar="LAZYLLM_MCP_TOKEN", metavar="TOKEN",
              help="Require 'Authorization: Bearer TOKEN' (also $LAZYLLM_MCP_TOKEN).")
@click.option("--isolate", is_flag=True, help="One server process per client session instead of one shared.")
@click.option("--restart", type=click.Choice(["no", "on-failure"]), default="no", show_default=True,
              help="Restart the MCP server when it exits (with backoff), else the bridge exits non-zero.")
@click.option("--container/--no-container", default=True, show_default=True,
              help="Run inside the MCP runtime image (default) or directly on this host.")
@click.option("--url-file", metavar="FILE", help="Write the SSE and streamable-HTTP URLs to FILE.")
@click.option("--foreground", is_flag=True, help="Stay attached; Ctrl-C stops everything.")
@click.option("--dry-run", is_flag=True, help="Print the exact engine call; change nothing.")
@click.option("--name", metavar="NAME", help="Name of the service.")
@targets_options
@build_options
@click.argument("command", metavar="COMMAND", required=False)
@click.argument("args", nargs=-1, type=click.UNPROCESSED, metavar="[-- ARGS...]")
def deploy_mcp_server(command, args, env, pass_environment, sse_port, sse_host, allowed_hosts, allow_origins,
                      auth_token, isolate, restart, container, url_file, foreground, dry_run, name, **kw):
    """Serve the stdio MCP server started by COMMAND over SSE (/sse) and streamable HTTP (/mcp).

    \b
    Examples:
      lazyllm deploy mcp_server uvx mcp-server-fetch
      lazyllm deploy mcp_server -e GITHUB_TOKEN your_token --sse-port 8080 npx -- -y @modelcontextprotocol/server-github
    """
    if not command:
        raise UsageError("mcp_server needs the COMMAND that starts the MCP server",
                         "e.g. 'lazyllm deploy mcp_server uvx mcp-server-fetch'")
    env = check_env_pairs(env, click.get_current_context().command)
    placement = target_options(kw, foreground)
    if placement["target"] != "docker" and not container:
        raise UsageError(f"--target {placement['target']} runs the bridge in its image", "drop --no-container")
    args = list(args)
    if args and args[0] == "--":
        args = args[1:]
    request = McpServerRequest(command=command, args=tuple(args), env=tuple(tuple(p) for p in env),
                               pass_environment=pass_environment, sse_port=sse_port, sse_host=check_host(sse_host),
                               allowed_hosts=allowed_hosts, allow_origins=tuple(allow_origins),
                               auth_token=auth_token, isolate=isolate, restart=restart, container=container,
                               url_file=url_file, foreground=foreground, dry_run=dry_run, name=check_name(name),
                               placement=placement, build=make_build_options(kw))
    dispatch(request, _execute_mcp)


def _execute_mcp(request: McpServerRequest):
    if request.container:
        from ..services.mcp_container import run
        run(request)
        return
    from ..services.mcp_host import run_foreground
    code = run_foreground(request)
    if code:
        raise SystemExit(code)       # the bridge already printed its error: keep its exit status
