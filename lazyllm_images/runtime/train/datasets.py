"""Where a job's rows come from, checked before anything starts: a URL (fetched by the controller, size-bounded),
a file under the data roots (``--data``: its path under a root, or its full path), or a file uploaded earlier to
``POST /v1/files`` (its ``file-...`` id, the uploader's only). Every row is converted (trainer.data) and written
as JSON Lines into the job's folder of the controller's state; the launcher copies them into the job's volume.
"""

from __future__ import annotations

import json
import os
import posixpath
import random
import re
import secrets
import shutil
import time
from pathlib import Path

from ..controller.core import ApiError
from ..controller.modelpaths import Root
from ..trainer import data as D
from .request import DatasetRef, TrainRequest

MAX_BYTES = 256 * 1024 * 1024
MAX_ROWS = 2_000_000
FETCH_TIMEOUT_S = 60.0
_FILE_ID = re.compile(r"^file-[a-f0-9]{24}$")


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def split(rows: list[dict], part: float, seed: int) -> tuple[list[dict], list[dict]]:
    """(kept, held out): int(len * PART) rows held out, chosen at random with SEED; none for a small PART."""
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    held = set(order[:int(len(rows) * part)])
    return [r for i, r in enumerate(rows) if i not in held], [r for i, r in enumerate(rows) if i in held]


class DataStore:
    """The controller's side of datasets: the data roots, uploads, and the rows prepared for each job."""

    def __init__(self, state: Path, roots: list[Root], max_bytes: int = MAX_BYTES) -> None:
        self.state, self.roots, self.max_bytes = Path(state), list(roots), max_bytes

    # ------------------------------------------------------------------ uploads
    def upload_dir(self, owner: str) -> Path:
        return self.state / "files" / owner

    def save_upload(self, owner: str, filename: str, chunks) -> dict:
        """CHUNKS (bytes) stored as a new file of OWNER; its OpenAI-shaped description."""
        folder = self.upload_dir(owner)
        folder.mkdir(parents=True, exist_ok=True)
        file_id = "file-" + secrets.token_hex(12)
        size = 0
        path = folder / file_id
        with open(path, "wb") as out:
            for chunk in chunks:
                size += len(chunk)
                if size > self.max_bytes:
                    out.close()
                    path.unlink(missing_ok=True)
                    raise ApiError(413, "file_too_large", f"the file is over the limit of {self.max_bytes} bytes")
                out.write(chunk)
        meta = {"id": file_id, "object": "file", "bytes": size, "created_at": int(time.time()),
                "filename": os.path.basename(filename or "dataset.jsonl")[:255], "purpose": "fine-tune"}
        (folder / f"{file_id}.json").write_text(json.dumps(meta))
        return meta

    def uploads(self, owner: str) -> list[dict]:
        folder = self.upload_dir(owner)
        return [json.loads(p.read_text()) for p in sorted(folder.glob("file-*.json"))] if folder.is_dir() else []

    # ------------------------------------------------------------------ reading a dataset
    def read(self, owner: str, ref: DatasetRef) -> bytes:
        uri = ref.uri
        if uri.startswith(("http://", "https://")):
            return self._fetch(uri)
        if _FILE_ID.match(uri):
            path = self.upload_dir(owner) / uri
            if not path.is_file():
                raise ApiError(404, "dataset_not_found", f"no uploaded file {uri} (POST /v1/files uploads one)")
            return path.read_bytes()
        return self._local(uri).read_bytes()

    @staticmethod
    def _relative(text: str, root: Root) -> str | None:
        """TEXT as a path under ROOT (a relative path is one already); None: an absolute path outside it."""
        if not text.startswith("/"):
            return text
        path = posixpath.normpath(text)
        side = next((s for s in (root.inner, root.host) if _inside(path, s)), None)
        return None if side is None else posixpath.relpath(path, side)

    def _local(self, uri: str) -> Path:
        text = uri.removeprefix("file://")
        if ".." in text.split("/") or text.startswith("~") or "\\" in text or "\x00" in text:
            raise ApiError(400, "outside_roots", f"dataset {uri!r}: '..' and '~' are not allowed")
        where = ", ".join(r.host for r in self.roots) or "none (start the service with --data DIR)"
        inside = False
        for root in self.roots:
            rel = self._relative(text, root)
            if rel is None:
                continue
            inside = True
            candidate = posixpath.join(root.inner, rel)
            if not os.path.lexists(candidate):
                continue
            real, real_root = os.path.realpath(candidate), os.path.realpath(root.inner)
            if not _inside(real, real_root):
                raise ApiError(400, "outside_roots", f"dataset {uri!r} is a link that leads outside its data root")
            if not os.path.isfile(real):
                raise ApiError(400, "bad_dataset", f"dataset {uri!r} is not a file")
            if os.path.getsize(real) > self.max_bytes:
                raise ApiError(413, "dataset_too_large", f"dataset {uri!r} is over {self.max_bytes} bytes")
            return Path(real)
        if text.startswith("/") and not inside:
            raise ApiError(400, "outside_roots", f"dataset {uri!r} is outside the data roots ({where})")
        raise ApiError(404, "dataset_not_found", f"dataset {uri!r} is not a file under the data roots ({where}), "
                                                 "a URL, nor an uploaded file's id")

    def _fetch(self, url: str) -> bytes:
        import httpx
        body = bytearray()
        try:
            with httpx.stream("GET", url, timeout=FETCH_TIMEOUT_S, follow_redirects=True) as resp:
                if resp.status_code != 200:
                    raise ApiError(404, "dataset_not_found", f"dataset URL {url} answered HTTP {resp.status_code}")
                for chunk in resp.iter_bytes():
                    body += chunk
                    if len(body) > self.max_bytes:
                        raise ApiError(413, "dataset_too_large", f"dataset URL {url} is over {self.max_bytes} bytes")
        except httpx.HTTPError as exc:
            raise ApiError(404, "dataset_not_found", f"dataset URL {url} could not be fetched: {exc}") from None
        return bytes(body)

    # ------------------------------------------------------------------ a job's rows
    def rows(self, owner: str, ref: DatasetRef, stage: str, what: str) -> list[dict]:
        raw = self.read(owner, ref)
        try:
            return D.convert(raw, ref.format, stage, ref.uri, MAX_ROWS)
        except D.DatasetError as exc:
            where = f"{what} {ref.uri}: " if what else ""
            raise ApiError(400, exc.code, where + exc.message,
                           **({"row": exc.row} if exc.row is not None else {}), dataset=what) from None

    def prepare(self, owner: str, job_id: str, request: TrainRequest) -> dict:
        """Every row checked and written for JOB_ID (before the job exists); the counts and where they are."""
        train = self.rows(owner, request.train, request.stage, "training_dataset")
        if request.validation is not None:
            held = self.rows(owner, request.validation, request.stage, "validation_dataset")
        else:
            train, held = split(train, request.split, request.args["seed"])
        folder = self.job_dir(job_id)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "train.jsonl").write_bytes(D.to_jsonl(train))
        if held:
            (folder / "eval.jsonl").write_bytes(D.to_jsonl(held))
        return {"data_dir": str(folder), "train_rows": len(train), "eval_rows": len(held)}

    def job_dir(self, job_id: str) -> Path:
        return self.state / "jobs" / job_id

    def forget(self, job_id: str) -> None:
        shutil.rmtree(self.job_dir(job_id), ignore_errors=True)
