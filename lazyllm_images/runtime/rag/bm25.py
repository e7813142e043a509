"""BM25 (Okapi, Lucene's non-negative idf) over chunk texts, with a tokenizer for English words and CJK text."""

from __future__ import annotations

import math
import re
from collections import Counter

import numpy as np

# English/latin words and numbers; CJK ideographs, kana and hangul one character at a time.
_CJK_CLASS = r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af]"
_TOKEN = re.compile(r"[0-9a-z\u00c0-\u024f]+(?:'[a-z]+)?|" + _CJK_CLASS)
_CJK = re.compile(_CJK_CLASS)
STOPWORDS = frozenset(
    "a an and are as at be been but by can did do does for from had has have how i if in into is it its "
    "me my of on or our so than that the their them then there these they this those to was we were what "
    "when where which who whom why will with would you your".split()
)


def _stem(word: str) -> str:
    """A very light English stemmer (plural and -ing/-ed endings) so 'engines' matches 'engine'."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 5 and word.endswith(("ing", "ed")):
        stem = word[: -3 if word.endswith("ing") else -2]
        return stem[:-1] if stem[-1] == stem[-2] and stem[-1] not in "lsz" else stem
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def tokenize(text: str) -> list[str]:
    """Lower-cased English words (stop words dropped, lightly stemmed) plus, for CJK runs, each character and
    each pair of adjacent characters (bigrams carry most of the meaning in Chinese)."""
    tokens: list[str] = []
    prev_cjk, prev_end = "", -1
    for match in _TOKEN.finditer(text.lower()):
        tok = match.group()
        if _CJK.fullmatch(tok):
            tokens.append(tok)
            if prev_cjk and match.start() == prev_end:
                tokens.append(prev_cjk + tok)
            prev_cjk, prev_end = tok, match.end()
            continue
        prev_cjk = ""
        if tok not in STOPWORDS:
            tokens.append(_stem(tok.replace("'", "")))
    return tokens


class BM25:
    """An inverted index over ``docs``; ``scores(query)`` costs O(postings of the query's terms)."""

    def __init__(self, docs: list[str], k1: float = 1.5, b: float = 0.75) -> None:
        self.n = len(docs)
        self.k1 = k1
        counts = [Counter(tokenize(d)) for d in docs]
        lengths = np.array([sum(c.values()) for c in counts], dtype=np.float32)
        avgdl = float(lengths.mean()) if self.n and lengths.sum() else 1.0
        self._norm = k1 * (1.0 - b + b * lengths / avgdl)
        postings: dict[str, tuple[list[int], list[int]]] = {}
        for i, c in enumerate(counts):
            for term, tf in c.items():
                docs_tf = postings.setdefault(term, ([], []))
                docs_tf[0].append(i)
                docs_tf[1].append(tf)
        self._postings = {t: (np.array(d, dtype=np.int32), np.array(f, dtype=np.float32))
                          for t, (d, f) in postings.items()}

    def idf(self, term: str) -> float:
        df = len(self._postings[term][0]) if term in self._postings else 0
        return math.log(1.0 + (self.n - df + 0.5) / (df + 0.5))

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every document for ``query`` (0 where no term matches)."""
        out = np.zeros(self.n, dtype=np.float32)
        for term, qtf in Counter(tokenize(query)).items():
            if term not in self._postings:
                continue
            docs, tf = self._postings[term]
            out[docs] += qtf * self.idf(term) * tf * (self.k1 + 1.0) / (tf + self._norm[docs])
        return out
