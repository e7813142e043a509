"""Incremental indexing: a pass compares the documents folder with the store, re-chunks and re-embeds only the
files whose content changed (vectors of unchanged chunk texts are reused), drops removed files, and swaps in a new
in-memory snapshot. ``watch.Watcher`` runs the passes."""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .chunking import chunk_document, text_hash
from .embeddings import Embedder
from .loaders import DEFAULT_MAX_FILE_BYTES, TOO_LARGE, SkipFile, is_supported, load_text, read_file, scan
from .progress import Progress
from .retrieve import Snapshot
from .store import ChunkRow, FileRecord, Store

log = logging.getLogger("lazyllm.rag")


@dataclass
class PassSummary:
    added: int = 0
    changed: int = 0
    removed: int = 0
    unchanged: int = 0
    skipped: int = 0
    chunks_embedded: int = 0
    chunks_reused: int = 0
    seconds: float = 0.0
    error: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)


class _BeingWritten(Exception):
    """The file changed while it was read: leave it for the next pass."""


@dataclass
class _Prepared:
    """A file read and chunked in this pass, waiting for its vectors."""
    record: FileRecord
    chunks: list[ChunkRow] = field(default_factory=list)


class Indexer:
    def __init__(self, root: Path, store: Store, embedder: Embedder, chunk_size: int = 800,
                 chunk_overlap: int = 120, batch_size: int = 32,
                 max_file_bytes: int = DEFAULT_MAX_FILE_BYTES) -> None:
        self.root = root
        self.max_file_bytes = max_file_bytes
        self._links: dict[str, str] = {}  # symbolic links in the folder, never followed (each warned about once)
        self.store = store
        self.embedder = embedder
        self.chunk_size = chunk_size
        self.chunk_overlap = chunk_overlap
        self.batch_size = batch_size
        self.progress = Progress()
        why = store.reconcile(getattr(embedder, "model", "custom"), f"v1:{chunk_size}:{chunk_overlap}")
        if why:
            log.info("index: %s", why)
        self._rows: dict[str, list[ChunkRow]] = {}
        self._skipped = {r.path: r.reason or "skipped" for r in store.files().values() if r.status == "skipped"}
        for row in store.chunks():
            self._rows.setdefault(row.path, []).append(row)
        self.snapshot = Snapshot(self._all_rows())
        self.passes = 0
        self.last: PassSummary | None = None
        self._pass_lock = threading.Lock()
        self._dirty = False  # _rows changed since the snapshot was built

    # -- one pass ---------------------------------------------------------------------------------------------
    def run_pass(self) -> PassSummary:
        with self._pass_lock:
            summary = PassSummary()
            start = time.perf_counter()
            try:
                self._pass(summary)
            except Exception as exc:  # files finished before the failure stay indexed and searchable
                summary.error = f"{type(exc).__name__}: {exc}"
                log.error("indexing pass failed (will retry): %s", summary.error)
                raise
            finally:
                if self._dirty:
                    self.snapshot = Snapshot(self._all_rows())
                    self._dirty = False
                summary.seconds = round(time.perf_counter() - start, 3)
                self.last = summary
                self.progress.finish(summary.error)
            self._log_pass(summary)
            self.passes += 1
            return summary

    def _pass(self, summary: PassSummary) -> None:
        known = self.store.files()
        on_disk = self._stat_all()
        removed = sorted(set(known) - set(on_disk))
        candidates = [p for p, st in on_disk.items() if _needs_look(known.get(p), st, self.max_file_bytes)]
        summary.unchanged = len(on_disk) - len(candidates)
        # vectors of removed files stay reusable in this pass: a moved or renamed file is not embedded again
        reusable = {row.text_hash: row.vector for p in removed for row in self._rows.get(p, [])}
        if removed:
            self.store.remove(removed)
            self._dirty = True
            for p in removed:
                self._rows.pop(p, None)
                self._skipped.pop(p, None)
                log.info("removed: %s", p)
            summary.removed = len(removed)
        self.progress.start(len(candidates))
        prepared = [item for p in candidates if (item := self._prepare(p, on_disk[p], known.get(p), summary))]
        self._embed(prepared, summary, reusable)

    def _log_pass(self, s: PassSummary) -> None:
        level = logging.INFO if s.added or s.changed or s.removed or s.skipped or self.passes == 0 else logging.DEBUG
        log.log(level, "index pass: %d added, %d changed, %d removed, %d unchanged, %d skipped; %d chunks embedded, "
                "%d reused; %d chunks in %d files", s.added, s.changed, s.removed, s.unchanged, s.skipped,
                s.chunks_embedded, s.chunks_reused, len(self.snapshot), len(self._rows))

    def _stat_all(self) -> dict[str, os.stat_result]:
        found = scan(self.root)
        for rel, why in found.links.items():
            if rel not in self._links:
                log.warning("skipped %s: %s", rel, why)
        self._links = found.links
        return found.files

    def _prepare(self, rel: str, st: os.stat_result, old: FileRecord | None,
                 summary: PassSummary) -> _Prepared | None:
        """Read, hash and chunk one file; ``None`` when there is nothing to embed (unchanged content, skipped)."""
        try:
            record, text = self._read(rel, st)
        except SkipFile as exc:
            self._skip(rel, st, "", str(exc), summary)
            return None
        except _BeingWritten:  # not recorded: the next pass looks at it again
            log.info("%s is being written; it is indexed on the next pass", rel)
            self.progress.file_done()
            return None
        if old is not None and old.hash == record.hash and old.status == "indexed":
            self.store.touch(rel, record.mtime, record.size)
            summary.unchanged += 1
            self.progress.file_done()
            return None
        if text is None:
            self._skip(rel, st, record.hash, record.reason or "skipped", summary)
            return None
        if old is None or old.status != "indexed":
            summary.added += 1
        else:
            summary.changed += 1
        chunks = chunk_document(rel, text, self.chunk_size, self.chunk_overlap)
        rows = [ChunkRow(c.id, rel, c.ordinal, c.text, text_hash(c.text), np.zeros(0, np.float32)) for c in chunks]
        return _Prepared(record, rows)

    def _read(self, rel: str, st: os.stat_result) -> tuple[FileRecord, str | None]:
        path = self.root / rel
        if not is_supported(rel):
            raise SkipFile(f"unsupported file type {path.suffix or '(no extension)'!r}")
        data, after = read_file(self.root, rel, self.max_file_bytes)
        if len(data) != st.st_size or (after.st_mtime_ns, after.st_size) != (st.st_mtime_ns, st.st_size):
            raise _BeingWritten(rel)
        digest = hashlib.sha256(data).hexdigest()
        record = FileRecord(rel, digest, st.st_mtime, st.st_size, "indexed")
        try:
            return record, load_text(path, data)
        except SkipFile as exc:
            return FileRecord(rel, digest, st.st_mtime, st.st_size, "skipped", str(exc)), None

    def _skip(self, rel: str, st: os.stat_result, digest: str, reason: str, summary: PassSummary) -> None:
        log.warning("skipped %s: %s", rel, reason)
        self.store.put_file(FileRecord(rel, digest, st.st_mtime, st.st_size, "skipped", reason), [])
        self._dirty |= self._rows.pop(rel, None) is not None
        self._skipped[rel] = reason
        summary.skipped += 1
        self.progress.file_done()

    # -- embedding, in batches across files; each file is written once all its chunks have vectors ---------------
    def _embed(self, prepared: list[_Prepared], summary: PassSummary, reusable: dict[str, np.ndarray]) -> None:
        todo = self._reuse_vectors(prepared, summary, reusable)
        self.progress.set_chunks(len(todo))
        vectors: dict[str, np.ndarray] = {}
        pending = list(prepared)
        for i in range(0, len(todo), self.batch_size):
            batch = todo[i:i + self.batch_size]
            for h, v in zip(batch, self.embedder.embed([t for _, t in batch])):
                vectors[h[0]] = v
            summary.chunks_embedded += len(batch)
            self.progress.chunks_embedded(len(batch))
            pending = self._write_ready(pending, vectors)
        self._write_ready(pending, vectors)

    def _reuse_vectors(self, prepared: list[_Prepared], summary: PassSummary,
                       reusable: dict[str, np.ndarray]) -> list[tuple[str, str]]:
        """Fill in vectors already known for identical texts; return the (text hash, text) pairs to embed."""
        hashes = sorted({c.text_hash for p in prepared for c in p.chunks})
        known = {**reusable, **self.store.vectors_by_text_hash(hashes)}
        todo: dict[str, str] = {}
        for p in prepared:
            for i, c in enumerate(p.chunks):
                if c.text_hash in known:
                    p.chunks[i] = _with_vector(c, known[c.text_hash])
                    summary.chunks_reused += 1
                elif c.text_hash not in todo:
                    todo[c.text_hash] = c.text
        return list(todo.items())

    def _write_ready(self, pending: list[_Prepared], vectors: dict[str, np.ndarray]) -> list[_Prepared]:
        left = []
        for p in pending:
            if all(c.vector.size or c.text_hash in vectors for c in p.chunks):
                rows = [c if c.vector.size else _with_vector(c, vectors[c.text_hash]) for c in p.chunks]
                self.store.put_file(p.record, rows)
                self._rows[p.record.path] = rows
                self._dirty = True
                self._skipped.pop(p.record.path, None)
                self.progress.file_done()
            else:
                left.append(p)
        return left

    def _all_rows(self) -> list[ChunkRow]:
        return [row for path in sorted(self._rows) for row in self._rows[path]]

    def stats(self) -> dict:
        """Counts for /v1/status (in-memory only: safe to call from any thread)."""
        skipped = sorted({**self._skipped.copy(), **self._links}.items())
        return {"files": len(self._rows), "chunks": len(self.snapshot),
                "skipped": [{"path": p, "reason": r} for p, r in skipped],
                "too_large": sum(r.startswith(TOO_LARGE) for _, r in skipped), "links": len(self._links),
                "max_file_bytes": self.max_file_bytes}


def _with_vector(row: ChunkRow, vector: np.ndarray) -> ChunkRow:
    return ChunkRow(row.id, row.path, row.ordinal, row.text, row.text_hash, vector)


def _needs_look(old: FileRecord | None, st: os.stat_result, max_bytes: int) -> bool:
    """A file is read again when it is new, its size or mtime moved, its record was invalidated (hash ''), or
    --max-file-bytes moved past its size (raised over a file skipped for size, lowered under an indexed one)."""
    if old is None:
        return True
    if old.status == "skipped" and old.mtime == st.st_mtime and old.size == st.st_size:
        return (old.reason or "").startswith(TOO_LARGE) and st.st_size <= max_bytes
    if old.status == "indexed" and st.st_size > max_bytes:
        return True
    return old.hash == "" or old.mtime != st.st_mtime or old.size != st.st_size
