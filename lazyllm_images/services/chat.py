"""The web chat page as a container: the same page for `deploy --chat=true` and `run chatbot`."""

from __future__ import annotations

from ..launch.spec import HealthCheck, LaunchSpec, PortSpec, scratch_mount, service_labels

CHAT_PORT = 8000
API_KEY_FILE = "/tmp/lazyllm/api-key"          # the upstream's key (an online API, or the RAG service's token)
AUTH_TOKEN_FILE = "/tmp/lazyllm/auth-token"    # the token this service asks of its own clients


def api_key_secrets(key: str) -> dict:
    return {"files": {API_KEY_FILE: key}}


def file_secrets(*pairs: tuple[str, str | None]) -> dict | None:
    """``{"files": {path: text}}`` for the pairs with a value (written into the container's tmpfs at start)."""
    files = {path: text for path, text in pairs if text}
    return {"files": files} if files else None


def warn_exposed(what: str, host: str, token: str | None, can: str) -> None:
    """The loud warning for a service published beyond loopback without a token (the CLI side of the one the
    service prints itself, which sees only its bind address inside the container)."""
    from ..runtime.netaddr import exposure_warning, shout
    shout(exposure_warning(what, host, token, "Use --auth-token (or LAZYLLM_AUTH_TOKEN).", can))


def chat_spec(service: str, image: str, upstream: str, model: str, *, host_ip: str = "127.0.0.1",
              host_port: int | None = None, default_params: list[str] | None = None, network: str | None = None,
              api_key: bool = False, title: str | None = None, depends_on: tuple[str, ...] = (),
              extra_labels: dict | None = None, auth: bool = False) -> LaunchSpec:
    """``api_key``: the page reads the upstream's key from ``API_KEY_FILE``; ``auth``: it asks its own users for
    the token in ``AUTH_TOKEN_FILE``. Both are files the launcher writes into the container's tmpfs through
    runtime.secret_exec (``file_secrets``)."""
    command = ["python3", "-m", "lazyllm_images.runtime.chat", "--upstream", upstream, "--model", model,
               "--host", "0.0.0.0", "--port", str(CHAT_PORT)]
    for param in default_params or []:
        command += ["--default-param", param]
    if title:
        command += ["--title", title]
    mounts = [scratch_mount()]
    if api_key:
        command += ["--api-key-file", API_KEY_FILE]
    if auth:
        command += ["--auth-token-file", AUTH_TOKEN_FILE]
    return LaunchSpec(
        name=f"{service}-chat", image=image, command=tuple(command), role="chat",
        env={"HOME": "/tmp", "PYTHONUNBUFFERED": "1"},
        ports=(PortSpec("chat", CHAT_PORT, host_port, host_ip),), mounts=tuple(mounts),
        labels=service_labels(service, "chat", model=model, **(extra_labels or {})),
        healthcheck=HealthCheck("/healthz", CHAT_PORT, start_period_s=60), network=network,
        read_only_rootfs=True, depends_on=depends_on)
