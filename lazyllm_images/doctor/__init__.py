"""``lazyllm doctor``: one check per module, each with ok/warn/fail and the exact fix."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

OK, WARN, FAIL = "ok", "warn", "fail"


@dataclass
class Check:
    name: str
    status: str
    summary: str
    fix: str | None = None
    data: dict = field(default_factory=dict)
    blocking: bool = False          # a failure here means the host cannot build or launch


@dataclass
class Report:
    checks: list[Check]

    @property
    def ok(self) -> bool:
        return not any(c.status == FAIL and c.blocking for c in self.checks)

    def get(self, name: str) -> Check | None:
        return next((c for c in self.checks if c.name == name), None)

    def to_dict(self) -> dict:
        return {"ok": self.ok, "checks": [asdict(c) for c in self.checks]}


def run_checks() -> Report:
    from . import buildkit, devices, disk, engine, gpu_runtime, network, nvidia, targets
    ctx: dict = {}
    checks = []
    for module in (engine, buildkit, nvidia, gpu_runtime, devices, network, disk, targets):
        try:
            checks.append(module.check(ctx))
        except Exception as exc:  # a broken probe is reported, never a crash
            checks.append(Check(module.__name__.rsplit(".", 1)[-1], FAIL, f"check crashed: {exc}",
                                "report this with 'lazyllm --debug doctor'"))
    return Report(checks)


def render(report: Report) -> None:
    from rich.console import Console
    from rich.table import Table
    colour = {OK: "green", WARN: "yellow", FAIL: "red"}
    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    table.add_column("check")
    table.add_column("status")
    table.add_column("finding")
    table.add_column("fix")
    for c in report.checks:
        table.add_row(c.name, f"[{colour[c.status]}]{c.status}[/]", c.summary, c.fix or "")
    console = Console()
    console.print(table)
    console.print("[green]this host can build and launch[/]" if report.ok
                  else "[red]this host cannot build or launch yet: see the fixes above[/]")
