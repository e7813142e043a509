"""Keep secrets out of everything the bridge writes: each secret value becomes ``***``.

``install`` wraps ``sys.stdout`` and ``sys.stderr``, so log lines, tracebacks, warnings and the child's relayed
stderr all pass through the same filter.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from typing import TextIO
from collections.abc import Iterable

MASK = "***"
MIN_SECRET_LEN = 4     # shorter values ("1", "on") are not secrets and would shred every log line


class Redactor:
    """Replace every occurrence of the given secret values (and their JSON-escaped forms) by ``***``."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        forms: set[str] = set()
        for value in secrets:
            if value and len(value) >= MIN_SECRET_LEN:
                forms.add(value)
                forms.add(json.dumps(value)[1:-1])          # as it appears inside a JSON string
        ordered = sorted(forms, key=len, reverse=True)     # longest first: no partial leftovers
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def __bool__(self) -> bool:
        return self._pattern is not None

    def __call__(self, text: str) -> str:
        if self._pattern is None or not text:
            return text
        return self._pattern.sub(MASK, text)


class RedactingStream:
    """A text stream that redacts what is written to it, then writes to the wrapped stream."""

    def __init__(self, inner: TextIO, redactor: Redactor) -> None:
        self._inner = inner
        self._redact = redactor

    def write(self, text: str) -> int:
        self._inner.write(self._redact(text))
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        self._inner.flush()

    def isatty(self) -> bool:
        return self._inner.isatty()

    def fileno(self) -> int:
        return self._inner.fileno()

    @property
    def encoding(self) -> str:
        return getattr(self._inner, "encoding", "utf-8")


def install(redactor: Redactor) -> None:
    """Route this process's stdout and stderr through REDACTOR (no-op without secrets)."""
    if redactor:
        sys.stdout = RedactingStream(sys.stdout, redactor)  # type: ignore[assignment]
        sys.stderr = RedactingStream(sys.stderr, redactor)  # type: ignore[assignment]


def setup_logging(level: str) -> None:
    """Log lines go to (the redacting) stderr; uvicorn's loggers propagate here (its own config is off)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    quiet = logging.WARNING if level != "debug" else logging.DEBUG
    for name in ("mcp", "sse_starlette", "httpx"):
        logging.getLogger(name).setLevel(max(quiet, root.level))
    logging.getLogger("mcp.server.streamable_http").addFilter(_drop_closed_stream_noise)


def _drop_closed_stream_noise(record: logging.LogRecord) -> bool:
    """SDK 1.x logs a traceback when a client ends a session (DELETE) while its GET stream is open: not an error."""
    exc = record.exc_info[1] if record.exc_info else None
    return not (record.getMessage() == "Error in standalone SSE writer"
                and type(exc).__name__ in ("ClosedResourceError", "BrokenResourceError"))
