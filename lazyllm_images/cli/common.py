"""Pieces every command group shares: option types, option sets, the default-subcommand group, dispatch."""

from __future__ import annotations

import difflib
import os
import re
from typing import Any, Callable

import click

from ..errors import UsageError
from ..requests import BuildOptions, LaunchOptions

TRUE_WORDS = ("true", "1", "on", "yes")
FALSE_WORDS = ("false", "0", "off", "no")


class BoolWord(click.ParamType):
    """A boolean written as a word: true/false/1/0/on/off (any case), as the seed's ``--chat=true``."""

    name = "BOOL"

    def convert(self, value: Any, param, ctx) -> bool:
        if isinstance(value, bool):
            return value
        word = str(value).strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
        self.fail(f"{value!r} is not a boolean; accepted: true/false/1/0/on/off", param, ctx)


def close_matches(word: str, choices) -> str:
    found = difflib.get_close_matches(word, list(choices), n=3, cutoff=0.5)
    return ", ".join(found)


class DefaultGroup(click.Group):
    """A group whose first argument may be a value instead of a subcommand name.

    ``lazyllm deploy llama3 ...`` routes to the ``model`` subcommand; ``lazyllm deploy mcp_server ...``
    to ``mcp_server``. ``route`` picks the subcommand for an argument that is not a subcommand name.
    """

    def __init__(self, *args, route: Callable[[str], str | None] | None = None, missing: UsageError | None = None,
                 **kwargs):
        super().__init__(*args, **kwargs)
        self.route = route
        self.missing = missing

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args and self.missing is not None:
            raise self.missing
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names and self.route:
            target = self.route(args[0])
            if target is not None:
                args = [target, *args]
        return super().parse_args(ctx, args)


def build_options(func):
    """Options of every command that may build images (install, deploy, run)."""
    opts = [
        click.option("--base", metavar="NAME", help="Base recipe (default: $LAZYLLM_BASE, else the CUDA/CPU default; "
                     "'offline' = local Debian base, no registry needed)."),
        click.option("--cuda", metavar="X.Y", help="CUDA version of the stack (default: what the host driver runs; "
                     "CPU on hosts without an NVIDIA GPU)."),
        click.option("--python", "python_version", metavar="X.Y", help="Python version of the stack."),
        click.option("--torch", "torch_version", metavar="X.Y.Z", help="torch version of the stack."),
        click.option("--registry", metavar="HOST[:PORT]/PREFIX", help="Look layers up there before building."),
        click.option("--push", is_flag=True, help="Push the layers built to --registry."),
        click.option("--offline", is_flag=True, help="Never touch a registry."),
        click.option("--locked", is_flag=True, help="Rebuild exactly the versions in lazyllm.lock."),
        click.option("--verbose", "-v", is_flag=True, help="Stream BuildKit's output."),
    ]
    for opt in reversed(opts):
        func = opt(func)
    return func


def make_build_options(kw: dict) -> BuildOptions:
    return BuildOptions(base=kw.pop("base"), cuda=kw.pop("cuda"), python=kw.pop("python_version"),
                        torch=kw.pop("torch_version"), registry=kw.pop("registry"), push=kw.pop("push"),
                        offline=kw.pop("offline"), locked=kw.pop("locked"), verbose=kw.pop("verbose"))


def launch_options(func):
    """Options of every command that launches containers (deploy, run)."""
    opts = [
        click.option("--host", default="127.0.0.1", show_default=True,
                     help="Host address the published ports bind to (0.0.0.0 exposes them to the network)."),
        click.option("--port", type=click.IntRange(1, 65535), help="Host port (default: a free one, printed)."),
        click.option("--gpus", metavar="SPEC", help="all | N | 0,1 | GPU-UUID,... | none (default: what the "
                     "framework needs)."),
        click.option("--name", metavar="NAME", help="Name of the service (default: derived from the request)."),
        click.option("--dry-run", is_flag=True, help="Print the plan and the exact engine calls; change nothing."),
        *target_option_list(),
        click.option("--foreground", is_flag=True, help="Stream logs; Ctrl-C stops and removes everything."),
        click.option("--keep", is_flag=True, help="Keep a container that failed to start (for debugging)."),
        click.option("--timeout", type=float, default=600.0, show_default=True,
                     help="Seconds to wait for the service to become healthy."),
        click.option("--auth-token", envvar="LAZYLLM_AUTH_TOKEN", metavar="TOKEN",
                     help="Require this token of the chat page's and RAG service's clients ('Authorization: Bearer "
                     "TOKEN'; the page asks for it once). Also $LAZYLLM_AUTH_TOKEN."),
    ]
    for opt in reversed(opts):
        func = opt(func)
    return func


def make_launch_options(kw: dict) -> LaunchOptions:
    timeout = kw.pop("timeout")
    if not timeout > 0:
        raise UsageError(f"--timeout {timeout:g} is not a positive number of seconds", "e.g. --timeout 600")
    foreground = kw.pop("foreground")
    return LaunchOptions(host=check_host(kw.pop("host")), port=kw.pop("port"), gpus=kw.pop("gpus"),
                         name=check_name(kw.pop("name")), dry_run=kw.pop("dry_run"),
                         foreground=foreground, keep=kw.pop("keep"), timeout=timeout,
                         auth_token=check_token(kw.pop("auth_token")), **target_options(kw, foreground))


