"""Inter-process locks on names (image tags), so concurrent commands wait and then reuse instead of racing.

The locks live where every user of the same engine meets: a folder under /tmp named after the engine's socket
(its real path: two users, or two ``LAZYLLM_HOME``s, that reach one engine share its locks), world-writable with
the sticky bit. ``LAZYLLM_LOCK_DIR`` names another folder (a shared mount, for remote engines).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterator

IMAGES = "images"          # installs hold it shared for their whole build; prune holds it exclusively


def lock_dir() -> Path:
    if os.environ.get("LAZYLLM_LOCK_DIR"):
        return Path(os.environ["LAZYLLM_LOCK_DIR"])
    host = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    if host.startswith("unix://"):
        host = "unix://" + os.path.realpath(host[len("unix://"):])
    digest = hashlib.sha256(host.encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / "lazyllm-locks" / digest


def _shared_folder(path: Path) -> None:
    """Make ``path`` (and its parent) a folder every user can make lock files in (mode 1777)."""
    for folder in (path.parent, path):
        try:
            folder.mkdir(exist_ok=True)
            if folder.stat().st_uid == os.geteuid():
                folder.chmod(0o1777)
        except PermissionError:
            pass


@contextlib.contextmanager
def named_lock(name: str, on_wait: Callable[[], None] | None = None, shared: bool = False) -> Iterator[None]:
    """Hold an flock for ``name`` (exclusive, or ``shared`` with other shared holders); call ``on_wait`` once if
    another process holds it."""
    folder = lock_dir()
    _shared_folder(folder)
    path = folder / (hashlib.sha256(name.encode()).hexdigest()[:24] + ".lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    with contextlib.suppress(PermissionError):
        os.fchmod(fd, 0o666)                # (the umask took write access from other users)
    mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
    try:
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait:
                on_wait()
            while True:
                try:
                    fcntl.flock(fd, mode | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    time.sleep(0.2)
        if not shared:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()} {name}\n".encode())
        yield
    finally:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
