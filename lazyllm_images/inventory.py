"""What this tool built, read back from image labels: ``lazyllm images`` (sizes, shared bytes) and ``lazyllm prune``.

Each layer image holds its parent's file-system layers plus its own, so a layer's own bytes are its size minus its
parent's; the disk a set of stacks really uses is the sum of own bytes over the layers they reach.
"""

from __future__ import annotations

from . import LABEL_PREFIX, engine
from .resolve.stack import image_prefix

PARENT = f"{LABEL_PREFIX}.parent"


def _rows() -> list[dict]:
    out = []
    for img in engine.client().images.list(filters=engine.managed_filter()):
        lab = img.labels or {}
        out.append({"id": img.id, "short_id": img.short_id.split(":")[-1], "tags": sorted(img.tags),
                    "kind": lab.get(f"{LABEL_PREFIX}.kind", ""),
                    "layer": lab.get(f"{LABEL_PREFIX}.layer", lab.get(f"{LABEL_PREFIX}.base", "")),
                    "parent": lab.get(PARENT, lab.get("org.opencontainers.image.base.name", "") if
                                      lab.get(f"{LABEL_PREFIX}.layer") == "python" else ""),
                    "size": int(img.attrs.get("Size", 0))})
    return out


def _index(rows: list[dict]) -> dict[str, dict]:
    by_ref = {}
    for r in rows:
        for t in r["tags"]:
            by_ref[t] = r
        by_ref[r["id"]] = r
    return by_ref


def _chain(row: dict, by_ref: dict[str, dict]) -> list[dict]:
    chain, seen = [row], {row["id"]}
    while chain[-1]["parent"] and chain[-1]["parent"] in by_ref and by_ref[chain[-1]["parent"]]["id"] not in seen:
        nxt = by_ref[chain[-1]["parent"]]
        chain.append(nxt)
        seen.add(nxt["id"])
    return chain


def collect() -> dict:
    rows = _rows()
    by_ref = _index(rows)
    for r in rows:
        parent = by_ref.get(r["parent"]) if r["parent"] else None
        r["own_bytes"] = r["size"] - parent["size"] if parent else r["size"]
    stack_repo = f"{image_prefix()}/stack:"
    stacks, reached = [], {}
    for r in rows:
        for tag in r["tags"]:
            if tag.startswith(stack_repo):
                chain = _chain(r, by_ref)
                stacks.append({"tag": tag, "image": r["short_id"], "size": r["size"],
                               "layers": [c["layer"] for c in reversed(chain)]})
                reached.update({c["id"]: c for c in chain})
    logical = sum(s["size"] for s in stacks)
    actual = sum(c["own_bytes"] for c in reached.values())
    layers = [{k: r[k] for k in ("short_id", "tags", "kind", "layer", "parent", "size", "own_bytes")}
              for r in sorted(rows, key=lambda r: (r["kind"], r["layer"], r["tags"])) if r["tags"]]
    return {"stacks": sorted(stacks, key=lambda s: s["tag"]), "layers": layers,
            "totals": {"stacks": len(stacks), "logical_bytes": logical, "disk_bytes": actual,
                       "shared_bytes": logical - actual, "untagged_images": sum(1 for r in rows if not r["tags"])}}


def print_report(report: dict) -> None:
    from rich.console import Console
    from rich.table import Table
    console = Console(highlight=False)
    if not report["layers"]:
        console.print("no images yet (try 'lazyllm images bootstrap' or 'lazyllm install ...')")
        return
    table = Table(box=None, header_style="bold", title="stacks", title_justify="left")
    for col in ("stack", "size", "layers"):
        table.add_column(col)
    for s in report["stacks"]:
        table.add_row(s["tag"], f"{s['size'] / 1e6:,.0f} MB", " > ".join(s["layers"]))
    console.print(table)
    table = Table(box=None, header_style="bold", title="layers", title_justify="left")
    for col in ("kind", "layer", "image", "size", "own"):
        table.add_column(col)
    for r in report["layers"]:
        table.add_row(r["kind"], r["layer"], ", ".join(r["tags"]) or r["short_id"], f"{r['size'] / 1e6:,.0f} MB",
                      f"{r['own_bytes'] / 1e6:,.0f} MB")
    console.print(table)
    t = report["totals"]
    console.print(f"{t['stacks']} stacks: {t['logical_bytes'] / 1e6:,.0f} MB as separate images, "
                  f"{t['disk_bytes'] / 1e6:,.0f} MB on disk, {t['shared_bytes'] / 1e6:,.0f} MB shared")
    if t["untagged_images"]:
        console.print(f"{t['untagged_images']} untagged leftovers of earlier builds: 'lazyllm prune' removes them")


def _in_use() -> set[str]:
    return {c.attrs.get("Image", "") for c in engine.client().containers.list(all=True)}


def prune(dry_run: bool = False, prune_all: bool = False, echo=print) -> list[str]:
    """Remove layer images no stack tag reaches (with --all: stacks and their layers too), never a base, never an
    image a container uses, never anything without the tool's labels; never while an install is building (its
    new layers are not tagged into a stack yet)."""
    from .locks import IMAGES, named_lock
    with named_lock(IMAGES, on_wait=lambda: echo("waiting for the installs in progress to finish")):
        return _prune(dry_run, prune_all, echo)


def _prune(dry_run: bool, prune_all: bool, echo) -> list[str]:
    rows = _rows()
    by_ref = _index(rows)
    keep: set[str] = set()
    stack_repo = f"{image_prefix()}/stack:"
    if not prune_all:
        for r in rows:
            if any(t.startswith(stack_repo) for t in r["tags"]):
                keep.update(c["id"] for c in _chain(r, by_ref))
    used = _in_use()
    removed = []
    client = engine.client()
    for r in rows:
        if r["kind"] != "layer" or r["id"] in keep:
            continue
        if r["id"] in used:
            echo(f"kept {', '.join(r['tags']) or r['short_id']}: a container uses it")
            continue
        what = ", ".join(r["tags"]) or r["short_id"]
        echo(f"{'would remove' if dry_run else 'removed'} {what} ({r['size'] / 1e6:,.0f} MB)")
        if not dry_run:
            for tag in r["tags"] or [r["id"]]:
                try:
                    client.images.remove(tag, force=False)
                except Exception as exc:  # a child image still needs it: leave it
                    echo(f"  left {tag}: {str(exc).splitlines()[0][:120]}")
        removed.append(what)
    if not removed:
        echo("nothing to prune")
    return removed


def prune_volumes(dry_run: bool = False, echo=print) -> list[str]:
    """``prune --volumes``: the tool's volumes (the hub cache, RAG indexes, MCP caches) that no container uses.
    Never a volume without the tool's labels; never part of a plain ``prune`` (weights take long to download)."""
    client = engine.client()
    used = {m.get("Name") for c in client.containers.list(all=True) for m in c.attrs.get("Mounts") or []
            if m.get("Type") == "volume"}
    removed = []
    for volume in client.volumes.list(filters=engine.managed_filter()):
        purpose = (volume.attrs.get("Labels") or {}).get(f"{LABEL_PREFIX}.purpose", "")
        if volume.name in used:
            echo(f"kept volume {volume.name} ({purpose}): a container uses it")
            continue
        echo(f"{'would remove' if dry_run else 'removed'} volume {volume.name} ({purpose})")
        if not dry_run:
            volume.remove()
        removed.append(volume.name)
    return removed
