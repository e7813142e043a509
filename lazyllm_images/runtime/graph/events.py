"""Run events, handed to the ``on_event`` callback as plain JSON-ready dicts (the SSE stream sends them as is).

Every event has ``type``, ``run_id`` and ``t`` (seconds since the run started). Types and their other fields:
- ``run_started``: ``inputs`` (the output form of the arguments)
- ``node_started``: ``node_id``, ``name``, ``kind``, ``path``, ``parent`` (the enclosing flow node's id, or None)
- ``node_finished``: the same plus ``elapsed_ms``
- ``node_failed``: the same plus ``elapsed_ms`` and ``error`` (``NodeError.as_dict()``)
- ``text_delta``: ``node_id``, ``name``, ``delta`` (streaming model output)
- ``log``: ``node_id``, ``name``, ``text`` (what a Code node printed)
- ``warning``: ``message``, and ``node_id``/``path`` when it is about a node
- ``run_finished``: ``ok``, ``elapsed_ms``, and ``result`` (output form) or ``error``
The callback is called under a lock, in order; it should return quickly.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

EventCallback = Callable[[dict], None]
log = logging.getLogger("lazyllm.graph")


class EventSink:
    def __init__(self, callback: EventCallback | None, run_id: str) -> None:
        self.callback = callback
        self.run_id = run_id
        self.started = time.monotonic()
        self._lock = threading.Lock()

    def emit(self, type_: str, **fields: Any) -> None:
        if self.callback is None:
            return
        event = {"type": type_, "run_id": self.run_id, "t": round(time.monotonic() - self.started, 6), **fields}
        with self._lock:
            try:
                self.callback(event)
            except Exception:
                log.exception("the event callback failed on a %s event", type_)
