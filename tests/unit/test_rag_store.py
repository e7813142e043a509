"""The index's incremental logic: added, changed, removed and untouched files -> exactly the changed texts are
embedded. The embedding function here is a deterministic hash injected in-process: it checks bookkeeping only,
never retrieval quality (tests/e2e/test_rag_service.py does that with a real embedding model)."""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import numpy as np
import pytest

from lazyllm_images.runtime.rag import indexer as indexer_module
from lazyllm_images.runtime.rag.indexer import Indexer
from lazyllm_images.runtime.rag.store import Store


class HashEmbedder:
    """Deterministic 16-dim unit vectors from a text's sha256; records every text it is asked to embed."""

    def __init__(self, model: str = "hash-16") -> None:
        self.model = model
        self.seen: list[str] = []
        self.fail = False

    def embed(self, texts: list[str], kind: str = "index") -> np.ndarray:
        if self.fail:
            raise ConnectionError("embedding server down")
        self.seen += texts
        rows = [np.frombuffer(hashlib.sha256(t.encode()).digest()[:16], dtype=np.uint8) for t in texts]
        vectors = np.array(rows, dtype=np.float32) - 127.5
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    def take(self) -> list[str]:
        seen, self.seen = self.seen, []
        return seen


PARAGRAPHS = {
    "a.txt": "Alpha one is first. Alpha two follows.\n\nAlpha three is last.",
    "b.md": "# Beta\n\nBeta text lives here.",
    "sub/c.html": "<p>Gamma in html.</p>",
}


def make(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)


@pytest.fixture()
def env(tmp_path: Path):
    docs, index = tmp_path / "docs", tmp_path / "index"
    docs.mkdir()
    make(docs, PARAGRAPHS)
    embedder = HashEmbedder()

    def indexer(**kw) -> Indexer:
        return Indexer(docs, Store(index), kw.pop("embedder", embedder), **{"chunk_size": 40, "chunk_overlap": 0,
                                                                              **kw})
    return docs, embedder, indexer


def texts_of(ix: Indexer, path: str) -> list[str]:
    return [t for p, t in zip(ix.snapshot.paths, ix.snapshot.texts) if p == path]


def test_first_pass_embeds_everything_second_nothing(env) -> None:
    docs, emb, indexer = env
    ix = indexer()
    s = ix.run_pass()
    assert (s.added, s.changed, s.removed, s.unchanged) == (3, 0, 0, 0)
    assert sorted(emb.take()) == sorted(ix.snapshot.texts) and len(ix.snapshot) == s.chunks_embedded
    s = ix.run_pass()
    assert emb.take() == [] and (s.added, s.changed, s.unchanged) == (0, 0, 3)


def test_changed_file_only_its_new_chunks(env) -> None:
    docs, emb, indexer = env
    ix = indexer()
    ix.run_pass()
    emb.take()
    (docs / "a.txt").write_text("Alpha one is first. Alpha two follows.\n\nAlpha three was edited.")
    s = ix.run_pass()
    assert (s.changed, s.unchanged) == (1, 2)
    assert emb.take() == ["Alpha three was edited."]  # the unchanged chunk of a.txt reuses its vector
    assert "Alpha three was edited." in texts_of(ix, "a.txt")
    assert "Alpha three is last." not in ix.snapshot.texts


def test_added_and_removed(env) -> None:
    docs, emb, indexer = env
    ix = indexer()
    ix.run_pass()
    emb.take()
    (docs / "b.md").unlink()
    make(docs, {"new/d.txt": "Delta arrives."})
    s = ix.run_pass()
    assert (s.added, s.removed) == (1, 1) and emb.take() == ["Delta arrives."]
    assert "b.md" not in ix.snapshot.paths and "new/d.txt" in ix.snapshot.paths
    assert set(ix.store.files()) == {"a.txt", "new/d.txt", "sub/c.html"}


def test_touch_without_change_embeds_nothing(env) -> None:
    docs, emb, indexer = env
    ix = indexer()
    ix.run_pass()
    emb.take()
    os.utime(docs / "a.txt", (1, 1))
    s = ix.run_pass()
    assert emb.take() == [] and s.unchanged == 3
    assert ix.store.files()["a.txt"].mtime == 1


def test_restart_reuses_the_stored_index(env) -> None:
    docs, emb, indexer = env
    first = indexer()
    first.run_pass()
    before = list(first.snapshot.texts)
    emb.take()
    again = indexer()
    assert again.snapshot.texts == before  # loaded from sqlite before any pass
    again.run_pass()
    assert emb.take() == []
    assert np.allclose(again.snapshot.matrix, first.snapshot.matrix)


