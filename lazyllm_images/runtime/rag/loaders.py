"""Files under the documents root -> plain text. Unsupported, unreadable or too large files raise ``SkipFile``;
nothing outside the root is ever read (symbolic links are listed apart, never followed)."""

from __future__ import annotations

import errno
import io
import os
import stat
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Callable

TEXT_SUFFIXES = {".txt", ".text", ".md", ".markdown", ".rst"}
HTML_SUFFIXES = {".html", ".htm", ".xhtml"}


DEFAULT_MAX_FILE_BYTES = 50 * 1024 * 1024
TOO_LARGE = "larger than --max-file-bytes"        # how a skip for size starts (the indexer looks for it)
LINK = "a symbolic link (never followed: the documents folder is all that is read)"
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)


class SkipFile(Exception):
    """The file cannot be indexed; the message says why (shown in the warning and in /v1/status)."""


@dataclass(frozen=True)
class Scan:
    files: dict[str, os.stat_result]      # regular files: '/'-separated path under the root -> its lstat
    links: dict[str, str]                 # symbolic links (to files or folders) left out -> why


def scan(root: Path) -> Scan:
    """The regular files under ``root`` (hidden ones left out), never following a symbolic link: links are listed
    apart, so a link to /etc/passwd or to a secret file is never read."""
    files: dict[str, os.stat_result] = {}
    links: dict[str, str] = {}
    folders = [""]
    while folders:
        rel_dir = folders.pop()
        try:
            with os.scandir(root / rel_dir if rel_dir else root) as entries:
                found = sorted(entries, key=lambda e: e.name)
        except OSError:  # unreadable or vanished folder: nothing to index there
            continue
        for entry in found:
            if entry.name.startswith("."):
                continue
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            try:
                if entry.is_symlink():
                    links[rel] = LINK
                elif entry.is_dir(follow_symlinks=False):
                    folders.append(rel)
                elif entry.is_file(follow_symlinks=False):
                    files[rel] = entry.stat(follow_symlinks=False)
            except OSError:  # vanished between the listing and the stat
                continue
    return Scan(dict(sorted(files.items())), dict(sorted(links.items())))


def iter_files(root: Path) -> list[str]:
    """Paths (relative to ``root``, '/'-separated, sorted) of the regular files under it; hidden ones and symbolic
    links left out."""
    return list(scan(root).files)


def too_large(size: int, limit: int) -> str:
    return f"{TOO_LARGE} ({size} bytes > {limit})"


def read_file(root: Path, rel: str, max_bytes: int = DEFAULT_MAX_FILE_BYTES) -> tuple[bytes, os.stat_result]:
    """The bytes of ROOT/REL and its fstat after the read, never from outside ROOT: the resolved path must lie under
    the resolved root, the file itself is opened without following a link, and it must be a regular file of at most
    MAX_BYTES. Raises ``SkipFile``."""
    path = root / rel
    real_root = os.path.realpath(root)
    if os.path.commonpath([real_root, os.path.realpath(path)]) != real_root:
        raise SkipFile(f"outside the documents folder: {LINK}")
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise SkipFile(LINK) from None
        raise SkipFile(f"unreadable: {exc.strerror or exc}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise SkipFile("unreadable: not a regular file")
        if st.st_size > max_bytes:
            raise SkipFile(too_large(st.st_size, max_bytes))
        with os.fdopen(os.dup(fd), "rb") as fh:
            data = fh.read(max_bytes + 1)
        st = os.fstat(fd)                  # after the read: a writer busy meanwhile shows in its mtime and size
    except OSError as exc:
        raise SkipFile(f"unreadable: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise SkipFile(too_large(len(data), max_bytes))
    return data, st


def is_supported(path: str) -> bool:
    return Path(path).suffix.lower() in _LOADERS


def load_text(path: Path, data: bytes | None = None) -> str:
    """The text of one file (``data``: its bytes when already read). Raises ``SkipFile``."""
    loader = _LOADERS.get(path.suffix.lower())
    if loader is None:
        raise SkipFile(f"unsupported file type {path.suffix or '(no extension)'!r}")
    if data is None:
        data = read_file(path.parent, path.name)[0]
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
