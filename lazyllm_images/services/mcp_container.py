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
from ..launch.unit import Service, Unit
from ..requests import LaunchOptions, McpServerRequest
from ..runtime.netaddr import host_check_off_warning
from .mcp_public import published_hosts, server_label, server_slug
from .start import service_name, start
from .trust import with_host_trust

BRIDGE_PORT = 8000
CACHE_VOLUME = "lazyllm-mcp-cache"
CACHE_TARGET = "/var/lib/lazyllm"
# Variables of the host shell that describe the host, not the server: never passed with --pass-environment.
HOST_ONLY = {"PATH", "HOME", "PWD", "OLDPWD", "SHELL", "SHLVL", "HOSTNAME", "USER", "LOGNAME", "TERM", "VIRTUAL_ENV",
             "PYTHONPATH", "PYTHONHOME", "LD_LIBRARY_PATH", "LD_PRELOAD", "_", "TMPDIR", "DOCKER_HOST", "DISPLAY",
             "SSH_AUTH_SOCK", "XDG_RUNTIME_DIR", "MAIL", "LS_COLORS"}


def passed_environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in HOST_ONLY and not k.startswith(("LAZYLLM_", "PIP_"))}


def bridge_command(request: McpServerRequest, host_port: int) -> tuple[str, ...]:
    argv = ["python3", "-m", "lazyllm_images.runtime.mcp_bridge", "--host", "0.0.0.0", "--port", str(BRIDGE_PORT)]
    for host in published_hosts(request, host_port):
        argv += ["--allowed-host", host]
    argv += ["--restart", request.restart]
    if has_secrets(request):
        argv.append("--secrets-stdin")
    for origin in request.allow_origins:
        argv += ["--allow-origin", origin]
    if request.isolate:
        argv.append("--isolate")
    return tuple(argv + ["--", request.command, *request.args])


def mcp_spec(request: McpServerRequest, service: str, image: str,
             unit: str = "mcp") -> tuple[LaunchSpec, dict[str, str]]:
    """The bridge's spec, named ``SERVICE-UNIT``, and the proxy variables that carry credentials (for the child, on
    stdin)."""
    from ..backends.docker import free_port
    port = request.sse_port or free_port(request.sse_host)
    spec = LaunchSpec(
        name=f"{service}-{unit}", image=image, command=bridge_command(request, port), role="mcp",
        env={"HOME": "/tmp", "PYTHONUNBUFFERED": "1", "UV_CACHE_DIR": f"{CACHE_TARGET}/uv",
             "npm_config_cache": f"{CACHE_TARGET}/npm", "npm_config_update_notifier": "false"},
        ports=(PortSpec("sse", BRIDGE_PORT, port, request.sse_host),),
        mounts=(MountSpec("volume", CACHE_TARGET, CACHE_VOLUME, purpose="cache"), scratch_mount()),
        labels=service_labels(service, "mcp", model=server_label(request)),
        healthcheck=HealthCheck("/healthz", BRIDGE_PORT, start_period_s=120), network=f"{service}-net",
        read_only_rootfs=True)
    return with_host_trust(spec)


# The child starts from the MCP SDK's minimal environment: what it needs to download itself through a TLS proxy
# (CA bundle, proxies) and to keep what it downloads (caches) is given to it explicitly.
CHILD_KEYS = ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "NODE_EXTRA_CA_CERTS", "PIP_CERT",
              "GIT_SSL_CAINFO", "UV_CACHE_DIR", "npm_config_cache", "npm_config_update_notifier",
              "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy")


def has_secrets(request: McpServerRequest) -> bool:
    return True          # the child's environment always travels on stdin (see CHILD_KEYS)


def secrets(request: McpServerRequest, spec: LaunchSpec | None = None, proxy: dict[str, str] | None = None) -> dict:
    env = {k: v for k, v in {**(spec.env if spec else {}), **(proxy or {})}.items() if k in CHILD_KEYS}
    if env.get("SSL_CERT_FILE"):
        env["UV_SYSTEM_CERTS"] = "1"      # uv: use the platform store, where SSL_CERT_FILE points
    if request.pass_environment:
        env.update(passed_environment())
    env.update(dict(request.env))
    out: dict = {"env": env}
    if request.auth_token:
        out["auth_token"] = request.auth_token
    return out


def warn_exposed(request: McpServerRequest) -> None:
    if "*" in request.allowed_hosts:
        sys.stderr.write(f"{host_check_off_warning(request.allowed_hosts)}\n")
    if request.sse_host not in ("127.0.0.1", "localhost", "::1") and not request.auth_token:
        sys.stderr.write(f"WARNING: the MCP bridge is published on {request.sse_host} without a token: anyone who "
                         "reaches this port can call the server's tools. Use --auth-token (or LAZYLLM_MCP_TOKEN).\n")


def run(request: McpServerRequest) -> None:
    from ..host import host_facts
    from ..resolve import resolve
    plan = resolve(("mcp-bridge",), request.build, host=host_facts())
    launch = LaunchOptions(host=request.sse_host, port=request.sse_port or None, name=request.name,
                           dry_run=request.dry_run, foreground=request.foreground, **request.placement)
    service = service_name(launch, f"lazyllm-mcp-{server_slug(request)}")
    spec, proxy = mcp_spec(request, service, plan.top.ref)
    unit = Unit(spec, stack=plan, secrets=secrets(request, spec, proxy), wrap=False,
                urls=(("sse", "/sse"), ("mcp", "/mcp")))
    if not (request.dry_run or launch.renders):
        warn_exposed(request)
    start(Service(service, (unit,)), launch, request.build, partial(announce, service, request.url_file))


def announce(service: str, url_file: str | None, found: dict[str, str]) -> None:
    if url_file:
        with open(url_file, "w") as out:
            json.dump(found, out)
    print_summary(service, found)


def print_summary(service: str, found: dict[str, str]) -> None:
    print(f"service:   {service}")
    print(f"sse:       {found['sse']}")
    print(f"mcp:       {found['mcp']}")
    print(f"manage:    lazyllm ps | lazyllm logs {service} | lazyllm stop {service}")
