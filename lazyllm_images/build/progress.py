"""What the user sees while a stack builds: a live table per layer on a terminal, one line per change
elsewhere (CI logs), BuildKit's own output with --verbose, and the final table."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from ..plan import Plan


@dataclass
class Row:
    name: str
    ref: str
    state: str = "waiting"
    how: str = ""
    started: float | None = None
    seconds: float | None = None
    size: int | None = None
    extra: dict = field(default_factory=dict)


class Progress:
    def __init__(self, plan: Plan, verbose: bool = False):
        from rich.console import Console
        self.console = Console(stderr=True, highlight=False)
        self.verbose = verbose
        self.rows = {layer.name: Row(layer.name, layer.ref) for layer in plan.layers}
        self.live = None

    def __enter__(self) -> "Progress":
        if self.console.is_terminal and not self.verbose:
            from rich.live import Live
            self.live = Live(self._table(), console=self.console, refresh_per_second=4, transient=True,
                             get_renderable=self._table)
            self.live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self.live is not None:
            live, self.live = self.live, None
            live.__exit__(*exc)

    def _table(self):
        from rich.table import Table
        table = Table(box=None, header_style="bold", pad_edge=False)
        for col in ("layer", "state", "time"):
            table.add_column(col)
        now = time.monotonic()
        for r in self.rows.values():
            secs = r.seconds if r.seconds is not None else (now - r.started if r.started else None)
            table.add_row(r.name, r.state, f"{secs:5.1f}s" if secs is not None else "")
        return table

    def start(self, name: str, state: str) -> None:
        row = self.rows[name]
        row.state, row.started = state, row.started or time.monotonic()
        if self.live is None:
            self.console.print(f"[{name}] {state}", markup=False)

    def finish(self, name: str, how: str, size: int | None = None) -> None:
        row = self.rows[name]
        row.how, row.size = how, size
        row.seconds = time.monotonic() - row.started if row.started else 0.0
        row.state = how
        if self.live is None:
            self.console.print(f"[{name}] {how} ({row.seconds:.1f}s)", markup=False)

    def fail(self, name: str, why: str) -> None:
        row = self.rows[name]
        row.state = f"[red]failed[/]: {why}"
        row.seconds = time.monotonic() - row.started if row.started else 0.0

    def output(self, line: str) -> None:
        if self.verbose:
            self.console.print(line, markup=False, highlight=False)

    def note(self, text: str) -> None:
        self.console.print(text)

    def final_table(self, stack_tag: str) -> None:
        from rich.console import Console
        from rich.table import Table
        table = Table(box=None, header_style="bold", pad_edge=False)
        for col in ("layer", "image", "size", "time", "how"):
            table.add_column(col)
        for r in self.rows.values():
            size = f"{r.size / 1e6:8.1f} MB" if r.size is not None else ""
            table.add_row(r.name, r.ref, size, f"{r.seconds or 0:5.1f}s", r.how)
        out = Console(highlight=False)
        out.print(table)
        out.print(f"image: [bold]{stack_tag}[/]")
