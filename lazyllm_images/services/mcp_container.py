"""``lazyllm deploy mcp_server`` in a container (the default): the stdio server runs in the MCP runtime image
(Python with uv/uvx, Node with npx, the project's bridge); the bridge listens on 0.0.0.0:8000 inside and the port is
published on --sse-host. ``-e`` values and the token reach the bridge on stdin (its --secrets-stdin): not in the
image, the labels, the container's config or the logs."""

from __future__ import annotations

import json
import os
import sys
from functools import partial

from ..launch.spec import HealthCheck, LaunchSpec, MountSpec, PortSpec, scratch_mount, service_labels
from ..requests import McpServerRequest
from . import launcher

BRIDGE_PORT = 8000
CACHE_VOLUME = "lazyllm-mcp-cache"
CACHE_TARGET = "/var/lib/lazyllm"
# Variables of the host shell that describe the host, not the server: never passed with --pass-environment.
HOST_ONLY = {"PATH", "HOME", "PWD", "OLDPWD", "SHELL", "SHLVL", "HOSTNAME", "USER", "LOGNAME", "TERM", "VIRTUAL_ENV",
             "PYTHONPATH", "PYTHONHOME", "LD_LIBRARY_PATH", "LD_PRELOAD", "_", "TMPDIR", "DOCKER_HOST", "DISPLAY",
             "SSH_AUTH_SOCK", "XDG_RUNTIME_DIR", "MAIL", "LS_COLORS"}


def _slug(command: str, args: tuple[str, ...]) -> str:
    import re
    words = [w for w in (command, *args) if not w.startswith("-")]
    name = words[-1].split("/")[-1].split("@")[0] if words else command
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40] or "server"


def passed_environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in HOST_ONLY and not k.startswith(("LAZYLLM_", "PIP_"))}


def bridge_command(request: McpServerRequest, host_port: int) -> tuple[str, ...]:
    host = request.sse_host if request.sse_host not in ("0.0.0.0", "::", "") else "127.0.0.1"
    argv = ["python3", "-m", "lazyllm_images.runtime.mcp_bridge", "--host", "0.0.0.0", "--port", str(BRIDGE_PORT),
            "--allowed-host", f"{host}:{host_port}", "--allowed-host", f"localhost:{host_port}",
            "--allowed-host", f"127.0.0.1:{host_port}", "--restart", request.restart]
    if has_secrets(request):
        argv.append("--secrets-stdin")
    for origin in request.allow_origins:
        argv += ["--allow-origin", origin]
    if request.isolate:
        argv.append("--isolate")
    return tuple(argv + ["--", request.command, *request.args])


def mcp_spec(request: McpServerRequest, service: str, image: str) -> LaunchSpec:
    port = request.sse_port or launcher.free_port(request.sse_host)
    spec = LaunchSpec(
        name=f"{service}-mcp", image=image, command=bridge_command(request, port), role="mcp",
        env={"HOME": "/tmp", "PYTHONUNBUFFERED": "1", "UV_CACHE_DIR": f"{CACHE_TARGET}/uv",
             "npm_config_cache": f"{CACHE_TARGET}/npm", "npm_config_update_notifier": "false"},
        ports=(PortSpec("sse", BRIDGE_PORT, port, request.sse_host),),
        mounts=(MountSpec("volume", CACHE_TARGET, CACHE_VOLUME, purpose="cache"), scratch_mount()),
        labels=service_labels(service, "mcp", model=" ".join((request.command, *request.args))[:200]),
        healthcheck=HealthCheck("/healthz", BRIDGE_PORT, start_period_s=120), network=f"{service}-net",
        read_only_rootfs=True)
    return launcher.with_host_trust(spec)


# The child starts from the MCP SDK's minimal environment: what it needs to download itself through a TLS proxy
# (CA bundle, proxies) and to keep what it downloads (caches) is given to it explicitly.
CHILD_KEYS = ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "NODE_EXTRA_CA_CERTS", "PIP_CERT",
              "GIT_SSL_CAINFO", "UV_CACHE_DIR", "npm_config_cache", "npm_config_update_notifier",
              "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy")


def has_secrets(request: McpServerRequest) -> bool:
    return True          # the child's environment always travels on stdin (see CHILD_KEYS)


def secrets(request: McpServerRequest, spec: LaunchSpec | None = None) -> dict:
    env = {k: v for k, v in (spec.env if spec else {}).items() if k in CHILD_KEYS}
    if env.get("SSL_CERT_FILE"):
        env["UV_SYSTEM_CERTS"] = "1"      # uv: use the platform store, where SSL_CERT_FILE points
    if request.pass_environment:
        env.update(passed_environment())
    env.update(dict(request.env))
    out: dict = {"env": env}
    if request.auth_token:
        out["auth_token"] = request.auth_token
    return out


def urls(spec: LaunchSpec) -> dict[str, str]:
    port = spec.ports[0]
    return {"sse": launcher.url(port, "/sse"), "mcp": launcher.url(port, "/mcp")}


def warn_exposed(request: McpServerRequest) -> None:
    if request.sse_host not in ("127.0.0.1", "localhost", "::1") and not request.auth_token:
        sys.stderr.write(f"WARNING: the MCP bridge is published on {request.sse_host} without a token: anyone who "
                         "reaches this port can call the server's tools. Use --auth-token (or LAZYLLM_MCP_TOKEN).\n")


def run(request: McpServerRequest) -> None:
    from ..build.runner import build_plan
    from ..host import host_facts
    from ..resolve import resolve
    plan = resolve(("mcp-bridge",), request.build, host=host_facts())
    base = request.name or f"lazyllm-mcp-{_slug(request.command, request.args)}"
    dry = request.dry_run
    service = base if dry else launcher.unique_service_name(base, bool(request.name))
    spec = mcp_spec(request, service, plan.top.ref)
    if dry:
        from ..launch.docker import dry_run_text
        print(f"image: {plan.top.ref} (stack {plan.stack_tag})")
        print(dry_run_text(spec))
        print("# -e values and the token are written to the bridge's stdin after the start, not shown here")
        return
    warn_exposed(request)
    build_plan(plan, request.build, write_lock=False, quiet=True)
    found = urls(spec)
    spec = launcher.labelled([spec], found)[0]
    unit = launcher.Unit(spec, secrets(request, spec), wrap=False)
    started = launcher.launch_all(service, [unit], "runtime", 600)
    if request.url_file:
        with open(request.url_file, "w") as out:
            json.dump(found, out)
    launcher.hand_over(started, started[0], service, partial(print_summary, service, found), request.foreground)


def print_summary(service: str, found: dict[str, str]) -> None:
    print(f"service:   {service}")
    print(f"sse:       {found['sse']}")
    print(f"mcp:       {found['mcp']}")
    print(f"manage:    lazyllm ps | lazyllm logs {service} | lazyllm stop {service}")
