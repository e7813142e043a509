"""What this tool built, read back from image labels: ``lazyllm images`` and ``lazyllm prune``."""

from __future__ import annotations

from . import LABEL_PREFIX
from . import engine


def collect() -> dict:
    images = engine.client().images.list(filters=engine.managed_filter())
    rows = []
    for img in images:
        lab = img.labels or {}
        rows.append({"id": img.short_id.split(":")[-1], "tags": img.tags, "kind": lab.get(f"{LABEL_PREFIX}.kind", ""),
                     "layer": lab.get(f"{LABEL_PREFIX}.layer", lab.get(f"{LABEL_PREFIX}.base", "")),
                     "size": img.attrs.get("Size", 0)})
    return {"images": sorted(rows, key=lambda r: (r["kind"], r["layer"], str(r["tags"])))}


def print_report(report: dict) -> None:
    if not report["images"]:
        print("no images yet (try 'lazyllm images bootstrap' or 'lazyllm install ...')")
        return
    for r in report["images"]:
        print(f"{r['kind']:<6} {r['layer']:<24} {r['size'] / 1e6:>9.1f} MB  {', '.join(r['tags']) or r['id']}")


def prune(dry_run: bool = False, prune_all: bool = False, echo=print) -> None:
    from .errors import NotImplementedYet
    raise NotImplementedYet("lazyllm prune")
