"""Inter-process locks on names (image tags), so concurrent commands wait and then reuse instead of racing."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import time
from typing import Callable, Iterator

from .paths import state_dir


@contextlib.contextmanager
def named_lock(name: str, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    """Hold an exclusive flock for ``name``; call ``on_wait`` once if another process holds it."""
    folder = state_dir() / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (hashlib.sha256(name.encode()).hexdigest()[:24] + ".lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait:
                on_wait()
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    time.sleep(0.2)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {name}\n".encode())
        yield
    finally:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