def test_moved_file_reuses_vectors(env) -> None:
    docs, emb, indexer = env
    ix = indexer()
    ix.run_pass()
    emb.take()
    (docs / "a.txt").rename(docs / "moved.txt")
    s = ix.run_pass()
    assert (s.added, s.removed, s.chunks_embedded) == (1, 1, 0) and emb.take() == []


def test_other_embedding_model_reembeds_all(env) -> None:
    docs, emb, indexer = env
    indexer().run_pass()
    other = HashEmbedder("another-model")
    indexer(embedder=other).run_pass()
    assert len(other.take()) == len(indexer(embedder=other).snapshot)


def test_other_chunking_rechunks_and_reuses_equal_texts(env) -> None:
    docs, emb, indexer = env
    indexer().run_pass()
    emb.take()
    ix = indexer(chunk_size=500)
    s = ix.run_pass()
    assert s.changed == 3
    assert emb.take() == ["Alpha one is first. Alpha two follows. Alpha three is last."]  # b and c unchanged


def test_skipped_files_warn_once_and_keep_the_rest(env, caplog) -> None:
    docs, emb, indexer = env
    (docs / "pic.png").write_bytes(b"\x89PNG")
    (docs / "bad.pdf").write_bytes(b"not a pdf")
    ix = indexer()
    with caplog.at_level(logging.WARNING, logger="lazyllm.rag"):
        s = ix.run_pass()
        ix.run_pass()
    warnings = [r.getMessage() for r in caplog.records if r.name == "lazyllm.rag"]
    assert len(warnings) == 2
    assert any("pic.png" in w and "unsupported" in w for w in warnings)
    assert any("bad.pdf" in w and "unreadable" in w for w in warnings)
    assert s.skipped == 2 and s.added == 3
    assert {x["path"] for x in ix.stats()["skipped"]} == {"pic.png", "bad.pdf"}


def test_file_that_becomes_unreadable_loses_its_chunks(env) -> None:
    docs, emb, indexer = env
    ix = indexer()
    ix.run_pass()
    (docs / "b.md").write_bytes(b"\x00\x01 binary now")
    s = ix.run_pass()
    assert s.skipped == 1 and "b.md" not in ix.snapshot.paths


def test_failed_pass_keeps_finished_files_and_recovers(env) -> None:
    docs, emb, indexer = env
    ix = indexer()
    emb.fail = True
    with pytest.raises(ConnectionError):
        ix.run_pass()
    assert ix.last.error and ix.progress.as_dict()["state"] == "error"
    emb.fail = False
    s = ix.run_pass()
    assert s.added == 3 and ix.progress.as_dict()["state"] == "idle"


def test_progress_counts(env) -> None:
    docs, emb, indexer = env
    ix = indexer(batch_size=1)
    s = ix.run_pass()
    p = ix.progress.as_dict()
    assert p["chunks_done"] == p["chunks_total"] == s.chunks_embedded and p["files_done"] == p["files_total"] == 3
    assert p["percent"] == 100.0


def test_files_finished_before_a_failure_are_searchable(env) -> None:
    docs, emb, indexer = env
    ix = indexer(batch_size=1)
    calls = {"n": 0}
    real = emb.embed

    def flaky(texts: list[str], kind: str = "index") -> np.ndarray:
        calls["n"] += 1
        if calls["n"] > 2:
            raise ConnectionError("down after two batches")
        return real(texts, kind)

    emb.embed = flaky
    with pytest.raises(ConnectionError):
        ix.run_pass()
    assert len(ix.snapshot) >= 1 and set(ix.snapshot.paths) == set(ix.store.files())


def test_file_changing_while_read_waits_for_the_next_pass(env, monkeypatch) -> None:
    docs, emb, indexer = env
    ix = indexer()
    real_read = indexer_module.read_file

    def read_while_growing(root: Path, rel: str, max_bytes: int) -> tuple[bytes, os.stat_result]:
        if rel == "b.md":
            (root / rel).write_text((root / rel).read_text() + " More text.")  # a writer appends after the listing
        return real_read(root, rel, max_bytes)

    monkeypatch.setattr(indexer_module, "read_file", read_while_growing)
    s = ix.run_pass()
    assert s.added == 2 and "b.md" not in ix.store.files()
    monkeypatch.setattr(indexer_module, "read_file", real_read)
    s = ix.run_pass()
    assert s.added == 1 and any(t.endswith("Beta text lives here. More text.") for t in texts_of(ix, "b.md"))
