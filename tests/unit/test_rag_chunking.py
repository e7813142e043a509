"""Sentence splitting (English and Chinese), packing with whole-sentence overlap, stable chunk ids."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from lazyllm_images.runtime.rag.chunking import chunk_document, pack_sentences, split_sentences


def test_english_sentences() -> None:
    text = 'He said "stop!" Then he left. Did it work? Yes, e.g. here.\nSame sentence.\n\nNew paragraph'
    assert split_sentences("A line\nwrapped mid-sentence. Next.") == ["A line wrapped mid-sentence.", "Next."]
    assert split_sentences(text) == ['He said "stop!"', "Then he left.", "Did it work?",
                                     "Yes, e.g. here.", "Same sentence.", "New paragraph"]


def test_numbers_and_lower_case_do_not_end_sentences() -> None:
    assert split_sentences("Play 1. e4 c5 then 2. Nf3. It was 3.14 wide. Dr. Who came.") == [
        "Play 1. e4 c5 then 2. Nf3.", "It was 3.14 wide.", "Dr. Who came."]


def test_chinese_sentences_need_no_space() -> None:
    assert split_sentences("长城很长。它建于明朝！你去过吗？去过；很好…") == [
        "长城很长。", "它建于明朝！", "你去过吗？", "去过；", "很好…"]
    assert split_sentences("他说：“好。”然后走了。") == ["他说：“好。”", "然后走了。"]


def test_packing_respects_size_and_overlaps_whole_sentences() -> None:
    sentences = [f"Sentence number {i} is here." for i in range(10)]  # 27-28 characters each
    chunks = pack_sentences(sentences, size=90, overlap=30)
    assert all(len(c) <= 90 for c in chunks)
    for before, after in zip(chunks, chunks[1:]):
        last = split_sentences(before)[-1]
        assert after.startswith(last)  # exactly the last whole sentence is carried over
    assert "Sentence number 9 is here." in chunks[-1]
    joined = " ".join(chunks)
    assert all(s in joined for s in sentences)


def test_no_overlap_when_zero() -> None:
    chunks = pack_sentences(["Aaaa aaaa.", "Bbbb bbbb.", "Cccc cccc."], size=21, overlap=0)
    assert chunks == ["Aaaa aaaa. Bbbb bbbb.", "Cccc cccc."]


def test_chinese_chunks_join_without_spaces() -> None:
    chunks = pack_sentences(split_sentences("第一句。第二句。第三句。"), size=8, overlap=4)
    assert chunks == ["第一句。第二句。", "第二句。第三句。"]


def test_long_sentence_is_cut_at_spaces() -> None:
    chunks = pack_sentences(["word " * 50], size=40, overlap=0)
    assert all(len(c) <= 40 for c in chunks) and all(not c.endswith(" ") for c in chunks)
    assert " ".join(chunks).split() == ["word"] * 50


def test_ids_stable_for_unchanged_text() -> None:
    first = "First paragraph stays the same. " * 5
    a = chunk_document("doc.txt", first + "\n\nThe ending.", 120, 0)
    b = chunk_document("doc.txt", first + "\n\nA different ending.", 120, 0)
    assert [c.id for c in a[:-1]] == [c.id for c in b[:-1]] and a[-1].id != b[-1].id
    assert a[0].id != chunk_document("other.txt", first, 120, 0)[0].id  # ids are per file


def test_repeated_text_gets_distinct_ids() -> None:
    chunks = chunk_document("d.txt", "Same.\n\nSame.", 5, 0)
    assert [c.text for c in chunks] == ["Same.", "Same."] and chunks[0].id != chunks[1].id


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(alphabet="abc XYZ.!?。你好", min_size=1, max_size=40), min_size=1, max_size=20),
       st.integers(min_value=20, max_value=120), st.integers(min_value=0, max_value=19))
def test_packing_keeps_every_word_and_the_size(parts: list[str], size: int, overlap: int) -> None:
    text = " ".join(parts)
    chunks = pack_sentences(split_sentences(text), size, overlap)
    assert all(0 < len(c) <= size for c in chunks)
    assert set("".join(text.split())) <= set("".join("".join(chunks).split()))
