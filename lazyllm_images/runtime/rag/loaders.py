"""Files under the documents root -> plain text. Unsupported or unreadable files raise ``SkipFile``."""

from __future__ import annotations

import io
import os
from html.parser import HTMLParser
from pathlib import Path
from typing import Callable

TEXT_SUFFIXES = {".txt", ".text", ".md", ".markdown", ".rst"}
HTML_SUFFIXES = {".html", ".htm", ".xhtml"}


class SkipFile(Exception):
    """The file cannot be indexed; the message says why (shown in the warning and in /v1/status)."""


def iter_files(root: Path) -> list[str]:
    """Paths (relative to ``root``, '/'-separated, sorted) of the regular files under it; hidden ones left out."""
    found: list[str] = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in files:
            if name.startswith("."):
                continue
            full = Path(folder) / name
            if full.is_file():
                found.append(full.relative_to(root).as_posix())
    return sorted(found)


def is_supported(path: str) -> bool:
    return Path(path).suffix.lower() in _LOADERS


def load_text(path: Path, data: bytes | None = None) -> str:
    """The text of one file (``data``: its bytes when already read). Raises ``SkipFile``."""
    loader = _LOADERS.get(path.suffix.lower())
    if loader is None:
        raise SkipFile(f"unsupported file type {path.suffix or '(no extension)'!r}")
    if data is None:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise SkipFile(f"unreadable: {exc.strerror or exc}") from exc
    try:
        text = loader(data)
    except SkipFile:
        raise
    except Exception as exc:  # a broken pdf/docx raises whatever its parser raises
        raise SkipFile(f"unreadable {path.suffix.lstrip('.')} file: {type(exc).__name__}: {exc}") from exc
    text = text.strip()
    if not text:
        raise SkipFile("no extractable text")
    return text


def decode_text(data: bytes) -> str:
    """Bytes of a text file -> str: UTF-8 (with or without BOM), then GB18030 (Chinese), else refused as binary."""
    if b"\x00" in data[:8192]:
        raise SkipFile("binary content in a text file")
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")


class _HTMLText(HTMLParser):
    """Collects visible text: drops script/style/head-only elements, breaks lines at block elements."""

    SKIP = {"script", "style", "noscript", "template", "head", "svg"}
    BLOCK = {"p", "div", "br", "li", "ul", "ol", "tr", "table", "section", "article", "h1", "h2", "h3", "h4",
             "h5", "h6", "pre", "blockquote", "title", "header", "footer", "dd", "dt"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title: list[str] = []
        self._skip = 0
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag == "title":
            self._in_title = True
        elif tag in self.SKIP:
            self._skip += 1
        if tag in self.BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        elif tag in self.SKIP and self._skip:
            self._skip -= 1
        if tag in self.BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title.append(data)
        elif not self._skip:
            self.parts.append(data)


def html_to_text(data: bytes) -> str:
    parser = _HTMLText()
    parser.feed(decode_text(data))
    parser.close()
    title = " ".join("".join(parser.title).split())
    lines = (" ".join(line.split()) for line in "".join(parser.parts).splitlines())
    body = "\n\n".join(line for line in lines if line)  # each block element is a paragraph
    return f"{title}\n\n{body}" if title and not body.startswith(title) else body


def pdf_to_text(data: bytes) -> str:
    import pypdf  # imported where used: start-up stays light

    reader = pypdf.PdfReader(io.BytesIO(data))
    if reader.is_encrypted:
        raise SkipFile("encrypted pdf")
    return "\n\n".join((page.extract_text() or "").strip() for page in reader.pages)


def docx_to_text(data: bytes) -> str:
    import docx  # python-docx

    document = docx.Document(io.BytesIO(data))
    parts = [p.text for p in document.paragraphs if p.text.strip()]
    for table in document.tables:
        for row in table.rows:
            cells = [c.text.strip() for c in row.cells if c.text.strip()]
            if cells:
                parts.append(" | ".join(cells))
    return "\n\n".join(parts)  # each docx paragraph is a paragraph of the text


_LOADERS: dict[str, Callable[[bytes], str]] = {
    **{s: decode_text for s in TEXT_SUFFIXES},
    **{s: html_to_text for s in HTML_SUFFIXES},
    ".pdf": pdf_to_text,
    ".docx": docx_to_text,
}
