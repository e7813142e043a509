"""The records in SQLite (one file, WAL journal), so a restarted controller knows what it launched.

One connection shared by the request threads and the poll loop, behind a lock: the controller's load is a few
writes a second. Owner + kind + name is unique: a client's name means one record.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from dataclasses import fields
from pathlib import Path

from .records import ACTIVE, Record, new_uid

SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    uid TEXT PRIMARY KEY, kind TEXT NOT NULL, owner TEXT NOT NULL, name TEXT NOT NULL, status TEXT NOT NULL,
    body TEXT NOT NULL, created_at REAL NOT NULL, UNIQUE (owner, kind, name));
CREATE INDEX IF NOT EXISTS records_status ON records (kind, status);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class Duplicate(Exception):
    """A record of that owner, kind and name exists."""


class StoreError(Exception):
    """The database cannot be opened or written; the message says where."""


class Store:
    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None, timeout=10)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the database {self.path}: {exc}") from None
        try:
            os.chmod(self.path, 0o600)              # records name models and owners: not for other users
        except OSError:
            pass
        self.lock = threading.RLock()

    def close(self) -> None:
        with self.lock:
            self.db.close()

    # ------------------------------------------------------------------ meta
    def meta(self, key: str, default: str | None = None) -> str | None:
        with self.lock:
            row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def set_meta(self, key: str, value: str) -> None:
        with self.lock:
            self.db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def instance_id(self) -> str:
        """This controller's id, made once and kept: the label on every container it starts."""
        with self.lock:
            found = self.meta("instance")
            if found is None:
                found = new_uid()
                self.set_meta("instance", found)
            return found

    # ------------------------------------------------------------------ records
    def insert(self, record: Record) -> None:
        with self.lock:
            try:
                self.db.execute("INSERT INTO records (uid, kind, owner, name, status, body, created_at) "
                                "VALUES (?, ?, ?, ?, ?, ?, ?)", (*self._row(record),))
            except sqlite3.IntegrityError:
                raise Duplicate(record.name) from None

    def save(self, record: Record) -> None:
        with self.lock:
            self.db.execute("UPDATE records SET status = ?, body = ? WHERE uid = ?",
                            (record.status, _body(record), record.uid))

    def delete(self, uid: str) -> None:
        with self.lock:
            self.db.execute("DELETE FROM records WHERE uid = ?", (uid,))

    def get(self, owner: str, kind: str, name: str) -> Record | None:
        return self._one("owner = ? AND kind = ? AND name = ?", (owner, kind, name))

    def by_uid(self, uid: str) -> Record | None:
        return self._one("uid = ?", (uid,))

    def list(self, kind: str, owner: str | None = None) -> list[Record]:
        if owner is None:
            return self._many("kind = ?", (kind,))
        return self._many("kind = ? AND owner = ?", (kind, owner))

    def active(self, kind: str) -> list[Record]:
        marks = ",".join("?" * len(ACTIVE))
        return self._many(f"kind = ? AND status IN ({marks})", (kind, *ACTIVE))

    def _one(self, where: str, args: tuple) -> Record | None:
        found = self._many(where, args)
        return found[0] if found else None

    def _many(self, where: str, args: tuple) -> list[Record]:
        with self.lock:
            rows = self.db.execute(f"SELECT body FROM records WHERE {where} ORDER BY created_at, uid",
                                   args).fetchall()
        return [_record(row[0]) for row in rows]

    @staticmethod
    def _row(record: Record) -> tuple:
        return (record.uid, record.kind, record.owner, record.name, record.status, _body(record),
                record.created_at)


def _body(record: Record) -> str:
    return json.dumps({f.name: getattr(record, f.name) for f in fields(record)}, ensure_ascii=False)


def _record(body: str) -> Record:
    data = json.loads(body)
    known = {f.name for f in fields(Record)}
    return Record(**{k: v for k, v in data.items() if k in known})


__all__ = ["Duplicate", "Store", "StoreError"]
