"""What a container that reaches the internet gets from the host: its CA bundle (TLS-intercepting proxies) and its
proxy settings. A proxy URL with credentials in it (``http://user:pass@proxy:3128``) is a secret: it travels on
stdin with the unit's other secrets, never in the container's config, ``docker inspect`` or a label."""

from __future__ import annotations

import os
import urllib.parse
from dataclasses import replace

from ..launch.spec import LaunchSpec, MountSpec

CA_TARGET = "/etc/lazyllm/ca.crt"
CA_VARIABLES = ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "NODE_EXTRA_CA_CERTS", "PIP_CERT",
                "GIT_SSL_CAINFO")


def has_credentials(value: str) -> bool:
    try:
        parts = urllib.parse.urlsplit(value if "://" in value else f"http://{value}")
    except ValueError:
        return False
    return bool(parts.username or parts.password)


def split_secret(env: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """(public, secret): values that carry credentials are secret."""
    public = {k: v for k, v in env.items() if not has_credentials(v)}
    return public, {k: v for k, v in env.items() if k not in public}


def with_host_trust(spec: LaunchSpec) -> tuple[LaunchSpec, dict[str, str]]:
    """For containers that reach the internet (online APIs, servers that download themselves): the spec with the
    host's CA bundle read-only and its proxy variables, and the proxy variables that carry credentials, for the
    unit's secrets on stdin."""
    from ..host import ca_bundle, proxy_env
    public, secret = split_secret(proxy_env())
    env = {**public, **spec.env}
    mounts = spec.mounts
    bundle = ca_bundle()
    if bundle:
        mounts = mounts + (MountSpec("bind", CA_TARGET, os.path.realpath(bundle), read_only=True, purpose="ca"),)
        env.update({k: CA_TARGET for k in CA_VARIABLES})
    return replace(spec, env=env, mounts=mounts), secret


def with_secret_env(secrets: dict | None, env: dict[str, str]) -> dict | None:
    """A unit's secrets with more environment variables for stdin."""
    if not env:
        return secrets
    out = dict(secrets or {})
    out["env"] = {**(out.get("env") or {}), **env}
    return out
