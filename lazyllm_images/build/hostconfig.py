"""The host's configuration for builds, passed in and never baked in.

- the CA bundle (TLS-intercepting proxies): a BuildKit secret ``ca``;
- pip's indexes and credentials: a generated pip.conf as the BuildKit secret ``pipconf`` (only http(s) indexes:
  the host's own paths and constraint files mean nothing inside a build), and the same settings as a uv.toml, the
  secret ``uvconf`` (uv reads no pip.conf; with extra indexes it is told to pick as pip does, the best match over
  every index, so a layer resolves to the versions pip would);
- the host's local wheelhouse folders (find-links): hard links in the layer's build context (``wheels/``);
- proxy variables: Docker's predefined proxy build args (kept out of the image history by the engine).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from ..host import PipSettings, ca_bundle, pip_settings, proxy_env
from ..paths import state_dir


@dataclass(frozen=True)
class HostConfig:
    secrets: dict[str, str]               # secret id -> file on the host
    build_args: dict[str, str]            # proxy variables only
    wheelhouses: tuple[str, ...]
    notes: tuple[str, ...] = ()


def _remote(url: str | None) -> bool:
    return bool(url) and url.startswith(("http://", "https://"))


def _pip_conf_text(s: PipSettings) -> tuple[str, list[str]]:
    lines, notes = ["[global]"], []
    remote = [u for u in s.extra_index_urls if _remote(u)]
    skipped = [u for u in (s.index_url, *s.extra_index_urls) if u and not _remote(u)]
    if _remote(s.index_url):
        lines.append(f"index-url = {s.index_url}")
    if remote:
        lines.append("extra-index-url = " + " ".join(remote))
    if s.trusted_hosts:
        lines.append("trusted-host = " + " ".join(s.trusted_hosts))
    if skipped:
        notes.append(f"host-local package indexes not passed to builds: {', '.join(skipped)}")
    return "\n".join(lines) + "\n", notes


def _uv_toml_text(s: PipSettings) -> str:
    remote = [u for u in s.extra_index_urls if _remote(u)]
    lines = []
    if _remote(s.index_url):
        lines.append(f"index-url = {json.dumps(s.index_url)}")
    if remote:
        lines.append(f"extra-index-url = {json.dumps(remote)}")
        lines.append('index-strategy = "unsafe-best-match"')
    if s.trusted_hosts:
        lines.append(f"allow-insecure-host = {json.dumps(list(s.trusted_hosts))}")
    return "".join(f"{line}\n" for line in lines)


def _write_secret(name: str, text: str) -> str:
    folder = state_dir() / "secrets"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(folder, 0o700)
    path = folder / name
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    return str(path)


def host_config(env: dict[str, str] | None = None) -> HostConfig:
    env = os.environ if env is None else env
    secrets: dict[str, str] = {}
    bundle = ca_bundle(env)
    if bundle:
        secrets["ca"] = bundle
    settings = pip_settings(env)                 # read pip's configuration files once for all three
    text, notes = _pip_conf_text(settings)
    secrets["pipconf"] = _write_secret("pip.conf", text)
    secrets["uvconf"] = _write_secret("uv.toml", _uv_toml_text(settings))
    return HostConfig(secrets=secrets, build_args=proxy_env(env),
                      wheelhouses=tuple(settings.local_find_links()), notes=tuple(notes))


def wheel_files(wheelhouses: tuple[str, ...]) -> list[Path]:
    out: list[Path] = []
    seen: set[str] = set()
    for folder in wheelhouses:
        for path in sorted(Path(folder).glob("*.whl")):
            if path.name not in seen:
                seen.add(path.name)
                out.append(path)
    return out
