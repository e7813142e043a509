"""The index on disk (sqlite in the ``--index`` folder): files (path, content hash, mtime, size, status) and chunks
(id, path, text, vector). Only the indexer thread writes; queries read the in-memory snapshot, never sqlite."""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SCHEMA_VERSION = "1"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY, hash TEXT NOT NULL, mtime REAL NOT NULL, size INTEGER NOT NULL,
    status TEXT NOT NULL, reason TEXT);
CREATE TABLE IF NOT EXISTS chunks (
    id TEXT PRIMARY KEY, path TEXT NOT NULL, ordinal INTEGER NOT NULL, text TEXT NOT NULL,
    text_hash TEXT NOT NULL, vector BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS chunks_path ON chunks(path);
CREATE INDEX IF NOT EXISTS chunks_text_hash ON chunks(text_hash);
"""


@dataclass(frozen=True)
class FileRecord:
    path: str
    hash: str
    mtime: float
    size: int
    status: str  # "indexed" or "skipped"
    reason: str | None = None


@dataclass(frozen=True)
class ChunkRow:
    id: str
    path: str
    ordinal: int
    text: str
    text_hash: str
    vector: np.ndarray


class Store:
    FILE = "index.sqlite3"

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / self.FILE
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()

    def close(self) -> None:
        self._db.close()

    # -- configuration: what the stored vectors and chunks were made with -------------------------------------
    def meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))

    def reconcile(self, embed_model: str, chunking: str) -> str | None:
        """Make the stored index fit the running configuration. Another embedding model: every vector is dropped.
        Other chunking settings: every file is re-chunked on the next pass (vectors of unchanged texts are reused).
        Returns what was invalidated, if anything."""
        with self._lock, self._tx():
            why = None
            if self.meta("schema") not in (None, SCHEMA_VERSION) or self.meta("embed_model") not in (None, embed_model):
                self._db.execute("DELETE FROM chunks")
                self._db.execute("DELETE FROM files")
                why = "embedding model changed: full re-index"
            elif self.meta("chunking") not in (None, chunking):
                self._db.execute("UPDATE files SET hash = ''")
                why = "chunking settings changed: files re-chunked"
            for key, value in (("schema", SCHEMA_VERSION), ("embed_model", embed_model), ("chunking", chunking)):
                self.set_meta(key, value)
            return why

    # -- reads ------------------------------------------------------------------------------------------------
    def files(self) -> dict[str, FileRecord]:
        rows = self._db.execute("SELECT path, hash, mtime, size, status, reason FROM files").fetchall()
        return {r[0]: FileRecord(*r) for r in rows}

    def chunks(self) -> list[ChunkRow]:
        rows = self._db.execute("SELECT id, path, ordinal, text, text_hash, vector FROM chunks ORDER BY path, ordinal")
        return [ChunkRow(r[0], r[1], r[2], r[3], r[4], np.frombuffer(r[5], dtype=np.float32)) for r in rows]

    def vectors_by_text_hash(self, hashes: list[str]) -> dict[str, np.ndarray]:
        """Stored vectors of texts already embedded (any file): a moved or partly edited file reuses them."""
        found: dict[str, np.ndarray] = {}
        for i in range(0, len(hashes), 500):
            part = hashes[i:i + 500]
            marks = ",".join("?" * len(part))
            for h, blob in self._db.execute(
                    f"SELECT text_hash, vector FROM chunks WHERE text_hash IN ({marks})", part):
                found[h] = np.frombuffer(blob, dtype=np.float32)
        return found

    # -- writes (one transaction each) ------------------------------------------------------------------------
    def put_file(self, record: FileRecord, chunks: list[ChunkRow]) -> None:
        """Replace everything stored for ``record.path`` by ``chunks`` (none for a skipped file)."""
        with self._lock, self._tx():
            self._db.execute("DELETE FROM chunks WHERE path = ?", (record.path,))
            self._db.executemany(
                "INSERT OR REPLACE INTO chunks(id, path, ordinal, text, text_hash, vector) VALUES (?,?,?,?,?,?)",
                [(c.id, c.path, c.ordinal, c.text, c.text_hash, np.asarray(c.vector, np.float32).tobytes())
                 for c in chunks])
            self._db.execute("INSERT OR REPLACE INTO files(path, hash, mtime, size, status, reason) "
                             "VALUES (?,?,?,?,?,?)", (record.path, record.hash, record.mtime, record.size,
                                                     record.status, record.reason))

    def touch(self, path: str, mtime: float, size: int) -> None:
        """Same content, new mtime (e.g. ``touch`` or a copy): remember it so the file is not read again."""
        with self._lock:
            self._db.execute("UPDATE files SET mtime = ?, size = ? WHERE path = ?", (mtime, size, path))

    def remove(self, paths: list[str]) -> None:
        with self._lock, self._tx():
            for p in paths:
                self._db.execute("DELETE FROM chunks WHERE path = ?", (p,))
                self._db.execute("DELETE FROM files WHERE path = ?", (p,))

    def _tx(self) -> "_Transaction":
        return _Transaction(self._db)


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN")

    def __exit__(self, exc_type, exc, tb) -> None:
        self._db.execute("ROLLBACK" if exc_type else "COMMIT")
