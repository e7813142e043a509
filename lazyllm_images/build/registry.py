"""Prebuilt layers in a registry, found by content tag: pull before building, push after."""

from __future__ import annotations

from .. import engine
from ..errors import BuildError
from ..plan import PlannedLayer


def remote_ref(registry: str, local_ref: str) -> str:
    """``lazyllm/torch:abc`` in ``127.0.0.1:5000/team`` -> ``127.0.0.1:5000/team/lazyllm/torch:abc``."""
    return f"{registry.rstrip('/')}/{local_ref}"


def _split(ref: str) -> tuple[str, str]:
    repo, _, tag = ref.rpartition(":")
    if "/" in tag:                      # a registry port, no tag
        return ref, "latest"
    return repo, tag


def try_pull(registry: str, layer: PlannedLayer) -> bool:
    """Pull the layer's content tag from the registry when it is there; tag it locally. False when absent."""
    import docker.errors
    remote = remote_ref(registry, layer.ref)
    repo, tag = _split(remote)
    client = engine.client()
    try:
        image = client.images.pull(repo, tag=tag)
    except docker.errors.NotFound:
        return False
    except docker.errors.APIError as exc:
        text = str(exc)
        if "not found" in text or "manifest unknown" in text:
            return False
        raise BuildError(f"registry {registry} failed for {layer.name}: {exc.explanation or text}",
                         "check the registry address, or use --offline to build locally") from exc
    local_repo, local_tag = _split(layer.ref)
    image.tag(local_repo, local_tag)
    return True


def push(registry: str, local_ref: str) -> str:
    client = engine.client()
    remote = remote_ref(registry, local_ref)
    repo, tag = _split(remote)
    client.images.get(local_ref).tag(repo, tag)
    for event in client.images.push(repo, tag=tag, stream=True, decode=True):
        if "error" in event:
            raise BuildError(f"push of {remote} failed: {event['error']}",
                             "check that the registry is reachable and accepts pushes")
    return remote
