"""The GPUs the controller may hand out, and who holds which.

The controller is told the host's devices (``--gpus 4`` = 0..3, ``--gpus 0,2`` = those, ``--gpus none``); each
launched record holds concrete device indexes, so two services never share one (``docker --gpus 2`` alone would
give both the first two). A request bigger than the whole pool can never run (409); one bigger than what is free
waits, first come first served.
"""

from __future__ import annotations

from .records import Record


def parse_devices(text: str | None) -> tuple[int, ...]:
    """``--gpus`` of the controller: none | N | i,j,... -> the device indexes. ValueError when unreadable."""
    word = (text or "none").strip().lower()
    if word in ("none", "", "0"):
        return ()
    if word.isdigit():
        return tuple(range(int(word)))
    body = word.removeprefix("device=")
    items = [p.strip() for p in body.split(",") if p.strip()]
    if not items or not all(p.isdigit() for p in items):
        raise ValueError(f"--gpus {text!r}: write none, a count (4) or device indexes (0,2,3)")
    found = tuple(int(p) for p in items)
    if len(set(found)) != len(found):
        raise ValueError(f"--gpus {text!r} names a device twice")
    return found


class GpuPool:
    def __init__(self, devices: tuple[int, ...]) -> None:
        self.devices = tuple(devices)

    @property
    def total(self) -> int:
        return len(self.devices)

    def free(self, records: list[Record]) -> list[int]:
        taken = {d for r in records for d in r.devices}
        return [d for d in self.devices if d not in taken]

    def never_fits(self, count: int) -> str | None:
        if count <= self.total:
            return None
        have = f"{self.total} GPU{'s' if self.total != 1 else ''}" if self.total else "no GPU"
        return f"it asks for {count} GPU{'s' if count != 1 else ''} and this controller has {have}"

    def take(self, count: int, records: list[Record]) -> list[int] | None:
        """COUNT free devices (lowest first), or None when fewer are free."""
        free = self.free(records)
        return free[:count] if len(free) >= count else None

    def waiting_reason(self, count: int, records: list[Record], ahead: int = 0) -> str:
        """Why a request waits: counts only (another owner's names are not this owner's business)."""
        holders = len({r.uid for r in records if r.devices})
        text = (f"waiting for {count} GPU{'s' if count != 1 else ''}: {len(self.free(records))} of {self.total} "
                f"free, {holders} held by running work")
        if ahead:
            text += f"; {ahead} request{'s' if ahead != 1 else ''} ahead in the queue"
        return text
