"""Sentence-aware chunking with overlap (English and Chinese punctuation), with ids stable for unchanged text."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

# A sentence ends at . ! ? followed by whitespace (and not by a lower-case word: "1. e4", "approx. five"), or at
# a CJK stop 。！？；… (no space needed); closing quotes and brackets stay with it. Blank lines end one too.
_CLOSERS = "\"'”’)\\]」』）"  # inside a character class
_ENGLISH_END = re.compile(rf"([.!?][{_CLOSERS}]*)\s+(?![\sa-z])")
_CJK_END = re.compile(rf"([。！？；…]+[{_CLOSERS}]*)\s*")
_PARAGRAPH = re.compile(r"\n\s*\n")
_BREAK = "\x00"
_ABBREVIATIONS = ("e.g.", "i.e.", "etc.", "mr.", "mrs.", "ms.", "dr.", "vs.", "no.", "fig.", "st.")
_LIST_NUMBER = re.compile(r"(?:^|\s)\d{1,2}\.$")  # "1." in "Play 1. e4" or "then 2. Nf3" ends nothing


@dataclass(frozen=True)
class Chunk:
    id: str
    text: str
    ordinal: int


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text``, whitespace-normalised, in order; nothing dropped except whitespace."""
    marked = _PARAGRAPH.sub(_BREAK, text.replace(_BREAK, " "))
    marked = _CJK_END.sub(rf"\1{_BREAK}", _ENGLISH_END.sub(rf"\1{_BREAK}", marked))
    sentences: list[str] = []
    for piece in (" ".join(p.split()) for p in marked.split(_BREAK)):
        if not piece:
            continue
        prev = sentences[-1] if sentences else ""
        if prev and (prev.lower().endswith(_ABBREVIATIONS) or _LIST_NUMBER.search(prev)):
            sentences[-1] = f"{prev} {piece}"
        else:
            sentences.append(piece)
    return sentences


def _split_long(sentence: str, size: int) -> list[str]:
    """A sentence longer than ``size`` -> pieces of at most ``size``, cut at spaces where there are any."""
    pieces: list[str] = []
    rest = sentence
    while len(rest) > size:
        cut = rest.rfind(" ", size // 2, size + 1)
        cut = cut if cut > 0 else size
        pieces.append(rest[:cut].strip())
        rest = rest[cut:].strip()
    if rest:
        pieces.append(rest)
    return pieces


def _join(sentences: list[str]) -> str:
    """Join sentences: a space between them unless both sides are CJK (Chinese needs no space)."""
    out = ""
    for s in sentences:
        if out and not (_is_cjk(out[-1]) and _is_cjk(s[0])):
            out += " "
        out += s
    return out


def _is_cjk(ch: str) -> bool:
    code = ord(ch)
    return 0x2E80 <= code <= 0x9FFF or 0xF900 <= code <= 0xFAFF or 0xFF00 <= code <= 0xFFEF or 0x3000 <= code <= 0x303F


def _overlap_tail(window: list[str], overlap: int) -> list[str]:
    """The last whole sentences of ``window`` whose total length is at most ``overlap`` (never all of it)."""
    tail: list[str] = []
    total = 0
    for s in reversed(window[1:]):
        if total + len(s) > overlap:
            break
        tail.insert(0, s)
        total += len(s) + 1
    return tail


def pack_sentences(sentences: list[str], size: int, overlap: int) -> list[str]:
    """Greedy packing of sentences into chunks of at most ``size`` characters (a single over-long sentence is
    cut), each chunk starting with the trailing sentences (up to ``overlap`` characters) of the one before."""
    units = [p for s in sentences for p in _split_long(s, size)]
    chunks: list[str] = []
    window: list[str] = []
    fresh = 0  # sentences in the window that no earlier chunk holds
    for unit in units:
        if window and len(_join(window + [unit])) > size:
            chunks.append(_join(window))
            window = _overlap_tail(window, overlap)
            while window and len(_join(window + [unit])) > size:
                window.pop(0)
            fresh = 0
        window.append(unit)
        fresh += 1
    if window and fresh:
        chunks.append(_join(window))
    return chunks


def chunk_id(path: str, text: str, occurrence: int = 0) -> str:
    """Stable id: the same text in the same file keeps its id whatever changes elsewhere in the file."""
    key = f"{path}\0{text}\0{occurrence}".encode()
    return hashlib.sha256(key).hexdigest()[:24]


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def chunk_document(path: str, text: str, size: int, overlap: int) -> list[Chunk]:
    """``text`` of the file at ``path`` -> its chunks, in order."""
    seen: dict[str, int] = {}
    chunks: list[Chunk] = []
    for ordinal, piece in enumerate(pack_sentences(split_sentences(text), size, overlap)):
        occurrence = seen.get(piece, 0)
        seen[piece] = occurrence + 1
        chunks.append(Chunk(chunk_id(path, piece, occurrence), piece, ordinal))
    return chunks
