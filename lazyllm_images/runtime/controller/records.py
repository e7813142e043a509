"""One piece of work a client asked for (an inference service, a training job), as the controller keeps it.

Statuses are upstream's strings. ``Pending``: not started (waiting for GPUs: ``reason`` says so); ``Running``: its
container runs (a server not yet healthy, or a job at work); ``Ready``: a server whose health check answers;
``Done``/``Failed``/``Cancelled``: final (``reason`` says why for the last two); ``Suspended``: a paused job.
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass, field

PENDING, RUNNING, READY, DONE, FAILED, CANCELLED, SUSPENDED = (
    "Pending", "Running", "Ready", "Done", "Failed", "Cancelled", "Suspended")
ACTIVE = (PENDING, RUNNING, READY)           # the poll loop looks after these
FINAL = (DONE, FAILED, CANCELLED)            # nothing runs; DELETE removes the record
LAUNCHED = (RUNNING, READY)                  # a container exists (or should): it holds its GPUs

_SLUG = re.compile(r"[^a-z0-9]+")


def new_uid() -> str:
    return secrets.token_hex(6)


def dns_slug(text: str, limit: int = 24) -> str:
    """Lower-case letters, digits and single dashes, at most ``limit`` characters, never empty."""
    return _SLUG.sub("-", text.lower()).strip("-")[:limit].strip("-") or "x"


@dataclass
class Record:
    kind: str                                 # infer | train
    owner: str                                # the token's id (tokens.TokenRing.owner_of), never the token
    name: str                                 # the client's id: service_name (infer), the job id (train)
    spec: dict                                # the request as mapped by the API: nothing raw from the client
    gpus: int = 0                             # how many devices it needs
    uid: str = field(default_factory=new_uid)
    status: str = PENDING
    reason: str = ""
    devices: list[int] = field(default_factory=list)    # the devices it holds while launched
    handle: dict | None = None                # what the launcher needs to find it again (JSON)
    facts: dict = field(default_factory=dict)           # what the launcher decided (framework, served name...)
    extra: dict = field(default_factory=dict)           # per-kind state (progress, checkpoints...)
    log_tail: str = ""                        # the last log lines, kept when its container goes
    created_at: float = field(default_factory=time.time)
    started_at: float | None = None          # its first launch
    launched_at: float | None = None         # its latest launch (a resumed job launches again)
    ready_at: float | None = None
    finished_at: float | None = None

    @property
    def unit_name(self) -> str:
        """A DNS-safe name for its containers: the kind, a slug of the client's name, the uid."""
        return f"lazyllm-{self.kind}-{dns_slug(self.name)}-{self.uid}"

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    @property
    def final(self) -> bool:
        return self.status in FINAL

    def cost(self, now: float | None = None) -> float | None:
        """Seconds it has run (upstream's ``cost``): a suspended job's earlier runs (``extra["ran_s"]``) plus its
        latest launch."""
        if self.started_at is None:
            return None
        end = self.finished_at or (now or time.time())
        if "ran_s" not in self.extra:
            return round(max(0.0, end - self.started_at), 3)
        current = max(0.0, end - self.launched_at) if self.launched_at is not None else 0.0
        return round(self.extra["ran_s"] + current, 3)

    def finish(self, status: str, reason: str = "") -> None:
        self.status, self.reason = status, reason
        self.finished_at = self.finished_at or time.time()
        self.devices = []