TARGET_HELP = ("Where the service goes: docker (start it on this engine, the default), or files for compose, "
               "swarm (docker stack deploy) or k8s (manifests; needs --registry). 'lazyllm stack up FILE' runs a "
               "compose or swarm file.")


def target_option_list() -> list:
    """--target, -o, --compose, --namespace, --runtime-class: one set for every command that launches."""
    from ..launch.targets import TARGETS
    return [
        click.option("--target", type=click.Choice(TARGETS, case_sensitive=False), default="docker",
                     show_default=True, help=TARGET_HELP),
        click.option("-o", "--output", metavar="PATH", help="The file (compose, swarm; default NAME.compose.yaml or "
                     "NAME.stack.yaml) or folder (k8s; default NAME-k8s) to write."),
        click.option("--compose", metavar="FILE", help="Short for --target compose -o FILE."),
        click.option("--namespace", metavar="NS", help="k8s: the namespace of the manifests."),
        click.option("--runtime-class", metavar="NAME", help="k8s: runtimeClassName of GPU pods (e.g. nvidia)."),
        click.option("--node-label", "node_labels", metavar="KEY=VALUE", multiple=True,
                     help="swarm, k8s: run only on nodes with this label (a placement constraint or nodeSelector; "
                     "repeatable)."),
    ]


NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def target_options(kw: dict, foreground: bool = False) -> dict:
    """The target options of ``kw`` checked together: one error per contradiction."""
    target, output, compose = kw.pop("target").lower(), kw.pop("output"), kw.pop("compose")
    namespace, runtime_class = kw.pop("namespace"), kw.pop("runtime_class")
    node_labels = tuple(check_node_label(t) for t in kw.pop("node_labels"))
    if node_labels and target not in ("swarm", "k8s"):
        raise UsageError("--node-label places units on cluster nodes: it is for --target swarm or k8s",
                         "add --target swarm or --target k8s, or drop --node-label")
    if compose:
        if target not in ("docker", "compose") or output:
            raise UsageError("--compose FILE is short for --target compose -o FILE",
                             "give either --compose FILE or --target T -o PATH")
        target, output = "compose", compose
    if output is not None and target == "docker":
        raise UsageError("-o writes files for --target compose, swarm or k8s", "add --target, or drop -o")
    if (namespace or runtime_class) and target != "k8s":
        raise UsageError("--namespace and --runtime-class are for --target k8s", "add --target k8s, or drop them")
    if namespace is not None and not NAMESPACE.match(namespace):
        raise UsageError(f"--namespace {namespace!r} is not a Kubernetes namespace name",
                         "lower-case letters, digits and '-', at most 63 characters, e.g. --namespace llm")
    if foreground and target != "docker":
        raise UsageError(f"--foreground runs the service here; --target {target} writes files",
                         "drop one of them ('lazyllm stack up FILE' starts a compose or swarm file)")
    return {"target": target, "output": output, "namespace": namespace, "runtime_class": runtime_class,
            "node_labels": node_labels}


NODE_LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
NODE_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$")


def check_node_label(text: str) -> tuple[str, str]:
    """``KEY=VALUE`` a Swarm node label and a Kubernetes node label can both be (the stricter Kubernetes rules)."""
    key, sep, value = text.partition("=")
    if not sep or not NODE_LABEL_KEY.match(key) or not NODE_LABEL_VALUE.match(value):
        raise UsageError(f"--node-label {text!r} is not KEY=VALUE with a valid label key and value",
                         "e.g. --node-label gpu=a100 (letters, digits, '-', '_', '.'; a key may have a DNS prefix/)")
    return key, value


def check_token(token: str | None) -> str | None:
    if token is None:
        return None
    if not token.strip() or len(token.split()) != 1:
        raise UsageError("--auth-token must be one word (no spaces)", "e.g. --auth-token \"$(openssl rand -hex 16)\"")
    return token.strip()


SERVICE_NAME_MAX = 48          # leaves room for the units' suffixes (-model, -rerank, -net) in a 63-character name


def check_name(name: str | None) -> str | None:
    """A service name the engine accepts for its containers and network (and a DNS label, for clusters)."""
    import re
    if name is None:
        return None
    if not re.fullmatch(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?", name) or len(name) > SERVICE_NAME_MAX:
        raise UsageError(f"--name {name!r} is not a valid service name",
                         f"use lowercase letters, digits and '-' (not first or last), at most {SERVICE_NAME_MAX} "
                         "characters, e.g. --name my-llm")
    return name


def check_host(host: str) -> str:
    """``--host``: an IP address of this host to publish on (0.0.0.0 or :: for all)."""
    import ipaddress
    text = host.strip().strip("[]")
    if text == "localhost":
        return "127.0.0.1"
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise UsageError(f"--host {host!r} is not an IP address",
                         "give an address of this host: 127.0.0.1 (default), 0.0.0.0 (all), ::1, or a "
                         "specific interface's IP") from None


def dispatch(request, execute: Callable[[Any], Any]):
    """Run ``execute(request)``; with ``obj={'capture': [...]}`` (tests of the parser) only record it."""
    ctx = click.get_current_context()
    root = ctx.find_root()
    if isinstance(root.obj, dict) and "capture" in root.obj:
        root.obj["capture"].append(request)
        return None
    return execute(request)


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in TRUE_WORDS
