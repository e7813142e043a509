"""The RAG service reads its documents folder and nothing else: symbolic links are never followed (a link to
/etc/passwd, or inside the container to the key file, was indexed and served back in ``sources``), files over
--max-file-bytes are skipped and counted, and --watch-interval 0 means no rescans (it meant a pass once a year)."""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

import pytest
from test_rag_store import HashEmbedder

from lazyllm_images.runtime.rag.__main__ import parse_args
from lazyllm_images.runtime.rag.indexer import Indexer
from lazyllm_images.runtime.rag.loaders import LINK, SkipFile, read_file, scan
from lazyllm_images.runtime.rag.store import Store
from lazyllm_images.runtime.rag.watch import Watcher

SECRET = "the-key-file-says-sk-live-0123456789"


@pytest.fixture()
def tree(tmp_path: Path) -> tuple[Path, Path]:
    """docs/ with one real file, a link to a secret file outside, a link to a folder outside, and a link inside."""
    docs, outside = tmp_path / "docs", tmp_path / "outside"
    (docs / "sub").mkdir(parents=True)
    outside.mkdir()
    (outside / "key.txt").write_text(SECRET)
    (outside / "more.md").write_text(SECRET)
    (docs / "real.txt").write_text("A real document about Jupiter.")
    (docs / "passwd.txt").symlink_to("/etc/passwd")
    (docs / "key.txt").symlink_to(outside / "key.txt")
    (docs / "sub" / "elsewhere").symlink_to(outside, target_is_directory=True)
    (docs / "alias.txt").symlink_to(docs / "real.txt")
    return docs, outside


def test_the_scan_never_follows_a_link(tree: tuple[Path, Path]) -> None:
    docs, _ = tree
    found = scan(docs)
    assert list(found.files) == ["real.txt"]
    assert found.links == {p: LINK for p in ("alias.txt", "key.txt", "passwd.txt", "sub/elsewhere")}


def test_reading_stays_inside_the_root(tree: tuple[Path, Path]) -> None:
    docs, outside = tree
    assert read_file(docs, "real.txt")[0] == b"A real document about Jupiter."
    for rel in ("passwd.txt", "key.txt", "alias.txt", "sub/elsewhere/more.md"):
        with pytest.raises(SkipFile, match="symbolic link"):
            read_file(docs, rel)
    with pytest.raises(SkipFile, match="outside the documents folder"):
        read_file(docs, "../outside/key.txt")


def test_the_index_never_holds_what_links_point_at_and_warns_once(tree: tuple[Path, Path], tmp_path: Path,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    docs, _ = tree
    embedder = HashEmbedder()
    ix = Indexer(docs, Store(tmp_path / "index"), embedder, chunk_size=50, chunk_overlap=0)
    with caplog.at_level(logging.WARNING, logger="lazyllm.rag"):
        ix.run_pass()
        ix.run_pass()
    assert set(ix.snapshot.paths) == {"real.txt"} and not any(SECRET in t for t in embedder.seen)
    assert not any("root:" in t for t in embedder.seen)
    warned = [r.getMessage() for r in caplog.records if "symbolic link" in r.getMessage()]
    assert sorted(warned) == sorted(f"skipped {p}: {LINK}" for p in ("alias.txt", "key.txt", "passwd.txt",
                                                                      "sub/elsewhere"))
    stats = ix.stats()
    assert stats["links"] == 4 and {"path": "key.txt", "reason": LINK} in stats["skipped"]


def test_files_over_the_cap_are_skipped_counted_and_indexed_once_the_cap_allows(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "small.txt").write_text("Small enough to read.")
    (docs / "big.txt").write_text("Big. " * 100)
    ix = Indexer(docs, Store(tmp_path / "index"), HashEmbedder(), chunk_size=50, chunk_overlap=0,
                 max_file_bytes=100)
    summary = ix.run_pass()
    assert summary.skipped == 1 and set(ix.snapshot.paths) == {"small.txt"}
    stats = ix.stats()
    assert stats["too_large"] == 1 and stats["max_file_bytes"] == 100
    assert stats["skipped"][0]["path"] == "big.txt" and "500 bytes > 100" in stats["skipped"][0]["reason"]
    assert ix.run_pass().skipped == 0                           # not read (nor warned about) again
    raised = Indexer(docs, Store(tmp_path / "index"), HashEmbedder(), chunk_size=50, chunk_overlap=0)
    assert raised.run_pass().added == 1 and raised.stats()["too_large"] == 0
    lowered = Indexer(docs, Store(tmp_path / "index"), HashEmbedder(), chunk_size=50, chunk_overlap=0,
                      max_file_bytes=100)
    assert lowered.run_pass().skipped == 1 and "big.txt" not in lowered.snapshot.paths


def test_max_file_bytes_and_watch_interval_options() -> None:
    base = ["--documents", "d", "--index", "i", "--embed-url", "http://e", "--embed-model", "m"]
    assert parse_args(base).max_file_bytes == 50 * 1024 * 1024
    assert parse_args([*base, "--max-file-bytes", "1000"]).max_file_bytes == 1000
    assert parse_args([*base, "--watch-interval", "0"]).watch_interval == 0
    for bad in (["--max-file-bytes", "0"], ["--watch-interval", "-1"], ["--watch-interval", "nan"],
                ["--watch-interval", "inf"]):
        with pytest.raises(SystemExit):
            parse_args([*base, *bad])


class CountingIndexer:
    def __init__(self) -> None:
        self.passes = 0
        self.last = None
        self.ran = threading.Event()

    def run_pass(self) -> int:
        self.passes += 1
        self.ran.set()
        return self.passes


def test_watch_interval_zero_means_no_rescans_only_requested_passes() -> None:
    indexer = CountingIndexer()
    watcher = Watcher(indexer, 0)  # type: ignore[arg-type]
    watcher.start()
    try:
        assert watcher.ready.wait(5)
        time.sleep(0.3)
        assert indexer.passes == 1                          # no loop spinning, no timer
        assert watcher.request().result(5) == 2
        time.sleep(0.2)
        assert indexer.passes == 2
    finally:
        watcher.stop()
    with pytest.raises(ValueError):
        Watcher(indexer, -1)  # type: ignore[arg-type]


def test_the_key_file_link_in_the_container_layout_is_not_served(tmp_path: Path) -> None:
    """Inside the image the secrets sit in /tmp: a link to them in /docs must not come back as a source."""
    secrets = tmp_path / "tmp-lazyllm"
    secrets.mkdir()
    (secrets / "api-key").write_text(SECRET)
    docs = tmp_path / "docs"
    docs.mkdir()
    os.symlink(secrets / "api-key", docs / "notes.md")
    ix = Indexer(docs, Store(tmp_path / "index"), HashEmbedder())
    ix.run_pass()
    assert len(ix.snapshot) == 0 and ix.stats()["skipped"] == [{"path": "notes.md", "reason": LINK}]
