"""``--foreground``: stay attached to a service started by ``backends.docker.up``, stream its primary container's
logs, and remove everything on Ctrl-C, SIGTERM or the primary's end."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from typing import Callable, Iterator

from ..errors import LaunchError
from .docker import remove


@contextlib.contextmanager
def interrupts_as_flag() -> Iterator[threading.Event]:
    """Within: Ctrl-C and SIGTERM only set the yielded event. A KeyboardInterrupt raised at an arbitrary point can
    land inside a lazy import (a half-imported ``requests`` then breaks every later docker-py call, the removal
    included) or between two engine calls; a flag is read where stopping is safe."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _stream_logs(primary) -> None:
    try:
        for chunk in primary.logs(stream=True, follow=True):
            sys.stdout.write(chunk.decode(errors="replace"))
            sys.stdout.flush()
    except Exception:       # the container was removed under the stream: the end of it
        pass


def hand_over(containers, primary, service: str, announce: Callable[[], None], foreground: bool) -> None:
    """The end of every launch: print the service's summary (``announce``) and return, or with ``--foreground``
    stay attached (``attend``)."""
    if foreground:
        attend(containers, primary, service, announce)
    else:
        announce()


def attend(containers, primary, service: str, announce: Callable[[], None]) -> None:
    """``--foreground``: announce the service, stream the primary container's logs until Ctrl-C, SIGTERM or its
    end, then remove every container and the network, and say so. Signals only set a flag from the start, so an
    early Ctrl-C (even while the summary prints) still removes everything, and a second one cannot cut the
    removal short. The logs stream on a thread: signals never interrupt its imports or reads. A primary that
    fails on its own (``describe_end``) is an error, raised after the removal."""
    reader = threading.Thread(target=_stream_logs, args=(primary,), daemon=True)
    ended = None
    with interrupts_as_flag() as stop:
        try:
            announce()
            sys.stdout.flush()
            reader.start()
            while reader.is_alive() and not stop.wait(0.2):
                pass
            ended = None if stop.is_set() else describe_end(_state(primary))
        finally:
            remove(containers, service)
            if reader.is_alive():
                reader.join(timeout=2)
    sys.stdout.flush()
    print(f"stopped {service}" + ("" if ended is None else f" ({primary.name} {ended[0]})"), flush=True)
    if ended and ended[1]:
        raise LaunchError(f"{primary.name} {ended[0]}", "see its log lines above")


SIGNALLED = (130, 137, 143)     # 128 + SIGINT, SIGKILL, SIGTERM: stopped by someone (docker stop, lazyllm stop)


def describe_end(state: dict | None) -> tuple[str, bool]:
    """How a container ended (its inspected ``State``; None: it is gone), and whether that is a failure: a
    non-zero exit of its own, or the OOM killer. A stop by signal is not."""
    if state is None:
        return "was removed by another command", False
    if state.get("OOMKilled"):
        return "was killed: out of memory", True
    code = state.get("ExitCode")
    return f"exited with code {code}", code not in (0, *SIGNALLED)


def _state(container) -> dict | None:
    try:
        container.reload()
    except Exception:
        return None
    return container.attrs.get("State", {})


