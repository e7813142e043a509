"""A job's volume: its checkpoints, progress, result and log, labelled with the controller and the record.

The controller never mounts a job's volume (it cannot: it runs in a container of its own). It writes the job's
files and reads what the trainer wrote through the engine's archive calls: on the job's container while there is
one, else on a helper container that is created with the volume mounted and never started. Everything made here
carries the tool's labels, so ``lazyllm stop`` and ``prune`` see it.
"""

from __future__ import annotations

import io
import json
import tarfile
import time

from ... import LABEL_PREFIX
from ..controller.containers import CONTROLLER_LABEL, RECORD_LABEL

WORK = "/var/lib/lazyllm"          # owned by uid 10001 in every image: a new volume mounted there is too
OWNER_UID = 10001
MAX_READ = 64 * 1024 * 1024


def _client():
    from ... import engine
    return engine.client()


def _labels(kind: str, **extra: str) -> dict[str, str]:
    from ... import engine
    return engine.runtime_labels(kind, **extra)


def ensure(name: str, instance: str, uid: str) -> None:
    """The job's volume, made with the labels when missing."""
    if not exists(name):
        labels = {**_labels("volume", purpose="train-work"), CONTROLLER_LABEL: instance, RECORD_LABEL: uid}
        _client().volumes.create(name, labels=labels)


def exists(name: str) -> bool:
    import docker.errors
    try:
        _client().volumes.get(name)
        return True
    except docker.errors.NotFound:
        return False


def remove(name: str) -> None:
    import docker.errors
    try:
        _client().volumes.get(name).remove(force=True)
    except docker.errors.NotFound:
        pass


def tar_of(files: dict[str, bytes]) -> bytes:
    """FILES (relative path -> bytes) as a tar owned by the containers' user, folders included."""
    out = io.BytesIO()
    now = time.time()
    with tarfile.open(fileobj=out, mode="w") as tar:
        folders = sorted({"/".join(p.split("/")[:i]) for p in files for i in range(1, p.count("/") + 1)})
        for folder in folders:
            info = tarfile.TarInfo(folder)
            info.type, info.mode, info.uid, info.gid, info.mtime = tarfile.DIRTYPE, 0o755, OWNER_UID, OWNER_UID, now
            tar.addfile(info)
        for path, data in files.items():
            info = tarfile.TarInfo(path)
            info.size, info.mode, info.uid, info.gid, info.mtime = len(data), 0o644, OWNER_UID, OWNER_UID, now
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def untar_one(chunks) -> bytes:
    """The single file of a ``get_archive`` stream."""
    data = b"".join(chunks)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        member = next((m for m in tar.getmembers() if m.isfile()), None)
        if member is None:
            return b""
        handle = tar.extractfile(member)
        return handle.read(MAX_READ) if handle else b""


class Helper:
    """A container created (never started) with the volume at WORK, for the engine's archive calls."""

    def __init__(self, image: str, volume: str, read_only: bool = False) -> None:
        self.image, self.volume, self.read_only = image, volume, read_only
        self.container = None

    def __enter__(self):
        self.container = _client().containers.create(
            self.image, command=["true"], user=f"{OWNER_UID}:{OWNER_UID}", network_disabled=True,
            volumes={self.volume: {"bind": WORK, "mode": "ro" if self.read_only else "rw"}},
            labels={**_labels("helper", role="training"), f"{LABEL_PREFIX}.volume": self.volume})
        return self.container

    def __exit__(self, *exc) -> None:
        try:
            self.container.remove(force=True)
        except Exception:  # noqa: BLE001 - gone already
            pass


def put(container, files: dict[str, bytes]) -> None:
    container.put_archive(WORK, tar_of(files))


def get(container, name: str) -> bytes | None:
    """WORK/NAME from CONTAINER (running, stopped or never started); None when it is not there."""
    import docker.errors
    try:
        stream, _ = container.get_archive(f"{WORK}/{name}")
    except docker.errors.NotFound:
        return None
    return untar_one(stream)


def get_json(container, name: str) -> dict | None:
    raw = get(container, name)
    try:
        data = json.loads(raw) if raw else None
    except ValueError:
        return None
    return data if isinstance(data, dict) else None
