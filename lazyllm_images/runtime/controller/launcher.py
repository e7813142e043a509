"""What the controller asks of whatever runs the work: the ``Launcher`` protocol.

The controller decides *what* and *when* (records, owners, the GPU queue, statuses); a launcher only starts,
probes, lists, stops and reads the logs of one unit per record. The real one (``infer.engine_launcher``) starts
``lazyllm deploy``'s model-server unit on the local engine; the tests' one runs a small HTTP server process.
Servers and jobs alike: a server's probe says ``ready`` once its health URL answers, a job's says ``exited`` with
its exit code when it ends.

Handles are plain JSON (stored with the record): everything a launcher needs to find the unit again after a
controller restart.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from .records import Record

STARTING, RUNNING, READY, EXITED, MISSING = "starting", "running", "ready", "exited", "missing"


class Refused(Exception):
    """The launcher cannot run this request (a missing stack, an unreadable model, a framework that needs a GPU);
    ``status`` is the HTTP status the API answers with, ``code`` the error code."""

    def __init__(self, message: str, code: str = "refused", status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


@dataclass(frozen=True)
class Probe:
    state: str                      # running (not healthy yet, or a job at work) | ready | exited | missing
    exit_code: int | None = None
    detail: str = ""                # why, in words (the health check's answer, the engine's state)
    info: dict | None = None        # what the unit reports of itself, kept in the record's ``extra`` (progress)


class LogStream(Protocol):
    """Log lines (without their newline), oldest first; ``close()`` from another thread ends a follow."""

    def __iter__(self) -> Iterator[str]: ...

    def close(self) -> None: ...


class Launcher(Protocol):
    def prepare(self, record: Record) -> dict:
        """Check the request can run here and decide what the launch will be, before the record is stored:
        returns facts to keep with the record (``framework``, ``served_name``, ``api_base``...). Refused."""

    def launch(self, record: Record) -> dict:
        """Start the unit for RECORD (``record.devices`` are its GPUs); the handle. Raises on failure, leaving
        nothing behind."""

    def probe(self, handle: dict) -> Probe:
        """Where the unit stands now (never raises for a unit that is gone: ``missing``)."""

    def stop(self, handle: dict) -> None:
        """Stop and remove the unit; nothing when it is gone already."""

    def list_running(self) -> dict[str, dict]:
        """The units this controller started that exist now, found by label: record uid -> what the label says."""

    def logs(self, handle: dict, follow: bool = False, tail: int | None = None) -> LogStream:
        """Its log lines: the last TAIL (all when None), then, with FOLLOW, new ones until it stops."""


class ListStream:
    """A LogStream over lines already read."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines

    def __iter__(self) -> Iterator[str]:
        return iter(self.lines)

    def close(self) -> None:
        pass
