"""The tokenizer, BM25 and reciprocal rank fusion on small cases checked by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lazyllm_images.runtime.rag.bm25 import BM25, tokenize
from lazyllm_images.runtime.rag.retrieve import reciprocal_rank_fusion, top_indices


def test_tokenize_english() -> None:
    assert tokenize("The Engines were RUNNING, and it's 42!") == ["engine", "run", "its", "42"]


def test_tokenize_cjk_characters_and_bigrams() -> None:
    assert tokenize("长城 OK") == ["长", "城", "长城", "ok"]
    assert tokenize("学习，机器") == ["学", "习", "学习", "机", "器", "机器"]  # no bigram across punctuation


def test_bm25_by_hand() -> None:
    bm25 = BM25(["apple banana", "apple", "cherry cherry banana"])
    # avgdl = 2; norm = k1 * (1 - b + b * dl / avgdl) = 1.5, 0.9375, 2.0625
    idf_apple = math.log(1 + (3 - 2 + 0.5) / (2 + 0.5))
    expected = [idf_apple * 2.5 / (1 + 1.5), idf_apple * 2.5 / (1 + 0.9375), 0.0]
    assert bm25.scores("apple") == pytest.approx(expected, rel=1e-6)
    idf_cherry = math.log(1 + (3 - 1 + 0.5) / (1 + 0.5))
    assert bm25.scores("cherry")[2] == pytest.approx(idf_cherry * 2 * 2.5 / (2 + 2.0625), rel=1e-6)
    assert bm25.scores("durian").tolist() == [0.0, 0.0, 0.0]


def test_bm25_rare_terms_weigh_more_and_cjk_matches() -> None:
    bm25 = BM25(["common rare", "common", "common", "长城在中国"])
    scores = bm25.scores("common rare")
    assert int(np.argmax(scores)) == 0
    assert bm25.idf("rare") > bm25.idf("common") > 0
    assert int(np.argmax(bm25.scores("中国的长城"))) == 3


def test_bm25_empty() -> None:
    assert BM25([]).scores("anything").shape == (0,)


def test_rrf_by_hand() -> None:
    fused = reciprocal_rank_fusion([[0, 1, 2], [2, 0]], k=60)
    assert [i for i, _ in fused] == [0, 2, 1]
    assert dict(fused) == pytest.approx({0: 1 / 61 + 1 / 62, 2: 1 / 63 + 1 / 61, 1: 1 / 62})


def test_rrf_ties_break_by_index() -> None:
    assert [i for i, _ in reciprocal_rank_fusion([[5], [3]])] == [3, 5]


def test_top_indices() -> None:
    scores = np.array([0.1, 0.9, 0.0, 0.9, 0.5], dtype=np.float32)
    assert top_indices(scores, 3) == [1, 3, 4]
    assert top_indices(scores, 10, positive_only=True) == [1, 3, 4, 0]
