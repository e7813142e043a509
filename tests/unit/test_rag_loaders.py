"""Loaders: each format gives its text; unsupported, broken and empty files raise SkipFile with the reason."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures"))
from rag_corpus import docx_bytes, minimal_pdf  # noqa: E402

from lazyllm_images.runtime.rag.loaders import SkipFile, html_to_text, is_supported, iter_files, load_text


def write(tmp_path: Path, name: str, data: bytes | str) -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return path


def test_txt_and_md(tmp_path: Path) -> None:
    assert load_text(write(tmp_path, "a.txt", "  Plain text.\n")) == "Plain text."
    assert load_text(write(tmp_path, "b.md", "# Title\n\nBody *here*.")) == "# Title\n\nBody *here*."


def test_txt_encodings(tmp_path: Path) -> None:
    assert load_text(write(tmp_path, "bom.txt", "\ufeffwith bom".encode("utf-8"))) == "with bom"
    assert load_text(write(tmp_path, "zh.txt", "中文文本。".encode("gb18030"))) == "中文文本。"


def test_html_drops_scripts_styles_and_tags() -> None:
    html = (b"<html><head><title>T</title><style>p{x:1}</style><script>var secret=1;</script></head>"
            b"<body><h1>Head</h1><p>One &amp; <b>two</b>.</p><script>track()</script><p>Three.</p></body></html>")
    text = html_to_text(html)
    assert "secret" not in text and "track" not in text and "p{x" not in text and "<" not in text
    assert text == "T\n\nHead\n\nOne & two.\n\nThree."


def test_pdf(tmp_path: Path) -> None:
    text = load_text(write(tmp_path, "a.pdf", minimal_pdf("Jupiter has a Great Red Spot (a storm).")))
    assert "Great Red Spot (a storm)." in text


def test_docx(tmp_path: Path) -> None:
    text = load_text(write(tmp_path, "a.docx", docx_bytes("Heading\nFirst paragraph.\nSecond paragraph.")))
    assert text == "Heading\n\nFirst paragraph.\n\nSecond paragraph."


@pytest.mark.parametrize("name, data, reason", [
    ("image.png", b"\x89PNG\r\n\x1a\n", "unsupported file type '.png'"),
    ("noext", b"text", "unsupported file type '(no extension)'"),
    ("broken.pdf", b"this is not a pdf", "unreadable pdf file"),
    ("broken.docx", b"PK not a zip", "unreadable docx file"),
    ("binary.txt", b"\x00\x01\x02binary", "binary content"),
    ("empty.md", b"  \n\n", "no extractable text"),
    ("blank.html", b"<html><script>x()</script></html>", "no extractable text"),
])
def test_skipped_files_say_why(tmp_path: Path, name: str, data: bytes, reason: str) -> None:
    with pytest.raises(SkipFile, match=reason.replace("(", r"\(").replace(")", r"\)")):
        load_text(write(tmp_path, name, data))


def test_unreadable_path(tmp_path: Path) -> None:
    folder = tmp_path / "dir.txt"
    folder.mkdir()
    with pytest.raises(SkipFile, match="unreadable"):
        load_text(folder)


def test_iter_files_relative_sorted_without_hidden(tmp_path: Path) -> None:
    for name in ("b.txt", "a/c.md", ".hidden.txt", ".git/config", "a/.d.txt"):
        write(tmp_path, name, "x")
    assert iter_files(tmp_path) == ["a/c.md", "b.txt"]


def test_is_supported() -> None:
    assert all(is_supported(n) for n in ("a.TXT", "b.md", "c.htm", "d.html", "e.pdf", "f.docx"))
    assert not any(is_supported(n) for n in ("a.doc", "b.png", "c"))
